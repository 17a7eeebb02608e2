"""rosterd's users and groups as the real glibc tools see them, through the NSS module.

Every command runs in a private mount namespace whose nsswitch.conf reads
`files <module>` (tools/roster-view), so the host's /etc is never touched.
"""

from __future__ import annotations

import time

import pytest

from tests.helpers.daemon import Rosterd
from tests.helpers.hostview import run_in_view


def _view(daemon: Rosterd, *argv: str, module: str = "roster") -> tuple[int, str]:
    result = run_in_view(argv, nss_socket=daemon.nss_socket, nss_module=module)
    return result.returncode, result.stdout


@pytest.mark.parametrize("module", ["roster", "pwb"], ids=["as roster", "as pwb"])
def test_users_and_groups_resolve_through_every_glibc_call(populated: Rosterd, module: str) -> None:
    home = populated.home_root
    assert _view(populated, "getent", "passwd", "alice", module=module) == (
        0, f"alice:x:20000:20000:Alice Liddell:{home}/alice:/bin/bash\n")
    assert _view(populated, "getent", "passwd", "20001", module=module) == (
        0, f"bob:x:20001:20001::{home}/bob:/bin/bash\n")
    assert _view(populated, "getent", "group", "analysts", module=module) == (
        0, "analysts:x:20500:alice,bob\n")
    assert _view(populated, "getent", "group", "20000", module=module) == (0, "alice:x:20000:\n")
    assert _view(populated, "getent", "shadow", "alice", module=module) == (0, "alice:*:::::::\n")
    code, out = _view(populated, "getent", "initgroups", "alice", module=module)
    assert code == 0 and out.split() == ["alice", "20500"]
    assert _view(populated, "id", "alice", module=module) == (
        0, "uid=20000(alice) gid=20000(alice) groups=20000(alice),20500(analysts)\n")


def test_enumeration_lists_the_host_files_then_rosterd(populated: Rosterd) -> None:
    code, passwd = _view(populated, "getent", "passwd")
    names = [line.split(":")[0] for line in passwd.splitlines()]
    assert code == 0 and names[0] == "root" and names[-2:] == ["alice", "bob"]
    code, group = _view(populated, "getent", "group")
    assert code == 0 and "analysts:x:20500:alice,bob" in group.splitlines()


def test_unknown_names_and_ids_are_not_found(populated: Rosterd) -> None:
    assert _view(populated, "getent", "passwd", "nosuchuser")[0] == 2
    assert _view(populated, "getent", "passwd", "4294967294")[0] == 2
    assert _view(populated, "getent", "group", "nosuchgroup")[0] == 2
    assert _view(populated, "getent", "shadow", "nosuchuser")[0] == 2


def test_a_locked_account_still_resolves_but_shows_a_locked_password(populated: Rosterd) -> None:
    populated.ctl("user", "lock", "bob")
    assert _view(populated, "getent", "shadow", "bob") == (0, "bob:!*:::::::\n")
    assert _view(populated, "getent", "passwd", "bob")[0] == 0
    populated.ctl("user", "unlock", "bob")
    assert _view(populated, "getent", "shadow", "bob") == (0, "bob:*:::::::\n")


def test_changes_are_visible_at_once(populated: Rosterd) -> None:
    populated.ctl("group", "remove-member", "analysts", "bob")
    assert _view(populated, "getent", "group", "analysts") == (0, "analysts:x:20500:alice\n")
    populated.ctl("user", "delete", "bob")
    assert _view(populated, "getent", "passwd", "bob")[0] == 2
    assert _view(populated, "getent", "group", "bob")[0] == 2


def test_a_hostile_full_name_cannot_inject_a_passwd_line(rosterd: Rosterd) -> None:
    rosterd.ctl("user", "add", "mallory", "--full-name", "Mal:lory\nroot::0:0:,x\x07")
    code, out = _view(rosterd, "getent", "passwd", "mallory")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].count(":") == 6
    assert lines[0].split(":")[2:4] == ["20000", "20000"]
    assert _view(rosterd, "getent", "passwd", "0")[1].startswith("root:x:0:0:")


def test_an_id_at_the_top_of_the_range_round_trips(rosterd: Rosterd) -> None:
    rosterd.ctl("user", "add", "edge", "--uid", "4294967294")
    code, out = _view(rosterd, "getent", "passwd", "4294967294")
    assert code == 0 and out.startswith("edge:x:4294967294:")


def test_a_dead_daemon_fails_lookups_fast_and_files_users_still_resolve(populated: Rosterd) -> None:
    populated.kill()
    started = time.monotonic()
    code, _ = _view(populated, "getent", "passwd", "alice")
    elapsed = time.monotonic() - started
    assert code == 2
    # the whole namespace set-up is included; the lookup itself fails at once
    assert elapsed < 3
    assert _view(populated, "getent", "passwd", "root")[0] == 0
    assert _view(populated, "id", "root")[0] == 0


def test_users_survive_a_restart_with_the_same_ids(populated: Rosterd) -> None:
    assert populated.stop() == 0
    populated.start()
    assert _view(populated, "getent", "passwd", "alice")[1].startswith("alice:x:20000:20000:")
    assert _view(populated, "getent", "group", "analysts") == (0, "analysts:x:20500:alice,bob\n")
