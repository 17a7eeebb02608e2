"""The NSS module itself, against a real rosterd and against a fake one that misbehaves.

Checks what tests/e2e/test_glibc_lookups.py takes for granted: no leak or
invalid access under valgrind, glibc's buffer and enumeration rules when the
entry points are called directly (nss_shim/tests/nss_direct.c), and lookups that
stay fast and harmless when rosterd is dead, stopped, restarted or replies
garbage. Timing bounds are generous on purpose: the module's deadline is
100 ms, and the tests only prove that nothing waits for seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rosterd import nss_wire
from rosterd.nss_wire import Kind, Status

from tests.helpers.daemon import Rosterd
from tests.helpers.hostview import run_in_view

REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "build" / "native"
NSS_DIRECT = NATIVE / "nss_direct"
VALGRIND = ["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=99"]
# The whole round trip of a failing lookup, process start-up included, with room
# for a loaded CI machine; the module itself gives up after 100 ms.
FAST_S = 2.0


@pytest.fixture(scope="module", autouse=True)
def _built() -> None:
    subprocess.run(["make", "-s", "-C", str(REPO / "nss_shim"), f"OUT={NATIVE}", "check-tools"],
                   check=True, capture_output=True, timeout=300)


def _direct(socket_path: Path | str, *args: str, module: str = "roster",
            valgrind: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [*(VALGRIND if valgrind else []), str(NSS_DIRECT),
            str(NATIVE / f"libnss_{module}.so.2"), *args]
    env = dict(os.environ, ROSTERD_NSS_SOCKET=str(socket_path))
    env.pop("ROSTERD_NSS_DISABLE", None)
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, check=False)


def _timed_lookup(socket_path: Path | str, user: str) -> tuple[str, int, float]:
    """One getpwnam_r through the module: (status, errno, milliseconds)."""
    result = _direct(socket_path, "--time", user)
    assert result.returncode == 0, result.stderr
    status, errno, ms = result.stdout.split()
    return status, int(errno), float(ms)


# --- the real daemon ---------------------------------------------------------------


def test_only_the_nss_entry_points_are_exported() -> None:
    for module in ("roster", "pwb"):
        out = subprocess.run(["nm", "-D", "--defined-only", str(NATIVE / f"libnss_{module}.so.2")],
                             capture_output=True, text=True, check=True).stdout
        symbols = sorted(line.split()[-1] for line in out.splitlines())
        assert symbols == sorted(
            f"_nss_{module}_{name}" for name in (
                "getpwnam_r", "getpwuid_r", "setpwent", "getpwent_r", "endpwent",
                "getgrnam_r", "getgrgid_r", "setgrent", "getgrent_r", "endgrent",
                "initgroups_dyn", "getspnam_r"))
        soname = subprocess.run(["readelf", "-d", str(NATIVE / f"libnss_{module}.so.2")],
                                capture_output=True, text=True, check=True).stdout
        assert f"[libnss_{module}.so.2]" in soname


@pytest.mark.parametrize("module", ["roster", "pwb"], ids=["as roster", "as pwb"])
def test_the_entry_points_called_directly_follow_glibc_rules(populated: Rosterd,
                                                             module: str) -> None:
    """Tiny buffers give ERANGE, enumeration survives ERANGE, threads and fork are safe."""
    result = _direct(populated.nss_socket, "alice", "analysts", module=module)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout


def test_the_entry_points_called_directly_are_clean_under_valgrind(populated: Rosterd) -> None:
    result = _direct(populated.nss_socket, "bob", "analysts", valgrind=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("argv", "exit_code"),
    [
        (["getent", "passwd", "alice"], 0),
        (["getent", "passwd", "20001"], 0),
        (["getent", "passwd", "nosuchuser"], 2),
        (["getent", "passwd"], 0),
        (["getent", "group", "analysts"], 0),
        (["getent", "group", "20500"], 0),
        (["getent", "group"], 0),
        (["getent", "initgroups", "alice"], 0),
        (["getent", "shadow", "alice"], 0),
        (["id", "alice"], 0),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_glibc_lookups_leak_nothing_under_valgrind(populated: Rosterd, argv: list[str],
                                                  exit_code: int) -> None:
    result = run_in_view([*VALGRIND, *argv], nss_socket=populated.nss_socket, timeout=120)
    assert result.returncode != 99, f"valgrind found errors:\n{result.stderr}"
    assert result.returncode == exit_code, result.stderr


def test_enumeration_through_glibc_matches_the_direct_enumeration(populated: Rosterd) -> None:
    for database in ("passwd", "group"):
        direct = _direct(populated.nss_socket, "--list", database)
        assert direct.returncode == 0 and direct.stdout.endswith("END\n"), direct.stdout
        via_glibc = run_in_view(["getent", database], nss_socket=populated.nss_socket)
        names = [line.split(":")[0] for line in via_glibc.stdout.splitlines()]
        assert names[-len(direct.stdout.splitlines()[:-1]):] == direct.stdout.splitlines()[:-1]


def test_a_killed_daemon_fails_lookups_at_once_while_files_users_resolve(
    populated: Rosterd,
) -> None:
    populated.kill()
    status, _, ms = _timed_lookup(populated.nss_socket, "alice")
    assert status == "UNAVAIL" and ms < FAST_S * 1000
    started = time.monotonic()
    result = run_in_view(["getent", "passwd", "alice"], nss_socket=populated.nss_socket)
    assert result.returncode == 2
    assert time.monotonic() - started < FAST_S + 1  # includes setting up the namespace
    assert run_in_view(["getent", "passwd", "root"],
                       nss_socket=populated.nss_socket).stdout.startswith("root:x:0:0:")


def test_a_stopped_daemon_costs_a_lookup_its_deadline_not_a_hang(populated: Rosterd) -> None:
    lookup_pid = populated.lookup_pid
    os.kill(lookup_pid, signal.SIGSTOP)
    try:
        status, errno, ms = _timed_lookup(populated.nss_socket, "alice")
        assert status == "UNAVAIL" and ms < FAST_S * 1000, (status, errno, ms)
        started = time.monotonic()
        result = run_in_view(["getent", "passwd", "alice"], nss_socket=populated.nss_socket)
        assert result.returncode == 2, result.stdout + result.stderr
        assert time.monotonic() - started < FAST_S + 1
        root = run_in_view(["getent", "passwd", "root"], nss_socket=populated.nss_socket)
        assert root.returncode == 0
    finally:
        os.kill(lookup_pid, signal.SIGCONT)
    # Once it runs again it answers; it may first have to drain the abandoned
    # connections, so allow it a few tries rather than one deadline.
    deadline = time.monotonic() + 10
    while (status := _timed_lookup(populated.nss_socket, "alice")[0]) != "SUCCESS":
        assert time.monotonic() < deadline, f"still {status} after SIGCONT"
        time.sleep(0.1)


def test_a_process_keeps_resolving_across_a_daemon_restart(populated: Rosterd) -> None:
    """The cached connection dies with the old daemon; the client reconnects once."""
    env = dict(os.environ, ROSTERD_NSS_SOCKET=str(populated.nss_socket))
    process = subprocess.Popen(
        [str(NSS_DIRECT), str(NATIVE / "libnss_roster.so.2"), "--twice", "alice"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().split()[0] == "SUCCESS"
        populated.stop()  # its exit status is test_glibc_lookups.py's business
        populated.start()
        process.stdin.write("go\n")
        process.stdin.flush()
        assert process.stdout.readline().split()[0] == "SUCCESS"
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


def test_inside_rosterd_the_module_never_connects(populated: Rosterd) -> None:
    result = run_in_view(["getent", "passwd", "alice"], nss_socket=populated.nss_socket,
                         env={"ROSTERD_NSS_DISABLE": "1"})
    assert result.returncode == 2


# --- a fake daemon that misbehaves ----------------------------------------------------


class FakeDaemon:
    """Answers every request on a Unix socket with whatever `reply` returns (None: stay silent)."""

    def __init__(self, path: Path, reply: Callable[[int, bytes], bytes | None]) -> None:
        self.path = path
        self._reply = reply
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(64)
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._connections.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            while True:
                header = conn.recv(8, socket.MSG_WAITALL)
                if len(header) < 8:
                    return
                _, kind, length = struct.unpack("<HHI", header)
                payload = conn.recv(length, socket.MSG_WAITALL) if length else b""
                answer = self._reply(kind, payload)
                if answer is None:
                    return  # keep the connection open, say nothing
                conn.sendall(answer)
        except OSError:
            return

    def close(self) -> None:
        self._listener.close()
        for conn in self._connections:
            conn.close()


@pytest.fixture
def fake_daemon(tmp_path: Path) -> Iterator[Callable[..., FakeDaemon]]:
    made: list[FakeDaemon] = []

    def make(reply: Callable[[int, bytes], bytes | None]) -> FakeDaemon:
        daemon = FakeDaemon(tmp_path / "nss.sock", reply)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.close()


_ALICE = nss_wire.encode_passwd(name=b"alice", uid=20000, gid=20000, gecos=b"",
                                home=b"/home/alice", shell=b"/bin/bash")


def _header(version: int, status: int, length: int) -> bytes:
    return struct.pack("<HHI", version, status, length)


GARBAGE = {
    "a reply of another protocol version": _header(2, 0, 0),
    "a reply announcing more than 16 MiB": _header(1, 0, nss_wire.MAX_REPLY_PAYLOAD_BYTES + 1),
    "a reply cut short before its payload ends": _header(1, 0, 100) + b"0123456789",
    "a reply cut short inside its header": b"\x01\x00\x00",
    "an OK reply whose record is truncated": nss_wire.encode_reply(Status.OK, _ALICE[:-4]),
    "an OK reply whose record has a NUL in a name": nss_wire.encode_reply(
        Status.OK, _ALICE.replace(b"alice", b"al\0ce", 1)),
    "an OK reply with no payload": nss_wire.encode_reply(Status.OK),
    "a status this client does not know": _header(1, 77, 0),
    "a BAD_REQUEST status": nss_wire.encode_reply(Status.BAD_REQUEST),
}


@pytest.mark.parametrize("case", sorted(GARBAGE), ids=sorted(GARBAGE))
def test_a_garbage_reply_is_unavail_quickly_and_cleanly(
    fake_daemon: Callable[..., FakeDaemon], case: str,
) -> None:
    daemon = fake_daemon(lambda kind, payload: GARBAGE[case])
    result = _direct(daemon.path, "--time", "alice", valgrind=True)
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stderr}"
    status, _, ms = result.stdout.split()
    assert status == "UNAVAIL" and float(ms) < FAST_S * 1000


def test_a_silent_daemon_costs_one_deadline(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(lambda kind, payload: None)
    status, errno, ms = _timed_lookup(daemon.path, "alice")
    assert status == "UNAVAIL" and ms < FAST_S * 1000, (status, errno, ms)


def test_a_daemon_that_is_busy_says_try_again(fake_daemon: Callable[..., FakeDaemon]) -> None:
    daemon = fake_daemon(lambda kind, payload: nss_wire.encode_reply(Status.TRY_AGAIN))
    assert _timed_lookup(daemon.path, "alice")[0] == "TRYAGAIN"


def test_enumeration_walks_every_page_by_cursor(fake_daemon: Callable[..., FakeDaemon]) -> None:
    """Three pages of two users; the cursor is opaque, so use odd values."""
    users = [nss_wire.encode_passwd(name=f"u{i}".encode(), uid=30000 + i, gid=30000 + i,
                                    gecos=b"x" * (i * 50), home=b"/h", shell=b"/bin/sh")
             for i in range(6)]
    pages = {0: (users[0:2], 777), 777: (users[2:4], 12345), 12345: (users[4:6], 0)}
    asked: list[int] = []

    def reply(kind: int, payload: bytes) -> bytes:
        if kind != Kind.GETPWENT:
            return nss_wire.encode_reply(Status.NOT_FOUND)
        (cursor,) = struct.unpack("<Q", payload)
        asked.append(cursor)
        records, next_cursor = pages[cursor]
        return nss_wire.encode_reply(Status.OK, nss_wire.encode_page(records, next_cursor))

    daemon = fake_daemon(reply)
    result = _direct(daemon.path, "--list", "passwd", valgrind=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [f"u{i}" for i in range(6)] + ["END"]
    assert asked == [0, 777, 12345]


def test_an_empty_page_that_points_further_ends_the_enumeration(
    fake_daemon: Callable[..., FakeDaemon],
) -> None:
    """A page must hold a record while any remain; otherwise the client would loop forever."""
    daemon = fake_daemon(
        lambda kind, payload: nss_wire.encode_reply(Status.OK, nss_wire.encode_page([], 5)))
    result = _direct(daemon.path, "--list", "group")
    assert result.stdout == "FAILED\n"
