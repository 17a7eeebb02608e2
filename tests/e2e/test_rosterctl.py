"""rosterctl against a real rosterd: results, --json, refusals that say why, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.daemon import VENV_BIN, Rosterd, make_rosterd, remove_rosterd, write_config


def test_user_add_show_list_as_text_and_json(rosterd: Rosterd) -> None:
    added = rosterd.ctl("user", "add", "alice", "--full-name", "Alice Liddell", json=True)
    user = json.loads(added.stdout)
    assert (user["name"], user["uid"], user["gid"]) == ("alice", 20000, 20000)
    assert user["home"] == f"{rosterd.home_root}/alice" and user["locked"] is False
    shown = rosterd.ctl("user", "show", "alice").stdout
    assert "uid:" in shown and "20000" in shown and "Alice Liddell" in shown
    listing = rosterd.ctl("user", "list").stdout.splitlines()
    assert listing[0].split()[:3] == ["NAME", "UID", "GID"]
    assert listing[1].split()[:3] == ["alice", "20000", "20000"]
    assert json.loads(rosterd.ctl("user", "list", json=True).stdout)[0]["name"] == "alice"


def test_groups_and_members(rosterd: Rosterd) -> None:
    rosterd.ctl("user", "add", "alice")
    rosterd.ctl("group", "add", "analysts")
    group = json.loads(rosterd.ctl("group", "add-member", "analysts", "alice", json=True).stdout)
    assert group["members"] == ["alice"] and group["gid"] >= 20000
    user = json.loads(rosterd.ctl("user", "show", "alice", json=True).stdout)
    assert user["groups"] == ["analysts"]
    private = json.loads(rosterd.ctl("group", "show", "alice", json=True).stdout)
    assert private["user_private"] is True and private["gid"] == 20000


def test_status_counts_what_the_daemon_holds(rosterd: Rosterd) -> None:
    rosterd.ctl("user", "add", "alice")
    rosterd.ctl("user", "lock", "alice")
    status = json.loads(rosterd.ctl("status", json=True).stdout)
    assert (status["users"], status["locked_users"], status["groups"]) == (1, 1, 1)
    assert status["nss_socket"] == str(rosterd.nss_socket)


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["user", "add", "Alice"], "lower case"),
        (["user", "add", "-bad"], None),
        (["user", "add", "root"], "root"),
        (["user", "add", "a" * 33], "32"),
        (["user", "add", "carol", "--uid", "0"], "0"),
        (["user", "add", "carol", "--home", "/etc/evil"], "home"),
        (["user", "add", "carol", "--group", "nosuchgroup"], "nosuchgroup"),
        (["user", "show", "nosuchuser"], "nosuchuser"),
        (["group", "add-member", "nosuchgroup", "alice"], "nosuchgroup"),
    ],
    ids=["upper case name", "leading dash", "reserved name", "too long", "UID of root",
         "home outside the home root", "unknown group", "unknown user", "unknown group member"],
)
def test_refusals_name_the_reason_and_exit_1(rosterd: Rosterd, argv: list[str],
                                             reason: str | None) -> None:
    rosterd.ctl("user", "add", "alice")
    result = rosterd.ctl(*argv, check=False)
    if argv[2].startswith("-"):  # argparse: a usage error
        assert result.returncode == 2
        return
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(f"rosterctl: {argv[0]} {argv[1]} ")
    assert reason is None or reason in result.stderr


def test_duplicates_are_refused_and_nothing_changes(rosterd: Rosterd) -> None:
    rosterd.ctl("user", "add", "alice", "--uid", "20100")
    taken_name = rosterd.ctl("user", "add", "alice", check=False)
    taken_uid = rosterd.ctl("user", "add", "bob", "--uid", "20100", check=False)
    assert taken_name.returncode == taken_uid.returncode == 1
    assert "alice" in taken_name.stderr and "20100" in taken_uid.stderr
    assert len(json.loads(rosterd.ctl("user", "list", json=True).stdout)) == 1


def test_a_host_account_name_or_uid_is_never_taken(rosterd: Rosterd) -> None:
    by_name = rosterd.ctl("user", "add", "daemon", check=False)
    by_uid = rosterd.ctl("user", "add", "carol", "--uid", "1", check=False)
    assert by_name.returncode == by_uid.returncode == 1
    assert "daemon" in by_name.stderr
    assert "/etc/passwd" in by_uid.stderr


def test_a_deleted_users_uid_is_never_handed_out_again(rosterd: Rosterd) -> None:
    first = json.loads(rosterd.ctl("user", "add", "alice", json=True).stdout)
    rosterd.ctl("user", "delete", "alice")
    again = json.loads(rosterd.ctl("user", "add", "alice", json=True).stdout)
    assert again["uid"] != first["uid"] and again["gid"] != first["gid"]
    reuse = rosterd.ctl("user", "add", "bob", "--uid", str(first["uid"]), check=False)
    assert reuse.returncode == 1 and "retired" in reuse.stderr


def test_usage_errors_exit_2(rosterd: Rosterd) -> None:
    assert rosterd.ctl("user", check=False).returncode == 2
    assert rosterd.ctl("user", "add", "x", "--uid", "abc", check=False).returncode == 2


def test_a_stopped_daemon_is_reported_plainly(rosterd: Rosterd) -> None:
    rosterd.stop()
    result = rosterd.ctl("user", "list", check=False)
    assert result.returncode == 1
    assert "cannot reach rosterd" in result.stderr and str(rosterd.admin_socket) in result.stderr


def test_admin_socket_is_for_root_only_by_default(rosterd: Rosterd) -> None:
    assert rosterd.admin_socket.stat().st_mode & 0o777 == 0o600
    assert rosterd.nss_socket.stat().st_mode & 0o777 == 0o666


def _run_rosterd(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "rosterd"), "--config", str(config)],
                          capture_output=True, text=True, timeout=30, check=False)


def test_a_bad_config_stops_the_daemon_naming_every_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "rosterd.toml"
    write_config(config, {
        "paths": {"state_dir": str(tmp_path / "s")},
        "provisioning": {"start_uid": -5, "home_rot": "/home"},
    })
    result = _run_rosterd(config)
    assert result.returncode == 1
    assert "provisioning.start_uid" in result.stderr
    assert "provisioning.home_rot" in result.stderr and "home_root" in result.stderr
    assert not (tmp_path / "s").exists()


def test_a_second_daemon_on_the_same_state_is_refused(rosterd: Rosterd) -> None:
    result = _run_rosterd(rosterd.config_path)
    assert result.returncode == 1
    assert "already running" in result.stderr
    assert rosterd.ctl("status").returncode == 0  # the first one is unharmed


def test_sigterm_shuts_down_cleanly_and_removes_the_sockets(rosterd: Rosterd) -> None:
    assert rosterd.stop() == 0
    assert not rosterd.nss_socket.exists()


def test_an_admin_group_opens_admin_sock_to_that_group(tmp_path: Path) -> None:
    daemon = make_rosterd({"admin": {"group": "adm"}})
    try:
        daemon.start()
        mode = daemon.admin_socket.stat()
        assert mode.st_mode & 0o777 == 0o660 and mode.st_gid != 0
    finally:
        remove_rosterd(daemon)


def test_rosterctl_without_a_config_looks_at_the_default_socket() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ROSTERD_CONFIG"}
    if Path("/etc/rosterd/rosterd.toml").exists():
        pytest.skip("this host has a real rosterd config")
    result = subprocess.run([sys.executable, "-m", "rosterd.cli", "status"], env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1 and "/run/rosterd/admin.sock" in result.stderr
