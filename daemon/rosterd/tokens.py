"""Issues, checks and revokes the bearer tokens SCIM clients present; only their hashes are stored.

A token is 256 random bits, so a plain SHA-256 of it is as hard to reverse as
the token is to guess: no slow password hash is needed, and checking one costs
microseconds. Every check compares against every stored hash with
hmac.compare_digest, so timing says nothing about which byte differed. A client
address that keeps presenting bad tokens is slowed down exponentially.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from rosterd.errors import InvalidValue, NameTaken, NotFound
from rosterd.names import sanitize_text
from rosterd.store import Store, api_tokens

log = logging.getLogger(__name__)

TOKEN_PREFIX = "rstr_"  # noqa: S105 - not a secret: lets scanners recognise a leaked token
TOKEN_RANDOM_BYTES = 32
MAX_LABEL_BYTES = 128
# Last use is written to the database at most this often per token, so a busy
# SCIM client does not add a durable write to every request.
LAST_USE_WRITE_INTERVAL_S = 60.0
FAILURES_BEFORE_SLOWDOWN = 5
FAILURE_WINDOW_S = 300.0
MAX_SLOWDOWN_S = 60.0

@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never the token itself."""

    label: str
    created: datetime
    last_used: datetime | None
    last_used_from: str | None


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    label: str | None = None
    reason: str = ""  # safe to show to the client
    retry_after_s: float = 0.0  # > 0: the client is being slowed down; answer 429


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_label(label: str) -> str:
    clean = sanitize_text(label, max_bytes=MAX_LABEL_BYTES)
    if not clean or clean != label:
        raise InvalidValue(
            f"token label {label!r} is not valid: use 1-{MAX_LABEL_BYTES} bytes of printable "
            "text without ':', ',' or control characters (e.g. \"Okta provisioning\")"
        )
    return clean


class _FailureThrottle:
    """Counts bad tokens per client address and says how long that client must wait."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (count, last failure)

    def wait_for(self, client: str) -> float:
        count, last = self._failures.get(client, (0, 0.0))
        if count < FAILURES_BEFORE_SLOWDOWN:
            return 0.0
        delay = min(MAX_SLOWDOWN_S, 2.0 ** (count - FAILURES_BEFORE_SLOWDOWN))
        return max(0.0, last + delay - self._clock())

    def failed(self, client: str) -> None:
        now = self._clock()
        count, last = self._failures.get(client, (0, 0.0))
        if now - last > FAILURE_WINDOW_S:
            count = 0
        self._failures[client] = (count + 1, now)
        if len(self._failures) > 10_000:  # bounded: forget the oldest half
            for stale, _ in sorted(self._failures.items(), key=lambda kv: kv[1][1])[:5_000]:
                del self._failures[stale]

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


class TokenStore:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._throttle = _FailureThrottle(clock)
        self._clock = clock
        self._hashes: dict[str, str] = {}  # sha256 -> label
        self._last_use: dict[str, tuple[datetime, str]] = {}  # label -> (when, from)
        self._last_written: dict[str, float] = {}
        with store.read() as tx:
            for row in tx.conn.execute(sa.select(api_tokens.c.label, api_tokens.c.token_sha256)):
                self._hashes[row.token_sha256] = row.label

    def generate(self, label: str) -> str:
        """Creates a token and returns it: the only time it is ever seen."""
        label = _check_label(label)
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)
        digest = _digest(token)
        with self._lock:
            if label in self._hashes.values():
                raise NameTaken(
                    f"a token labelled {label!r} already exists "
                    "(revoke it first, or choose another label)"
                )
            with self._store.write() as tx:
                tx.conn.execute(sa.insert(api_tokens).values(
                    label=label, token_sha256=digest, created_at=datetime.now(UTC)))
            self._hashes[digest] = label
        log.info("generated API token %r", label)
        return token

    def revoke(self, label: str) -> TokenInfo:
        info = self._info(label)
        with self._lock:
            with self._store.write() as tx:
                tx.conn.execute(sa.delete(api_tokens).where(api_tokens.c.label == label))
            self._hashes = {h: lbl for h, lbl in self._hashes.items() if lbl != label}
            self._last_use.pop(label, None)
        log.info("revoked API token %r", label)
        return info

    def list(self) -> list[TokenInfo]:
        with self._store.read() as tx:
            rows = tx.conn.execute(sa.select(api_tokens).order_by(api_tokens.c.created_at))
            return [self._row_info(row) for row in rows]

    def _info(self, label: str) -> TokenInfo:
        with self._store.read() as tx:
            row = tx.conn.execute(
                sa.select(api_tokens).where(api_tokens.c.label == label)).first()
        if row is None:
            raise NotFound(f"no token is labelled {label!r} (rosterctl token list shows them)")
        return self._row_info(row)

    def _row_info(self, row: sa.Row[object]) -> TokenInfo:
        mapping = row._mapping
        label = str(mapping["label"])
        last_used, last_from = mapping["last_used_at"], mapping["last_used_from"]
        if label in self._last_use:  # newer than what was last written
            last_used, last_from = self._last_use[label]
        return TokenInfo(label=label, created=mapping["created_at"],
                         last_used=last_used, last_used_from=last_from)

    def authenticate(self, authorization: str | None, client: str) -> AuthResult:
        """Checks an HTTP Authorization header (RFC 6750 §2.1: `Bearer <token>`)."""
        wait = self._throttle.wait_for(client)
        if wait > 0:
            return AuthResult(ok=False, retry_after_s=wait, reason=(
                f"too many requests with a bad token from {client}; retry in {wait:.0f} s"))
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            self._throttle.failed(client)
            return AuthResult(ok=False, reason=(
                "an Authorization header 'Bearer <token>' is required; create a token with "
                "'rosterctl token generate LABEL'"))
        digest = _digest(presented.strip())
        label = None
        for known, known_label in list(self._hashes.items()):
            if hmac.compare_digest(known, digest):
                label = known_label
        if label is None:
            self._throttle.failed(client)
            log.warning("rejected a bad bearer token from %s", client)
            return AuthResult(ok=False, reason=(
                "the bearer token is not valid (revoked, mistyped, or from another host)"))
        self._throttle.succeeded(client)
        self._note_use(label, client)
        return AuthResult(ok=True, label=label)

    def _note_use(self, label: str, client: str) -> None:
        now = datetime.now(UTC)
        self._last_use[label] = (now, client)
        tick = self._clock()
        if tick - self._last_written.get(label, -LAST_USE_WRITE_INTERVAL_S) < \
                LAST_USE_WRITE_INTERVAL_S:
            return
        self._last_written[label] = tick
        with self._store.write() as tx:
            tx.conn.execute(sa.update(api_tokens).where(api_tokens.c.label == label)
                            .values(last_used_at=now, last_used_from=client[:64]))
