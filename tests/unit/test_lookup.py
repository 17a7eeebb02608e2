"""The lookup index and server, over a real Unix socket, including clients that misbehave."""

from __future__ import annotations

import dataclasses
import os
import socket
import struct
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rosterd import lookup, nss_wire
from rosterd.config import ProvisioningConfig
from rosterd.lookup import LookupIndex, LookupServer
from rosterd.model import Change, Group, User
from rosterd.nss_wire import Kind, Status

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _user(name: str, uid: int, *, locked: bool = False) -> User:
    return User(id=f"u-{name}", name=name, uid=uid, gid=uid, gecos=name.title(),
                home=f"/home/{name}", shell="/bin/bash", locked=locked, external_id=None,
                created=NOW, modified=NOW)


def _group(name: str, gid: int, members: tuple[str, ...] = ()) -> Group:
    return Group(id=f"g-{name}", name=name, gid=gid, member_names=tuple(sorted(members)),
                 private_for_user_id=None, external_id=None, created=NOW, modified=NOW)


@pytest.fixture
def index() -> LookupIndex:
    idx = LookupIndex()
    idx.load([_user("alice", 20000), _user("bob", 20001, locked=True)],
             [_group("alice", 20000), _group("bob", 20001),
              _group("analysts", 20100, ("alice", "bob"))])
    return idx


@pytest.fixture
def server(index: LookupIndex) -> Iterator[LookupServer]:
    directory = Path(tempfile.mkdtemp(prefix="rd-lk-", dir="/tmp"))
    directory.chmod(0o755)  # unprivileged peers must reach the socket
    srv = LookupServer(index, directory / "nss.sock")
    srv.bind()
    srv.start()
    yield srv
    srv.stop()
    os.rmdir(directory)


def _connect(srv: LookupServer) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(srv._path))
    return sock


def _read_reply(sock: socket.socket) -> tuple[int, bytes]:
    header = _recv_exactly(sock, 8)
    _, status, length = nss_wire.parse_header(header)
    return status, _recv_exactly(sock, length)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _ask(srv: LookupServer, kind: Kind, **fields: object) -> tuple[int, bytes]:
    with _connect(srv) as sock:
        sock.sendall(nss_wire.encode_request(kind, **fields))  # type: ignore[arg-type]
        return _read_reply(sock)


def test_each_lookup_kind_answers_from_the_index(server: LookupServer) -> None:
    status, payload = _ask(server, Kind.GETPWNAM, name=b"alice")
    assert status == Status.OK
    expected = "alice:x:20000:20000:Alice:/home/alice:/bin/bash"
    assert nss_wire.decode_passwd(payload).line() == expected
    status, payload = _ask(server, Kind.GETPWUID, number=20001)
    assert nss_wire.decode_passwd(payload).name == b"bob"
    status, payload = _ask(server, Kind.GETGRNAM, name=b"analysts")
    assert nss_wire.decode_group(payload).line() == "analysts:x:20100:alice,bob"
    status, payload = _ask(server, Kind.GETGRGID, number=20000)
    assert nss_wire.decode_group(payload).name == b"alice"
    status, payload = _ask(server, Kind.INITGROUPS, name=b"bob")
    assert nss_wire.decode_gid_list(payload) == [20100]
    assert _ask(server, Kind.GETPWNAM, name=b"nobody-here")[0] == Status.NOT_FOUND
    assert _ask(server, Kind.INITGROUPS, name=b"nobody-here")[0] == Status.NOT_FOUND
    assert _ask(server, Kind.PING)[0] == Status.OK


def test_shadow_is_for_root_only_and_shows_a_locked_account(server: LookupServer) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to be a uid-0 peer")
    status, payload = _ask(server, Kind.GETSPNAM, name=b"bob")
    assert status == Status.OK and payload.startswith(struct.pack("<H", 3) + b"bob")
    assert b"!*" in payload
    pid = os.fork()
    if pid == 0:  # an unprivileged peer
        os.setuid(65534)
        code = _ask(server, Kind.GETSPNAM, name=b"bob")[0]
        os._exit(0 if code == Status.PERMISSION_DENIED else 1)
    assert os.waitpid(pid, 0)[1] == 0


