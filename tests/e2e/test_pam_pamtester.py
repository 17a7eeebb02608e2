"""pam_roster.so driven by pamtester and python-pam against a real rosterd, in a private namespace.

The test service is the stack the vendor guides test with: auth pam_permit,
then pam_roster in account and session (by absolute path), with pam_permit
after it so that PAM_IGNORE visibly passes a user through. What the module
sends to syslog is caught on the namespace's own /dev/log (tests/helpers/pamhost.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import Rosterd
from tests.helpers.pamhost import NATIVE, PAM_MODULE, PamHost, service_file

REPO = Path(__file__).resolve().parents[2]
SERVICE = "rostertest"
FULL_FLOW = ["authenticate", "acct_mgmt", "setcred", "open_session", "close_session"]
DEACTIVATED = "Your account has been deactivated by your organisation; ask your administrator."
VALGRIND = ["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=99"]


@pytest.fixture(scope="module", autouse=True)
def _built() -> None:
    subprocess.run(["make", "-s", "-C", str(REPO / "pam"), f"OUT={NATIVE}"],
                   check=True, capture_output=True, timeout=300)


def make_skeleton(root: Path) -> Path:
    """A skeleton with a dotfile, a subdirectory and a symlink pointing outside it."""
    skel = root / "skel"
    (skel / ".config" / "app").mkdir(parents=True)
    (skel / ".bashrc").write_text("# rosterd test skeleton\n")
    (skel / ".bashrc").chmod(0o644)
    (skel / ".config" / "app" / "settings").write_text("colour = blue\n")
    (skel / "bin").mkdir()
    (skel / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
    (skel / "bin" / "hello").chmod(0o755)
    secret = root / "outside-secret"
    secret.write_text("must never be copied\n")
    (skel / "outside").symlink_to(secret)
    return skel


@pytest.fixture
def daemon(start_rosterd: Callable[..., Rosterd], tmp_path: Path) -> Rosterd:
    skel = make_skeleton(tmp_path)
    return start_rosterd({"provisioning": {"skel_dir": str(skel)}})


@pytest.fixture
def host(daemon: Rosterd) -> Iterator[PamHost]:
    with PamHost(daemon.nss_socket) as view:
        view.write(f"/etc/pam.d/{SERVICE}", service_file())
        yield view


def pamtester(host: PamHost, user: str, *operations: str, service: str = SERVICE,
              valgrind: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [*(VALGRIND if valgrind else []), "pamtester", "--verbose", service, user,
            *operations]
    return host.run(argv, timeout=300 if valgrind else 60)


def home_of(daemon: Rosterd, user: str) -> Path:
    return daemon.home_root / user


def test_the_module_exports_only_the_pam_entry_points() -> None:
    out = subprocess.run(["nm", "-D", "--defined-only", str(PAM_MODULE)],
                         capture_output=True, text=True, check=True).stdout
    assert sorted(line.split()[-1] for line in out.splitlines()) == sorted(
        f"pam_sm_{hook}" for hook in ("acct_mgmt", "authenticate", "setcred", "chauthtok",
                                      "open_session", "close_session"))
    needed = subprocess.run(["readelf", "-d", str(PAM_MODULE)], capture_output=True, text=True,
                            check=True).stdout
    libraries = sorted(line.split("[")[1].rstrip("]") for line in needed.splitlines()
                       if "(NEEDED)" in line)
    assert libraries == ["libc.so.6", "libpam.so.0"]


def test_the_first_session_makes_the_home_from_the_skeleton(
    daemon: Rosterd, host: PamHost, tmp_path: Path
) -> None:
    daemon.ctl("user", "add", "alice")
    home = home_of(daemon, "alice")
    assert not home.exists()

    result = pamtester(host, "alice", *FULL_FLOW)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "successfully opened a session" in result.stdout
    st = home.lstat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (20000, 20000, 0o700)
    assert (home / ".bashrc").read_text() == "# rosterd test skeleton\n"
    assert (home / ".config" / "app" / "settings").read_text() == "colour = blue\n"
    assert (home / "bin" / "hello").stat().st_mode & 0o777 == 0o755
    link = home / "outside"
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "outside-secret")
    for path in [home, *home.rglob("*")]:
        assert (path.lstat().st_uid, path.lstat().st_gid) == (20000, 20000), path
    assert sorted(p.name for p in home.parent.iterdir()) == ["alice"], "a temporary home is left"
    assert host.logged("created home")


def test_a_second_session_leaves_the_home_as_it_is(daemon: Rosterd, host: PamHost) -> None:
    daemon.ctl("user", "add", "alice")
    assert pamtester(host, "alice", *FULL_FLOW).returncode == 0
    home = home_of(daemon, "alice")
    (home / ".bashrc").unlink()
    (home / "marker").write_text("mine\n")
    before = home.stat()

    result = pamtester(host, "alice", *FULL_FLOW)

    assert result.returncode == 0, result.stderr
    after = home.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_mode) == (
        before.st_ino, before.st_mtime_ns, before.st_mode)
    assert (home / "marker").read_text() == "mine\n"
    assert not (home / ".bashrc").exists(), "the skeleton was copied into an existing home"
    assert host.logged("created home") and host.syslog().count("created home") == 1


def test_the_home_mode_comes_from_rosterd_and_module_options_override_it(
    start_rosterd: Callable[..., Rosterd], tmp_path: Path
) -> None:
    skel = make_skeleton(tmp_path)
    other_skel = tmp_path / "other-skel"
    other_skel.mkdir()
    (other_skel / ".profile").write_text("other\n")
    daemon = start_rosterd({"provisioning": {"skel_dir": str(skel), "home_mode": "0750"}})
    daemon.ctl("user", "add", "alice")
    daemon.ctl("user", "add", "bob")
    with PamHost(daemon.nss_socket) as view:
        view.write(f"/etc/pam.d/{SERVICE}", service_file())
        view.write("/etc/pam.d/withopts",
                   service_file(session=f"skel={other_skel} umask=0027"))
        assert pamtester(view, "alice", *FULL_FLOW).returncode == 0
        assert pamtester(view, "bob", *FULL_FLOW, service="withopts").returncode == 0
    assert home_of(daemon, "alice").stat().st_mode & 0o7777 == 0o750
    bob = home_of(daemon, "bob")
    assert bob.stat().st_mode & 0o7777 == 0o750
    assert sorted(p.name for p in bob.iterdir()) == [".profile"]


def test_a_deactivated_account_is_refused_with_a_message_and_gets_no_home(
    daemon: Rosterd, host: PamHost
) -> None:
    daemon.ctl("user", "add", "alice")
    daemon.ctl("user", "lock", "alice")

    result = pamtester(host, "alice", *FULL_FLOW)

    assert result.returncode != 0
    assert DEACTIVATED in result.stderr
    assert "Permission denied" in result.stderr
    assert host.logged("refused alice: the account is deactivated in rosterd")
    session = pamtester(host, "alice", "open_session")
    assert session.returncode != 0, "a stack without an account step made a session"
    assert not home_of(daemon, "alice").exists()

    daemon.ctl("user", "unlock", "alice")
    result = pamtester(host, "alice", *FULL_FLOW)
    assert result.returncode == 0, result.stderr
    assert home_of(daemon, "alice").is_dir()


def test_users_rosterd_does_not_manage_pass_through_untouched(
    daemon: Rosterd, host: PamHost
) -> None:
    added = host.run(["useradd", "--no-create-home", "--home-dir", "/home/localperson",
                      "--uid", "30123", "localperson"])
    assert added.returncode == 0, added.stderr
    assert host.run(["getent", "passwd", "localperson"]).returncode == 0
    for user in ("localperson", "root", "nosuchperson"):
        result = pamtester(host, user, *FULL_FLOW)
        assert result.returncode == 0, f"{user}: {result.stderr}"
        assert DEACTIVATED not in result.stderr
    assert host.run(["test", "-e", "/home/localperson"]).returncode == 1
    assert not daemon.home_root.exists() or not any(daemon.home_root.iterdir())
    assert "pam_roster" not in host.syslog()


def test_a_home_outside_home_root_is_refused(
    start_rosterd: Callable[..., Rosterd], tmp_path: Path
) -> None:
    """A store whose homes no longer lie under home_root (the setting changed) creates nothing."""
    daemon = start_rosterd()
    daemon.ctl("user", "add", "alice")
    daemon.stop()
    config = daemon.config_path.read_text()
    new_root = daemon.root / "elsewhere"
    daemon.config_path.write_text(config.replace(str(daemon.home_root), str(new_root)))
    daemon.start()
    with PamHost(daemon.nss_socket) as view:
        view.write(f"/etc/pam.d/{SERVICE}", service_file())
        result = pamtester(view, "alice", *FULL_FLOW)
        refused = view.logged("does not lie under home_root")
    assert result.returncode != 0
    assert "open_session" in result.stderr
    assert not (daemon.home_root / "alice").exists()
    assert refused


def test_a_symlink_under_home_root_cannot_lead_a_home_out_of_it(
    daemon: Rosterd, host: PamHost, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    daemon.home_root.mkdir(exist_ok=True)
    (daemon.home_root / "team").symlink_to(outside)
    daemon.ctl("user", "add", "mallory", "--home", str(daemon.home_root / "team" / "mallory"))

    result = pamtester(host, "mallory", *FULL_FLOW)

    assert result.returncode != 0
    assert list(outside.iterdir()) == []
    assert host.logged("symlink")


def test_missing_parents_under_home_root_are_created_root_owned(
    daemon: Rosterd, host: PamHost
) -> None:
    daemon.ctl("user", "add", "carol", "--home", str(daemon.home_root / "eng" / "uk" / "carol"))
    assert pamtester(host, "carol", *FULL_FLOW).returncode == 0
    for parent in (daemon.home_root / "eng", daemon.home_root / "eng" / "uk"):
        st = parent.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o755), parent
    assert (daemon.home_root / "eng" / "uk" / "carol").stat().st_uid == 20000


def test_two_concurrent_first_sessions_end_with_one_complete_home(
    daemon: Rosterd, host: PamHost, tmp_path: Path
) -> None:
    skel = tmp_path / "skel"
    for n in range(300):  # big enough that the copies overlap in time
        (skel / f".file{n}").write_text(f"{n}\n" * 100)
    daemon.ctl("user", "add", "alice")
    argv = host._nsenter(["pamtester", SERVICE, "alice", "acct_mgmt", "open_session"])
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(6)]
    results = [(run.wait(timeout=120), run.communicate()) for run in runs]
    assert all(code == 0 for code, _ in results), results
    home = home_of(daemon, "alice")
    assert sorted(p.name for p in home.parent.iterdir()) == ["alice"]
    names = {p.name for p in home.iterdir()}
    assert {f".file{n}" for n in range(300)} <= names
    assert all((home / f".file{n}").read_text() == f"{n}\n" * 100 for n in range(300))
    assert host.logged("created home") and host.syslog().count("created home") == 1


def test_an_unreachable_daemon_is_ignored_by_default_and_refused_when_asked(
    daemon: Rosterd, host: PamHost
) -> None:
    daemon.ctl("user", "add", "alice")
    host.write("/etc/pam.d/strict", service_file(account="unreachable=deny",
                                                 session="unreachable=deny"))
    daemon.kill()
    started = time.monotonic()
    lenient = pamtester(host, "root", "acct_mgmt", "open_session")
    strict = pamtester(host, "root", "acct_mgmt", service="strict")
    assert time.monotonic() - started < 10
    assert lenient.returncode == 0, lenient.stderr
    assert strict.returncode != 0
    assert host.logged("rosterd cannot be reached")


def test_a_stopped_daemon_costs_a_login_at_most_the_deadline(
    daemon: Rosterd, host: PamHost
) -> None:
    daemon.ctl("user", "add", "alice")
    lookup_pid = daemon.lookup_pid
    os.kill(lookup_pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = pamtester(host, "root", "acct_mgmt")
        elapsed = time.monotonic() - started
    finally:
        os.kill(lookup_pid, signal.SIGCONT)
    assert result.returncode == 0, result.stderr
    assert elapsed < 3


def test_the_whole_flow_is_clean_under_valgrind(daemon: Rosterd, host: PamHost) -> None:
    daemon.ctl("user", "add", "alice")
    daemon.ctl("user", "add", "bob")
    daemon.ctl("user", "lock", "bob")
    made = pamtester(host, "alice", *FULL_FLOW, valgrind=True)
    again = pamtester(host, "alice", *FULL_FLOW, valgrind=True)
    refused = pamtester(host, "bob", *FULL_FLOW, valgrind=True)
    passed = pamtester(host, "root", *FULL_FLOW, valgrind=True)
    for result in (made, again, refused, passed):
        assert result.returncode != 99, f"valgrind found errors:\n{result.stderr}"
        assert "pam_roster" not in result.stderr, result.stderr
    assert (made.returncode, again.returncode, refused.returncode, passed.returncode) == (
        0, 0, 1, 0)
    assert home_of(daemon, "alice").is_dir()


# --- python-pam ------------------------------------------------------------------------

_PYTHON_PAM_SCRIPT = textwrap.dedent("""
    import json, sys
    import pam
    p = pam.pam()
    ok = p.authenticate(sys.argv[1], "", service=sys.argv[2], call_end=False)
    result = {"ok": ok, "code": p.code, "reason": p.reason, "messages": p.messages}
    if ok:
        result["open_session"] = p.open_session()
        result["close_session"] = p.close_session()
    p.end()
    print(json.dumps(result))
