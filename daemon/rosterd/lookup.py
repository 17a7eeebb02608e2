"""Answers the NSS module's lookups on nss.sock from an in-memory index of pre-encoded records.

The index is the cache that replaces NSCD: it is built from the store at start
and patched after every committed write (Accounts calls `LookupIndex.apply`), so
SQLite is never on the lookup path. Every record is kept already encoded in the
wire format of proto/nss-wire.md, which is also the layout a later memory-mapped
snapshot will publish.

The server is one thread with one epoll loop over non-blocking sockets: any local
user can connect, so a slow, silent or hostile client can only ever cost its own
connection, never another client's lookup.
"""

from __future__ import annotations

import bisect
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rosterd import __version__, nss_wire
from rosterd.config import ProvisioningConfig
from rosterd.model import Change, Group, User
from rosterd.nss_wire import Kind, Status, WireError

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_MS = 1000
IDLE_TIMEOUT_S = 60.0
MAX_CONNECTIONS = 1024
RECV_CHUNK_BYTES = 64 * 1024
# Past this many queued reply bytes the server stops reading a connection's
# requests until the client has read its replies, so memory per connection stays
# bounded however fast a client writes and however slowly it reads.
OUTBOX_HIGH_WATER_BYTES = 256 * 1024
HOUSEKEEPING_INTERVAL_S = 0.5

_NOT_FOUND = nss_wire.encode_reply(Status.NOT_FOUND)
_DENIED = nss_wire.encode_reply(Status.PERMISSION_DENIED)
_BAD_REQUEST = nss_wire.encode_reply(Status.BAD_REQUEST)
_BAD_VERSION = nss_wire.encode_reply(Status.UNSUPPORTED_VERSION)
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _ok(payload: bytes) -> bytes:
    return nss_wire.encode_reply(Status.OK, payload)


# One encoded copy per entry: the whole GETPWNAM/GETGRNAM reply, whose record
# (past the header) also goes into enumeration pages. The rare shadow and
# ACCOUNT replies are built when asked: at 100,000 users every extra copy kept
# costs tens of megabytes.


@dataclass(slots=True)
class _IndexedUser:
    name: bytes
    uid: int
    active: bool
    passwd_reply: bytes

    @property
    def passwd_record(self) -> memoryview:
        return memoryview(self.passwd_reply)[nss_wire.HEADER_BYTES:]


@dataclass(slots=True)
class _IndexedGroup:
    name: bytes
    gid: int
    members: tuple[bytes, ...]
    group_reply: bytes

    @property
    def group_record(self) -> memoryview:
        return memoryview(self.group_reply)[nss_wire.HEADER_BYTES:]


