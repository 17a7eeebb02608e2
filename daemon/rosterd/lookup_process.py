"""Runs the lookup server in a child process of its own, fed each committed change over a socket.

A login's lookup must not wait on provisioning work. In one process it would:
the lookup thread has to win CPython's global interpreter lock from the SCIM,
OpenID and admin threads, and under a sync it waited milliseconds for it
(measured: median 42 µs at rest, 205 µs and p99 3.4 ms during 4-client SCIM
creates). A forked child has an interpreter to itself.

The parent builds the index and binds nss.sock, then forks before it starts any
thread (fork copies only the calling thread). Each change the parent commits is
sent to the child, and the parent waits for the child's acknowledgement, so a
change is visible to getent before the admin or SCIM call that made it returns.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass

from rosterd.lookup import LookupIndex, LookupServer
from rosterd.model import Change

log = logging.getLogger(__name__)

CONTROL_TIMEOUT_S = 30.0  # a 1,000-user batch is applied in well under a second
STOP_TIMEOUT_S = 5.0
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class LookupStats:
    lookups_served: int
    open_connections: int
    users: int
    groups: int


def _send(channel: socket.socket, message: object) -> None:
    # Only the parent and its own child speak on this socketpair, so pickle is safe.
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    channel.sendall(_LENGTH.pack(len(data)) + data)


def _receive(channel: socket.socket) -> object:
    (length,) = _LENGTH.unpack(_read_exactly(channel, _LENGTH.size))
    return pickle.loads(_read_exactly(channel, length))  # noqa: S301 - our own child


def _read_exactly(channel: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = channel.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("the other end of the lookup control channel closed")
        chunks += chunk
    return bytes(chunks)


class LookupProcess:
    """The parent's handle on the lookup child: apply changes, read counters, stop it."""

    def __init__(self, index: LookupIndex, server: LookupServer) -> None:
        self._index = index
        self._server = server
        self._started = False
        self._channel: socket.socket | None = None
        self._pid = 0
        self._lock = threading.Lock()  # one request and its reply at a time

    def start(self) -> None:
        """Forks the child; call it after the server is bound and before any thread starts."""
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Parent and child share the index's pages until one of them writes to
        # them, and CPython writes an object's header whenever the collector
        # visits it: freeze moves every object out of the collector's reach.
        gc.collect()
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the child: serve until told to stop or orphaned
            parent_end.close()
            code = 1
            try:
                code = _serve_in_child(self._server, self._index, child_end)
            finally:
                os._exit(code)
        child_end.close()
        parent_end.settimeout(CONTROL_TIMEOUT_S)
        self._server.close_in_parent()
        # The parent keeps its reference to the index but never reads it again:
        # freeing it would touch (and so copy) every page the child still shares.
        self._started = True
        self._channel = parent_end
        self._pid = pid
        log.info("lookups served by process %d", pid)

    def apply(self, change: Change) -> None:
        """Accounts' on_change: returns once the lookup child serves the change."""
        if not self._started:  # before start(): the index is still served from here
            self._index.apply(change)
            return
        self._call(("apply", change))

    def stats(self) -> LookupStats:
        reply = self._call(("stats",))
        assert isinstance(reply, LookupStats)
        return reply

    @property
    def alive(self) -> bool:
        if not self._pid:
            return False
        try:
            pid, _ = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0

    def _call(self, message: tuple[object, ...]) -> object:
        assert self._channel is not None
        with self._lock:
            try:
                _send(self._channel, message)
                return _receive(self._channel)
            except (OSError, ConnectionError) as err:
                log.error("the lookup process does not answer (%s); restart rosterd", err)
                raise

    def stop(self) -> None:
        if self._channel is None:
            return
        try:
            self._call(("stop",))
        except (OSError, ConnectionError):
            pass
        self._channel.close()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and self.alive:
            time.sleep(0.02)
        if self.alive:
            os.kill(self._pid, signal.SIGKILL)
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:
            pass


def _serve_in_child(server: LookupServer, index: LookupIndex, channel: socket.socket) -> int:
    # Ctrl-C in `make run` reaches the whole process group: the parent decides when
    # lookups stop. SIGTERM keeps its default, so `kill` and systemd still work.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def on_control() -> None:
        try:
            message = _receive(channel)
        except (OSError, ConnectionError):
            server.request_stop()  # the parent is gone: nobody will feed us changes
            return
        assert isinstance(message, tuple)
        if message[0] == "apply":
            index.apply(message[1])
            _send(channel, "ok")
        elif message[0] == "stats":
            users, groups = index.counts()
            _send(channel, LookupStats(server.lookups_served, server.open_connections,
                                       users, groups))
        elif message[0] == "stop":
            server.request_stop()
            _send(channel, "ok")

    server.watch(channel, on_control)
    server.run()
    server.stop()
    return 0
