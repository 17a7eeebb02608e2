"""Bearer tokens: stored hashed, checked in constant time, revocable, slowed down when guessed."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from rosterd.errors import InvalidValue, NameTaken, NotFound
from rosterd.store import Store
from rosterd.tokens import FAILURES_BEFORE_SLOWDOWN, TOKEN_PREFIX, TokenStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open_sqlite(tmp_path / "rosterd.db")


def test_a_generated_token_authenticates_and_only_its_hash_is_stored(
    store: Store, tmp_path: Path
) -> None:
    tokens = TokenStore(store)
    secret = tokens.generate("Okta provisioning")
    assert secret.startswith(TOKEN_PREFIX) and len(secret) > 40
    result = tokens.authenticate(f"Bearer {secret}", "10.0.0.1")
    assert result.ok and result.label == "Okta provisioning"
    dump = "\n".join(sqlite3.connect(tmp_path / "rosterd.db").iterdump())
    assert secret not in dump
    assert hashlib.sha256(secret.encode()).hexdigest() in dump


def test_tokens_survive_a_restart_and_list_shows_last_use(store: Store) -> None:
    secret = TokenStore(store).generate("entra")
    reopened = TokenStore(store)
    assert reopened.authenticate(f"bearer {secret}", "192.0.2.7").ok  # scheme is case-insensitive
    (info,) = reopened.list()
    assert info.label == "entra" and info.last_used is not None
    assert info.last_used_from == "192.0.2.7"


def test_a_revoked_token_fails_on_the_next_request(store: Store) -> None:
    tokens = TokenStore(store)
    secret = tokens.generate("okta")
    tokens.revoke("okta")
    result = tokens.authenticate(f"Bearer {secret}", "10.0.0.1")
    assert not result.ok and "not valid" in result.reason
    assert TokenStore(store).list() == []


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer rstr_wrong", "rstr_nobearer"],
    ids=["missing", "empty", "scheme only", "blank token", "basic auth", "wrong token",
         "no scheme"],
)
def test_missing_or_malformed_credentials_are_refused_with_a_reason(
    store: Store, header: str | None
) -> None:
    tokens = TokenStore(store)
    tokens.generate("okta")
    result = tokens.authenticate(header, "10.0.0.1")
    assert not result.ok and result.label is None and result.reason


def test_repeated_failures_from_one_address_are_slowed_down_and_others_are_not(
    store: Store,
) -> None:
    clock = FakeClock()
    tokens = TokenStore(store, clock=clock)
    secret = tokens.generate("okta")
    for _ in range(FAILURES_BEFORE_SLOWDOWN):
        assert tokens.authenticate("Bearer guess", "203.0.113.9").retry_after_s == 0
    slowed = tokens.authenticate(f"Bearer {secret}", "203.0.113.9")
    assert not slowed.ok and slowed.retry_after_s > 0  # even the right token waits
    assert tokens.authenticate(f"Bearer {secret}", "198.51.100.1").ok
    clock.now += 120
    assert tokens.authenticate(f"Bearer {secret}", "203.0.113.9").ok


def test_labels_are_unique_and_checked(store: Store) -> None:
    tokens = TokenStore(store)
    tokens.generate("okta")
    with pytest.raises(NameTaken, match="okta"):
        tokens.generate("okta")
    with pytest.raises(InvalidValue, match="label"):
        tokens.generate("bad\nlabel")
    with pytest.raises(InvalidValue):
        tokens.generate("")
    with pytest.raises(NotFound, match="nosuch"):
        tokens.revoke("nosuch")