def test_account_is_for_root_only_and_carries_the_home_settings(server: LookupServer) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to be a uid-0 peer")
    status, payload = _ask(server, Kind.ACCOUNT, name=b"bob")
    assert status == Status.OK
    account = nss_wire.decode_account(payload)
    assert (account.active, account.home_mode) == (False, 0o700)
    assert (account.home_root, account.skel_dir) == (b"/home", b"/etc/skel")
    assert account.passwd.line() == "bob:x:20001:20001:Bob:/home/bob:/bin/bash"
    assert nss_wire.decode_account(_ask(server, Kind.ACCOUNT, name=b"alice")[1]).active
    assert _ask(server, Kind.ACCOUNT, name=b"nobody-here")[0] == Status.NOT_FOUND
    pid = os.fork()
    if pid == 0:  # an unprivileged peer
        os.setuid(65534)
        code = _ask(server, Kind.ACCOUNT, name=b"alice")[0]
        os._exit(0 if code == Status.PERMISSION_DENIED else 1)
    assert os.waitpid(pid, 0)[1] == 0


def test_account_replies_use_the_provisioning_settings_given() -> None:
    settings = ProvisioningConfig(home_root=Path("/srv/homes"), skel_dir=Path("/opt/skel"),
                                  home_mode=0o750)
    idx = LookupIndex(settings)
    idx.load([_user("alice", 20000)], [])
    reply = idx.answer(nss_wire.Request(Kind.ACCOUNT, name=b"alice"), 0)
    account = nss_wire.decode_account(reply[8:])
    assert (account.home_mode, account.home_root, account.skel_dir) == (
        0o750, b"/srv/homes", b"/opt/skel")
    locked = dataclasses.replace(_user("alice", 20000), locked=True)
    idx.apply(Change(users_upserted=[locked]))
    reply = idx.answer(nss_wire.Request(Kind.ACCOUNT, name=b"alice"), 0)
    assert not nss_wire.decode_account(reply[8:]).active


def test_enumeration_pages_through_100000_users_in_uid_order() -> None:
    idx = LookupIndex()
    idx.load([_user(f"u{n}", 20000 + n) for n in range(100_000)], [])
    cursor, seen, pages = 0, [], 0
    while True:
        reply = idx.answer(nss_wire.Request(Kind.GETPWENT, number=cursor), 0)
        assert nss_wire.parse_header(reply[:8])[1] == Status.OK
        payload = reply[8:]
        records, cursor = nss_wire.decode_passwd_page(payload)
        seen.extend(r.uid for r in records)
        pages += 1
        if cursor == 0:
            break
    assert seen == list(range(20000, 120000))
    assert pages == 100_000 // nss_wire.PAGE_MAX_RECORDS + 1


def test_an_update_is_visible_to_the_next_lookup(index: LookupIndex) -> None:
    renamed = dataclasses.replace(_user("alice2", 20000), id="u-alice")
    index.apply(Change(users_upserted=[renamed]))
    ask = lambda name: index.answer(nss_wire.Request(Kind.GETPWNAM, name=name), 0)  # noqa: E731
    assert ask(b"alice")[:8] == nss_wire.encode_reply(Status.NOT_FOUND)
    assert nss_wire.decode_passwd(ask(b"alice2")[8:]).uid == 20000
    index.apply(Change(groups_removed=[_group("analysts", 20100)]))
    reply = index.answer(nss_wire.Request(Kind.INITGROUPS, name=b"bob"), 0)
    assert nss_wire.decode_gid_list(reply[8:]) == []


def test_many_requests_on_one_kept_connection(server: LookupServer) -> None:
    with _connect(server) as sock:
        for _ in range(200):
            sock.sendall(nss_wire.encode_request(Kind.GETPWUID, number=20000))
            assert _read_reply(sock)[0] == Status.OK
        # pipelined: several requests in one write, answered in order
        sock.sendall(nss_wire.encode_request(Kind.GETPWNAM, name=b"alice")
                     + nss_wire.encode_request(Kind.GETPWNAM, name=b"zed"))
        assert _read_reply(sock)[0] == Status.OK
        assert _read_reply(sock)[0] == Status.NOT_FOUND


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


