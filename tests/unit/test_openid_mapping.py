"""Claim mapping: each [openid] option read as the Connect guides describe it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from rosterd.config import Config, OpenidConfig
from rosterd.openid.errors import LoginRefused
from rosterd.openid.mapping import check_allowed, map_claims


def config(**openid: Any) -> Config:
    return dataclasses.replace(Config(), openid=OpenidConfig(issuer="https://idp.test", **openid))


def test_groups_as_a_list_or_a_separated_string() -> None:
    listed = map_claims({"sub": "1", "email": "a@x.org", "groups": ["a", "b", "a", ""]}, config())
    assert listed.login.groups == ("a", "b")
    split = map_claims({"sub": "1", "email": "a@x.org", "groups": "g1|g2| g3"},
                       config(groups_separator="|"))
    assert split.login.groups == ("g1", "g2", "g3")
    whole = map_claims({"sub": "1", "email": "a@x.org", "groups": "g1|g2"}, config())
    assert whole.login.groups == ("g1|g2",)


def test_an_absent_groups_claim_leaves_memberships_alone() -> None:
    mapping = map_claims({"sub": "1", "email": "a@x.org"}, config())
    assert mapping.login.groups is None
    assert map_claims({"sub": "1", "email": "a@x.org", "groups": ["x"]},
                      config(groups_claim="")).login.groups is None


def test_entra_groups_overage_is_recognised_and_leaves_memberships_alone(
        caplog: pytest.LogCaptureFixture) -> None:
    claims = {"sub": "1", "email": "a@x.org", "_claim_names": {"groups": "src1"},
              "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/..."}}}
    mapping = map_claims(claims, config())
    assert mapping.login.groups is None
    assert any("overage" in note for note in mapping.notes)
    assert "Groups assigned to the application" in caplog.text


def test_username_claim_then_email_local_part() -> None:
    named = map_claims({"sub": "1", "preferred_username": "Ada.L@corp", "email": "x@y.org"},
                       config())
    assert (named.login.login_value, named.login.login_rule) == ("Ada.L@corp", "local-part")
    fallback = map_claims({"sub": "1", "email": "bob@y.org"}, config())
    assert (fallback.login.login_value, fallback.login.login_rule) == ("bob@y.org", "local-part")


def test_a_missing_username_claim_names_the_claim_and_what_arrived_never_values() -> None:
    with pytest.raises(LoginRefused) as refused:
        map_claims({"sub": "secret-sub", "email": "hidden@y.org", "nickname": "nick", "iat": 1},
                   config(require_username_claim=True))
    text = str(refused.value)
    assert "'preferred_username'" in text and "email, nickname, sub" in text
    assert "hidden@y.org" not in text and "secret-sub" not in text and "iat" not in text
    assert refused.value.rule == "openid.require_username_claim"


@pytest.mark.parametrize(("domains", "emails", "email", "allowed"), [
    ((), (), "anyone@anywhere.org", True),
    (("corp.com",), (), "a@corp.com", True),
    (("corp.com",), (), "a@other.com", False),
    ((), ("guest@other.com",), "guest@other.com", True),
    ((), ("guest@other.com",), "a@corp.com", False),
    (("corp.com",), ("guest@other.com",), "guest@other.com", True),
    (("corp.com",), ("guest@other.com",), "a@corp.com", True),
    (("corp.com",), ("guest@other.com",), "b@other.com", False),
    (("corp.com",), (), "A@CORP.COM", True),
], ids=lambda v: str(v))
def test_allowed_domains_and_emails_combine_as_the_google_guide_says(
        domains: tuple[str, ...], emails: tuple[str, ...], email: str, allowed: bool) -> None:
    cfg = config(allowed_domains=domains, allowed_emails=emails)
    if allowed:
        check_allowed(email, cfg)
    else:
        with pytest.raises(LoginRefused):
            check_allowed(email, cfg)


def test_groups_by_unique_id_never_auto_provisions() -> None:
    mapping = map_claims({"sub": "1", "email": "a@x.org", "groups": ["0f3c-guid"]},
                         config(groups_by_unique_id=True, groups_auto_provision=True))
    assert mapping.login.groups_by_unique_id and not mapping.login.groups_auto_provision


def test_a_missing_unique_id_is_refused() -> None:
    with pytest.raises(LoginRefused, match=r"openid\.unique_id_claim"):
        map_claims({"email": "a@x.org", "oid": "x"}, config())
