"""Fixtures shared by every test: a real rosterd, and a guard over the host's /etc."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.daemon import Rosterd, make_rosterd, remove_rosterd

# Files a careless test could change on the host: every test that needs its own
# nsswitch.conf or pam.d must work in a private mount namespace instead.
GUARDED_HOST_FILES = [
    Path("/etc/nsswitch.conf"), Path("/etc/passwd"), Path("/etc/group"),
    Path("/etc/shadow"), Path("/etc/pam.d"), Path("/etc/ld.so.cache"),
]


def _fingerprint() -> dict[str, tuple[int, int]]:
    prints = {}
    for path in GUARDED_HOST_FILES:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        prints[str(path)] = (st.st_mtime_ns, st.st_size)
    return prints


@pytest.fixture(autouse=True)
def _host_etc_is_untouched() -> Iterator[None]:
    before = _fingerprint()
    yield
    after = _fingerprint()
    changed = [p for p in before.keys() | after.keys() if before.get(p) != after.get(p)]
    assert not changed, f"test changed the host's {changed}: use a private mount namespace"


@pytest.fixture
def start_rosterd() -> Iterator[Callable[..., Rosterd]]:
    """Starts a rosterd with extra config sections; stopped and removed after the test."""
    started: list[Rosterd] = []

    def start(config: dict[str, dict[str, Any]] | None = None, *, https: bool = False) -> Rosterd:
        daemon = make_rosterd(config, https=https)
        started.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in started:
        remove_rosterd(daemon)


@pytest.fixture
def rosterd(start_rosterd: Callable[..., Rosterd]) -> Rosterd:
    """A running rosterd with default provisioning (UIDs from 20000), no HTTPS listener."""
    return start_rosterd()


@pytest.fixture
def https_rosterd(start_rosterd: Callable[..., Rosterd]) -> Rosterd:
    """A running rosterd serving SCIM over HTTPS with a test CA, as an unprivileged user."""
    return start_rosterd(https=True)


@pytest.fixture
def populated(rosterd: Rosterd) -> Rosterd:
    """A rosterd holding alice (UID 20000, "Alice Liddell"), bob (20001), and analysts
    (GID 20500) with both as members."""
    rosterd.ctl("user", "add", "alice", "--full-name", "Alice Liddell")
    rosterd.ctl("user", "add", "bob")
    rosterd.ctl("group", "add", "analysts", "--gid", "20500")
    rosterd.ctl("group", "add-member", "analysts", "alice")
    rosterd.ctl("group", "add-member", "analysts", "bob")
    return rosterd