@pytest.mark.parametrize(
    ("frame", "expected_status"),
    [
        (struct.pack("<HHI", 1, 77, 0), Status.BAD_REQUEST),
        (struct.pack("<HHI", 9, Kind.GETPWNAM, 5) + b"alice", Status.UNSUPPORTED_VERSION),
        (struct.pack("<HHI", 1, Kind.GETPWUID, 2) + b"\0\0", Status.BAD_REQUEST),
        (struct.pack("<HHI", 1, Kind.GETPWNAM, 5) + b"a\0ice", Status.BAD_REQUEST),
        (struct.pack("<HHI", 1, Kind.GETPWNAM, 0), Status.BAD_REQUEST),
    ],
    ids=["unknown kind", "future version", "short uid", "NUL in name", "empty name"],
)
def test_a_malformed_request_gets_an_error_and_the_connection_closes(
    server: LookupServer, frame: bytes, expected_status: Status
) -> None:
    with _connect(server) as sock:
        sock.sendall(frame)
        assert _read_reply(sock)[0] == expected_status
        assert _closed_by_server(sock)
    assert _ask(server, Kind.GETPWNAM, name=b"alice")[0] == Status.OK


def test_an_oversized_request_is_dropped_without_reading_it(server: LookupServer) -> None:
    with _connect(server) as sock:
        sock.sendall(struct.pack("<HHI", 1, Kind.GETPWNAM, 0xFFFFFFFF) + b"x" * 100)
        assert _closed_by_server(sock)
    assert _ask(server, Kind.GETPWNAM, name=b"alice")[0] == Status.OK


def test_slow_truncated_and_silent_clients_do_not_stall_others(
    server: LookupServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lookup, "REQUEST_TIMEOUT_MS", 300)
    # A client that sends half a header and stops, one that sends a header
    # promising a payload that never comes, and one that connects and says nothing.
    half = _connect(server)
    half.sendall(b"\x01\x00\x01")
    truncated = _connect(server)
    truncated.sendall(struct.pack("<HHI", 1, Kind.GETPWNAM, 10) + b"ali")
    silent = _connect(server)
    started = time.monotonic()
    assert _ask(server, Kind.GETPWNAM, name=b"alice")[0] == Status.OK
    assert time.monotonic() - started < 1.0
    # the two with a partial request are cut off once the request deadline passes
    assert _closed_by_server(half) and _closed_by_server(truncated)
    assert server.open_connections >= 1  # the silent one is only closed when idle
    for sock in (half, truncated, silent):
        sock.close()


def test_a_client_that_never_reads_costs_bounded_memory_then_is_dropped(
    server: LookupServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lookup, "IDLE_TIMEOUT_S", 1.0)
    sock = _connect(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    request = nss_wire.encode_request(Kind.GETPWENT, number=0)
    sent_until = time.monotonic() + 1.0
    while time.monotonic() < sent_until:  # write as fast as possible, never read
        try:
            sock.send(request * 64)
        except BlockingIOError:
            time.sleep(0.01)
    (conn,) = server._connections.values()
    assert len(conn.outbox) <= lookup.OUTBOX_HIGH_WATER_BYTES + 4096
    assert len(conn.inbox) <= 2 * lookup.RECV_CHUNK_BYTES
    assert _ask(server, Kind.GETPWNAM, name=b"alice")[0] == Status.OK
    deadline = time.monotonic() + 10
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.open_connections == 0
    sock.close()


def test_connections_beyond_the_limit_evict_the_longest_idle(
    server: LookupServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lookup, "MAX_CONNECTIONS", 8)
    idle = [_connect(server) for _ in range(12)]
    assert _ask(server, Kind.GETPWNAM, name=b"alice")[0] == Status.OK
    assert server.open_connections <= 8
    for sock in idle:
        sock.close()