class LookupIndex:
    """Users and groups keyed every way glibc asks for them, as ready-to-send replies."""

    def __init__(self, provisioning: ProvisioningConfig | None = None) -> None:
        # ACCOUNT replies carry the host's home settings, so pam_roster reads the
        # skeleton and mode from rosterd's one config file rather than its own.
        self._provisioning = provisioning if provisioning is not None else ProvisioningConfig()
        self._lock = threading.Lock()
        self._users_by_id: dict[str, _IndexedUser] = {}
        self._users_by_name: dict[bytes, _IndexedUser] = {}
        self._users_by_uid: dict[int, _IndexedUser] = {}
        self._groups_by_id: dict[str, _IndexedGroup] = {}
        self._groups_by_name: dict[bytes, _IndexedGroup] = {}
        self._groups_by_gid: dict[int, _IndexedGroup] = {}
        self._gids_of_member: dict[bytes, set[int]] = {}
        self._sorted_uids: list[int] = []
        self._sorted_gids: list[int] = []

    # --- writes -----------------------------------------------------------

    def load(self, users: Iterable[User], groups: Iterable[Group]) -> None:
        self.apply(Change(users_upserted=list(users), groups_upserted=list(groups)))

    def apply(self, change: Change) -> None:
        with self._lock:
            for group in change.groups_removed:
                self._drop_group(group.id)
            for user in change.users_removed:
                self._drop_user(user.id)
            for user in change.users_upserted:
                self._drop_user(user.id)
                self._put_user(user)
            for group in change.groups_upserted:
                self._drop_group(group.id)
                self._put_group(group)

    def _put_user(self, user: User) -> None:
        name = user.name.encode()
        record = nss_wire.encode_passwd(
            name=name,
            uid=user.uid,
            gid=user.gid,
            gecos=user.gecos.encode(),
            home=user.home.encode(),
            shell=user.shell.encode(),
        )
        entry = _IndexedUser(name=name, uid=user.uid, active=user.active, passwd_reply=_ok(record))
        self._users_by_id[user.id] = entry
        self._users_by_name[name] = entry
        self._users_by_uid[user.uid] = entry
        bisect.insort(self._sorted_uids, user.uid)

    def _drop_user(self, user_id: str) -> None:
        entry = self._users_by_id.pop(user_id, None)
        if entry is None:
            return
        self._users_by_name.pop(entry.name, None)
        self._users_by_uid.pop(entry.uid, None)
        _remove_sorted(self._sorted_uids, entry.uid)

    def _put_group(self, group: Group) -> None:
        name = group.name.encode()
        members = [m.encode() for m in group.member_names]
        record = nss_wire.encode_group(name=name, gid=group.gid, members=members)
        entry = _IndexedGroup(name=name, gid=group.gid, members=tuple(members),
                              group_reply=_ok(record))
        self._groups_by_id[group.id] = entry
        self._groups_by_name[name] = entry
        self._groups_by_gid[group.gid] = entry
        bisect.insort(self._sorted_gids, group.gid)
        for member in entry.members:
            self._gids_of_member.setdefault(member, set()).add(group.gid)

    def _drop_group(self, group_id: str) -> None:
        entry = self._groups_by_id.pop(group_id, None)
        if entry is None:
            return
        self._groups_by_name.pop(entry.name, None)
        self._groups_by_gid.pop(entry.gid, None)
        _remove_sorted(self._sorted_gids, entry.gid)
        for member in entry.members:
            gids = self._gids_of_member.get(member)
            if gids is not None:
                gids.discard(entry.gid)
                if not gids:
                    del self._gids_of_member[member]

    # --- reads ------------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        return len(self._users_by_id), len(self._groups_by_id)

    def answer(self, request: nss_wire.Request, peer_uid: int) -> bytes:
        """Returns the whole reply frame for one request."""
        kind = request.kind
        with self._lock:
            if kind is Kind.GETPWNAM:
                user = self._users_by_name.get(request.name)
                return user.passwd_reply if user else _NOT_FOUND
            if kind is Kind.GETPWUID:
                user = self._users_by_uid.get(request.number)
                return user.passwd_reply if user else _NOT_FOUND
            if kind is Kind.GETGRNAM:
                group = self._groups_by_name.get(request.name)
                return group.group_reply if group else _NOT_FOUND
            if kind is Kind.GETGRGID:
                group = self._groups_by_gid.get(request.number)
                return group.group_reply if group else _NOT_FOUND
            if kind is Kind.INITGROUPS:
                if request.name not in self._users_by_name:
                    return _NOT_FOUND
                gids = sorted(self._gids_of_member.get(request.name, ()))
                return _ok(nss_wire.encode_gid_list(gids))
            if kind is Kind.GETSPNAM:
                # Shadow entries are for root only, as /etc/shadow is (shadow(5)).
                if peer_uid != 0:
                    return _DENIED
                user = self._users_by_name.get(request.name)
                if user is None:
                    return _NOT_FOUND
                return _ok(nss_wire.encode_shadow(name=user.name, locked=not user.active))
            if kind is Kind.ACCOUNT:
                # PAM's account and session steps run as root (sshd's monitor, su,
                # login); whether an account is locked is not every user's business.
                if peer_uid != 0:
                    return _DENIED
                user = self._users_by_name.get(request.name)
                return self._account_reply(user) if user else _NOT_FOUND
            if kind is Kind.GETPWENT:
                return _ok(self._page(self._sorted_uids, request.number, self._passwd_record))
            if kind is Kind.GETGRENT:
                return _ok(self._page(self._sorted_gids, request.number, self._group_record))
        return _ok(nss_wire.encode_string(__version__.encode()))  # Kind.PING

    def _account_reply(self, user: _IndexedUser) -> bytes:
        settings = self._provisioning
        return _ok(nss_wire.encode_account(
            active=user.active,
            home_mode=settings.home_mode,
            home_root=str(settings.home_root).encode(),
            skel_dir=str(settings.skel_dir).encode(),
            passwd_record=bytes(user.passwd_record),
        ))

    def _passwd_record(self, uid: int) -> memoryview | None:
        user = self._users_by_uid.get(uid)
        return user.passwd_record if user else None

    def _group_record(self, gid: int) -> memoryview | None:
        group = self._groups_by_gid.get(gid)
        return group.group_record if group else None

    @staticmethod
    def _page(
        sorted_ids: list[int], cursor: int, record_of: Callable[[int], memoryview | None]
    ) -> bytes:
        # The cursor is the first ID not yet returned, so an entry added or removed
        # between two pages never shifts the ones that follow.
        start = bisect.bisect_left(sorted_ids, cursor)
        records: list[memoryview] = []
        size = 0
        position = start
        while position < len(sorted_ids) and len(records) < nss_wire.PAGE_MAX_RECORDS:
            if size >= nss_wire.PAGE_SOFT_LIMIT_BYTES:
                break
            record = record_of(sorted_ids[position])
            position += 1
            if record is not None:
                records.append(record)
                size += len(record)
        next_cursor = sorted_ids[position - 1] + 1 if position < len(sorted_ids) else 0
        return nss_wire.encode_page(records, next_cursor)


