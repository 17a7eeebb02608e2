"""The last SCIM request and the last login since start, kept in memory for `rosterctl status`.

One Activity is made in daemon.serve() and handed to the SCIM app, the OpenID
registrar and the admin API; nothing here is written to disk, so a restart
forgets it ("never since start").
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_PATH_CHARS = 256
MAX_FIELD_CHARS = 128
ENTRY_POINTS = ("grpc", "web", "rosterctl")
# rosterctl's channel starts its user agent with this, so the admin API can tell a
# login registered with `rosterctl register` from one sent by another gRPC client.
ROSTERCTL_USER_AGENT = "rosterctl/"


@dataclass(frozen=True)
class ScimRequestSeen:
    at: datetime
    method: str
    path: str            # without the query string, which may hold personal data
    client: str          # the client's address
    token_label: str     # empty when no valid token was presented
    status: int


@dataclass(frozen=True)
class LoginSeen:
    at: datetime
    user: str            # POSIX login name
    entry_point: str     # one of ENTRY_POINTS


def _now() -> datetime:
    return datetime.now(UTC)


def _clean(text: str, max_chars: int) -> str:
    """Safe to print on a terminal: control and format characters become '?'."""
    return "".join(c if c.isprintable() else "?" for c in text[:max_chars])


class Activity:
    """Thread-safe: SCIM requests arrive on the HTTPS thread, logins also on admin workers."""

    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._scim: ScimRequestSeen | None = None
        self._login: LoginSeen | None = None

    def scim_request(self, method: str, path: str, client: str, token_label: str,
                     status: int) -> None:
        seen = ScimRequestSeen(at=self._clock(), method=_clean(method, 16),
                               path=_clean(path, MAX_PATH_CHARS),
                               client=_clean(client, MAX_FIELD_CHARS),
                               token_label=_clean(token_label, MAX_FIELD_CHARS), status=status)
        with self._lock:
            self._scim = seen

    def login(self, user: str, entry_point: str) -> None:
        if entry_point not in ENTRY_POINTS:
            raise ValueError(f"unknown entry point {entry_point!r}")
        seen = LoginSeen(at=self._clock(), user=user, entry_point=entry_point)
        with self._lock:
            self._login = seen

    @property
    def last_scim_request(self) -> ScimRequestSeen | None:
        with self._lock:
            return self._scim

    @property
    def last_login(self) -> LoginSeen | None:
        with self._lock:
            return self._login
