"""Tests for rosterd.hostfiles: parsing /etc/passwd and /etc/group as files, with a cache."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest
from rosterd import hostfiles
from rosterd.hostfiles import HostFiles

USER_LINES = """\
root:x:0:0:root:/root:/bin/bash
# a comment
bob:x:1500:1500:Bob,,,:/home/bob:/bin/bash

+nisuser::::::
broken line
weird:x:notanumber:1::/:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
GROUP_LINES = """\
root:x:0:
staff:x:50:bob
bob:x:1500:
"""


@pytest.fixture
def host(tmp_path: Path) -> HostFiles:
    (tmp_path / "passwd").write_text(USER_LINES)
    (tmp_path / "group").write_text(GROUP_LINES)
    return HostFiles(tmp_path / "passwd", tmp_path / "group")


def test_users_and_groups_are_found_by_name_and_number(host: HostFiles) -> None:
    assert host.user("bob") is not None
    assert host.user_by_uid(1500) == host.user("bob")
    assert host.group_id("staff") == 50
    assert host.group_by_gid(1500) is not None
    assert host.user("alice") is None
    assert host.group_id("alice") is None


def test_comments_nis_lines_and_malformed_lines_are_skipped(host: HostFiles) -> None:
    assert host.user_names() == {"root", "bob", "nobody"}
    assert host.uids() == {0, 1500, 65534}
    assert host.gids() == {0, 50, 1500}


def test_holders_name_the_entry_and_the_file(host: HostFiles, tmp_path: Path) -> None:
    assert host.uid_holder(1500) == f"bob in {tmp_path / 'passwd'}"
    assert host.gid_holder(50) == f"staff in {tmp_path / 'group'}"
    assert host.user_name_holder("root") == f"a user in {tmp_path / 'passwd'}"
    assert host.uid_holder(4242) is None


def test_a_changed_file_is_read_again(host: HostFiles, tmp_path: Path) -> None:
    assert host.user("carol") is None
    replacement = tmp_path / "passwd.new"
    replacement.write_text(USER_LINES + "carol:x:1600:1600::/home/carol:/bin/sh\n")
    os.replace(replacement, tmp_path / "passwd")  # as shadow-utils does: a new inode
    assert host.user_by_uid(1600) is not None


def test_an_unchanged_file_is_not_parsed_again(
    host: HostFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    host.uids()
    parses = []
    original = hostfiles._CachedFile._parse

    def counting(self: hostfiles._CachedFile, raw: bytes) -> hostfiles._Table:
        parses.append(self.path)
        return original(self, raw)

    monkeypatch.setattr(hostfiles._CachedFile, "_parse", counting)
    for _ in range(100):
        host.uids()
        host.user("bob")
    assert parses == []


def test_a_missing_file_holds_no_entries(tmp_path: Path) -> None:
    host = HostFiles(tmp_path / "absent-passwd", tmp_path / "absent-group")
    assert host.uids() == frozenset()
    assert host.group("root") is None


def test_names_are_never_resolved_through_nss(
    host: HostFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("HostFiles asked NSS; it would recurse into rosterd's own module")

    for name in ("getpwnam", "getpwuid", "getpwall"):
        monkeypatch.setattr(pwd, name, refuse)
    for name in ("getgrnam", "getgrgid", "getgrall"):
        monkeypatch.setattr(grp, name, refuse)
    assert host.user("bob") is not None
    assert host.group_id("staff") == 50
    assert host.uid_holder(0) is not None