def _remove_sorted(sorted_ids: list[int], number: int) -> None:
    position = bisect.bisect_left(sorted_ids, number)
    if position < len(sorted_ids) and sorted_ids[position] == number:
        del sorted_ids[position]


@dataclass(frozen=True)
class _Watch:
    """Another socket served by the same loop, e.g. the lookup process's control channel."""

    on_readable: Callable[[], None]


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    peer_uid: int
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    last_activity: float = 0.0
    partial_since: float | None = None  # when the first byte of an unfinished request came
    closing: bool = False
    registered_events: int = selectors.EVENT_READ


class LookupServer:
    """The nss.sock listener: one thread, one event loop, bounded everything."""

    def __init__(self, index: LookupIndex, socket_path: Path) -> None:
        self._index = index
        self._path = socket_path
        self._selector = selectors.DefaultSelector()
        self._connections: dict[int, _Connection] = {}
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._adopted = False
        self.lookups_served = 0

    @property
    def alive(self) -> bool:
        """Whether the lookup thread is running (the daemon feeds systemd's watchdog on it)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def bind(self) -> None:
        """Creates the socket file; any local user may connect (mode 0666)."""
        try:
            self._path.unlink()
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        listener.bind(str(self._path))
        os.chmod(self._path, 0o666)  # noqa: S103 - lookups are for every local user
        listener.listen(512)
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    def adopt(self, listener: socket.socket) -> None:
        """Serves on a listening socket systemd bound (rosterd.socket, sd_listen_fds(3)).

        Its file and mode are systemd's: it is neither unlinked nor closed for good
        here, so lookups queue in it while the daemon restarts.
        """
        listener.setblocking(False)
        self._listener = listener
        self._adopted = True
        self._selector.register(listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="lookup", daemon=True)
        self._thread.start()

    def watch(self, sock: socket.socket, on_readable: Callable[[], None]) -> None:
        """Serves one more socket in the loop: `on_readable` runs when it has data."""
        self._selector.register(sock, selectors.EVENT_READ, _Watch(on_readable))

    def request_stop(self) -> None:
        """Ends run() after the current round of events; safe to call from inside the loop."""
        self._stopping.set()

    def close_in_parent(self) -> None:
        """Drops this process's copies of the sockets once a forked child serves them.

        The socket file stays: it belongs to the child, which removes it when it stops.
        """
        if self._listener is not None:
            self._listener.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def stop(self) -> None:
        self._stopping.set()
        self._wake_w.send(b"\0")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for conn in list(self._connections.values()):
            self._close(conn)
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            try:
                if not self._adopted:
                    self._path.unlink()
            except FileNotFoundError:
                pass
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def run(self) -> None:
        """Serves lookups on the calling thread until stop() or request_stop()."""
        next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL_S
        while not self._stopping.is_set():
            events = self._selector.select(timeout=HOUSEKEEPING_INTERVAL_S)
            now = time.monotonic()
            for key, mask in events:
                if key.fileobj is self._listener:
                    self._accept(now)
                elif key.fileobj is self._wake_r:
                    self._wake_r.recv(64)
                elif isinstance(key.data, _Watch):
                    key.data.on_readable()
                else:
                    conn: _Connection = key.data
                    try:
                        if mask & selectors.EVENT_READ:
                            self._on_readable(conn, now)
                        if mask & selectors.EVENT_WRITE and not conn.closing:
                            self._flush(conn)
                    except OSError as err:
                        log.debug("lookup connection dropped: %s", err)
                        self._close(conn)
            if now >= next_housekeeping:
                self._expire(now)
                next_housekeeping = now + HOUSEKEEPING_INTERVAL_S

    def _accept(self, now: float) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # EMFILE and friends: keep serving the others
                log.warning("cannot accept a lookup connection: %s", err)
                return
            if len(self._connections) >= MAX_CONNECTIONS:
                oldest = min(self._connections.values(), key=lambda c: c.last_activity)
                self._close(oldest)
            sock.setblocking(False)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            _, peer_uid, _ = _PEERCRED.unpack(creds)
            conn = _Connection(sock=sock, peer_uid=peer_uid, last_activity=now)
            self._connections[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _on_readable(self, conn: _Connection, now: float) -> None:
        data = conn.sock.recv(RECV_CHUNK_BYTES)
        if not data:
            self._close(conn)
            return
        conn.last_activity = now
        conn.inbox += data
        self._serve_inbox(conn, now)
        if not conn.closing:
            self._flush(conn)

    def _serve_inbox(self, conn: _Connection, now: float) -> None:
        inbox = conn.inbox
        offset = 0
        while (
            len(inbox) - offset >= nss_wire.HEADER_BYTES
            and len(conn.outbox) <= OUTBOX_HIGH_WATER_BYTES
        ):
            version, kind, length = nss_wire.HEADER.unpack_from(inbox, offset)
            if length > nss_wire.MAX_REQUEST_PAYLOAD_BYTES:
                log.debug("lookup client sent a %d-byte request; closing", length)
                self._close(conn)
                return
            if version != nss_wire.VERSION:
                self._reply_and_close(conn, _BAD_VERSION)
                return
            end = offset + nss_wire.HEADER_BYTES + length
            if len(inbox) < end:
                break
            payload = bytes(inbox[offset + nss_wire.HEADER_BYTES : end])
            offset = end
            try:
                request = nss_wire.parse_request(kind, payload)
            except WireError as err:
                log.debug("bad lookup request: %s", err)
                self._reply_and_close(conn, _BAD_REQUEST)
                return
            conn.outbox += self._index.answer(request, conn.peer_uid)
            self.lookups_served += 1
        del inbox[:offset]
        if not inbox or len(conn.outbox) > OUTBOX_HIGH_WATER_BYTES:
            conn.partial_since = None  # waiting on the client to read is not a slow request
        elif conn.partial_since is None:
            conn.partial_since = now

    def _reply_and_close(self, conn: _Connection, reply: bytes) -> None:
        conn.outbox += reply
        conn.closing = True
        try:
            self._flush(conn)
        except OSError:
            pass
        self._close(conn)

    def _flush(self, conn: _Connection) -> None:
        if conn.outbox:
            try:
                sent = conn.sock.send(conn.outbox)
            except BlockingIOError:
                sent = 0
            del conn.outbox[:sent]
            if sent:
                conn.last_activity = time.monotonic()
            if conn.inbox and not conn.closing and len(conn.outbox) <= OUTBOX_HIGH_WATER_BYTES:
                self._serve_inbox(conn, conn.last_activity)
        if conn.closing:
            return
        events = selectors.EVENT_WRITE if conn.outbox else 0
        if len(conn.outbox) <= OUTBOX_HIGH_WATER_BYTES:
            events |= selectors.EVENT_READ
        if events != conn.registered_events:
            self._selector.modify(conn.sock, events, conn)
            conn.registered_events = events

    def _expire(self, now: float) -> None:
        request_deadline = REQUEST_TIMEOUT_MS / 1000
        for conn in list(self._connections.values()):
            if conn.partial_since is not None and now - conn.partial_since > request_deadline:
                log.debug("lookup client too slow to send its request; closing")
                self._close(conn)
            elif now - conn.last_activity > IDLE_TIMEOUT_S:
                self._close(conn)

    def _close(self, conn: _Connection) -> None:
        fd = conn.sock.fileno()
        if fd == -1 or self._connections.pop(fd, None) is None:
            return
        conn.closing = True
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