""")


def python_pam(host: PamHost, user: str) -> dict[str, object]:
    result = host.run([sys.executable, "-c", _PYTHON_PAM_SCRIPT, user, SERVICE])
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def test_python_pam_sees_the_same_flow(daemon: Rosterd, host: PamHost) -> None:
    daemon.ctl("user", "add", "alice")
    first = python_pam(host, "alice")
    assert first == {"ok": True, "code": 0, "reason": "Success", "messages": [],
                     "open_session": 0, "close_session": 0}
    home = home_of(daemon, "alice")
    assert (home / ".bashrc").is_file() and home.stat().st_uid == 20000

    daemon.ctl("user", "lock", "alice")
    refused = python_pam(host, "alice")
    assert refused["ok"] is False
    assert refused["reason"] == "Permission denied"
    assert refused["messages"] == [DEACTIVATED]

    assert python_pam(host, "root")["ok"] is True


_EUID_SCRIPT = textwrap.dedent("""
    import os, sys
    import pam
    p = pam.pam()
    os.seteuid(65534)  # asks as nobody first: rosterd answers PERMISSION_DENIED
    first = p.authenticate(sys.argv[1], "", service=sys.argv[2], call_end=False)
    os.seteuid(0)
    # PAM_SILENT: python-pam's conversation is only valid inside authenticate().
    again = p.pam_acct_mgmt(p.handle, 0x8000)
    p.end()
    print(first, again)
""")


def test_a_process_that_asked_as_a_user_is_answered_as_root_once_it_is_root(
    daemon: Rosterd, host: PamHost
) -> None:
    """rosterd sees the uid of the connect (SO_PEERCRED): the client reconnects after seteuid."""
    daemon.root.chmod(0o755)  # so that nobody reaches nss.sock and is told PERMISSION_DENIED
    daemon.ctl("user", "add", "alice")
    daemon.ctl("user", "lock", "alice")
    result = host.run([sys.executable, "-c", _EUID_SCRIPT, "alice", SERVICE])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "6"]  # PAM_IGNORE as nobody; PAM_PERM_DENIED as root
    assert host.logged("answers ACCOUNT to root only (euid 65534)")
