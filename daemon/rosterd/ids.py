"""Hands out UIDs and GIDs: never reserved, never the host's, never one issued before."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal

from rosterd.errors import IdTaken
from rosterd.hostfiles import HostFiles
from rosterd.model import IssuedId
from rosterd.names import check_id

if TYPE_CHECKING:
    from rosterd.config import Config
    from rosterd.store import Store

log = logging.getLogger(__name__)

IdKind = Literal["uid", "gid"]
ID_KINDS: tuple[IdKind, ...] = ("uid", "gid")
MAX_ID = 4294967294  # 4294967295 is (uid_t)-1, which chown(2) reads as "leave unchanged"

# IDs rosterd never hands out, from systemd's "Users, Groups, UIDs and GIDs on
# systemd Systems" (https://systemd.io/UIDS-GIDS/): root, the systemd-homed range,
# the DynamicUser= range, nobody, and the 16-bit (uid_t)-1 that old APIs return on
# error. The container ranges (524288 and up) are left alone so that an identity
# provider's large uidNumbers stay possible; sequential allocation from start_uid
# does not reach them.
RESERVED_RANGES: tuple[tuple[int, int, str], ...] = (
    (0, 0, "it is root's"),
    (60001, 60513, "systemd-homed manages that range (60001-60513)"),
    (61184, 65519, "systemd hands that range (61184-65519) to DynamicUser= services"),
    (65534, 65534, "it is nobody's (the overflow ID)"),
    (65535, 65535, "it is the 16-bit (uid_t)-1, an error value to older programs"),
)


def reserved_reason(number: int) -> str | None:
    """Why `number` is reserved, or None if it is not."""
    for low, high, reason in RESERVED_RANGES:
        if low <= number <= high:
            return reason
    return None


def _skip_reserved(number: int) -> int:
    """The first number at or after `number` that is not reserved."""
    for low, high, _reason in RESERVED_RANGES:
        if low <= number <= high:
            number = high + 1
    return number


class IdAllocator:
    """Chooses IDs, with one cursor per kind so each allocation costs O(1) amortised.

    IDs chosen are *pending* until `commit()` (after the database transaction that
    records them committed) or dropped by `rollback()`. Not thread-safe: Accounts
    calls it only while holding its write lock.
    """

    def __init__(
        self,
        *,
        start_uid: int,
        start_gid: int,
        issued_uids: Iterable[int],
        issued_gids: Iterable[int],
        host: HostFiles,
        describe_issued: Callable[[IdKind, int], IssuedId | None] | None = None,
    ) -> None:
        self._start: dict[IdKind, int] = {"uid": start_uid, "gid": start_gid}
        self._cursor: dict[IdKind, int] = dict(self._start)
        self._issued: dict[IdKind, set[int]] = {"uid": set(issued_uids), "gid": set(issued_gids)}
        self._pending: dict[IdKind, set[int]] = {"uid": set(), "gid": set()}
        self._saved_cursor: dict[IdKind, int] | None = None
        self._host = host
        self._describe = describe_issued

    @classmethod
    def from_store(cls, store: Store, cfg: Config, host: HostFiles | None = None) -> IdAllocator:
        """An allocator that knows every ID the store ever issued."""
        with store.read() as tx:
            issued_uids = tx.issued_numbers("uid")
            issued_gids = tx.issued_numbers("gid")

        def describe(kind: IdKind, number: int) -> IssuedId | None:
            with store.read() as tx:
                return tx.issued_id(kind, number)

        return cls(
            start_uid=cfg.provisioning.start_uid,
            start_gid=cfg.provisioning.start_gid,
            issued_uids=issued_uids,
            issued_gids=issued_gids,
            host=host or HostFiles(),
            describe_issued=describe,
        )

    def _host_ids(self, kind: IdKind) -> frozenset[int]:
        return self._host.uids() if kind == "uid" else self._host.gids()

    def is_free(self, kind: IdKind, number: int) -> bool:
        """Whether `number` could be handed out now (as an explicit or automatic ID)."""
        return (
            1 <= number <= MAX_ID
            and number not in self._issued[kind]
            and number not in self._pending[kind]
            and reserved_reason(number) is None
            and number not in self._host_ids(kind)
        )

    def _remember_cursor(self) -> None:
        if self._saved_cursor is None:
            self._saved_cursor = dict(self._cursor)

    def _next(self, kind: IdKind) -> int:
        host_ids = self._host_ids(kind)
        issued, pending = self._issued[kind], self._pending[kind]
        number = _skip_reserved(self._cursor[kind])
        while number in issued or number in pending or number in host_ids:
            number = _skip_reserved(number + 1)
        if number > MAX_ID:
            raise IdTaken(
                f"no free {kind.upper()} is left between provisioning.start_{kind} "
                f"({self._start[kind]}) and {MAX_ID}")
        self._remember_cursor()
        self._cursor[kind] = number + 1
        pending.add(number)
        return number

    def next_uid(self) -> int:
        """The lowest free UID at or above the cursor, held as pending."""
        return self._next("uid")

    def next_gid(self) -> int:
        """The lowest free GID at or above the cursor, held as pending."""
        return self._next("gid")

    def private_gid_for(self, uid: int) -> int:
        """The GID of a user private group: equal to the UID when that GID is free."""
        if self.is_free("gid", uid):
            self._remember_cursor()
            self._pending["gid"].add(uid)
            return uid
        return self._next("gid")

    def why_taken(self, kind: IdKind, number: int) -> str | None:
        """A sentence saying why `number` cannot be handed out, or None if it is free."""
        label = kind.upper()
        reason = reserved_reason(number)
        if reason is not None:
            return f"{label} {number} is reserved: {reason}"
        holder = self._host.uid_holder(number) if kind == "uid" else self._host.gid_holder(number)
        if holder is not None:
            return f"{label} {number} is already used by {holder}"
        if number in self._pending[kind]:
            return f"{label} {number} is already being given to another account in this request"
        if number in self._issued[kind]:
            issued = self._describe(kind, number) if self._describe else None
            if issued is None or issued.retired:
                who = f" ({issued.holder})" if issued is not None else ""
                return (f"{label} {number} was used by a deleted account{who} and is retired; "
                        "rosterd never reuses IDs")
            owner = "user" if kind == "uid" else "group"
            return f"{label} {number} is already used by {owner} {issued.holder} in rosterd"
        return None

    def claim(self, kind: IdKind, number: int) -> int:
        """Holds a requested ID as pending; raises IdTaken or InvalidValue saying why."""
        check_id(number, what=kind.upper())
        reason = self.why_taken(kind, number)
        if reason is not None:
            raise IdTaken(reason)
        self._remember_cursor()
        self._pending[kind].add(number)
        return number

    def claim_uid(self, uid: int) -> int:
        return self.claim("uid", uid)

    def claim_gid(self, gid: int) -> int:
        return self.claim("gid", gid)

    def commit(self) -> None:
        """The pending IDs are now recorded in the store: issued for good."""
        for kind in ID_KINDS:
            self._issued[kind] |= self._pending[kind]
            self._pending[kind].clear()
        self._saved_cursor = None

    def rollback(self) -> None:
        """The transaction failed: forget the pending IDs and rewind the cursors."""
        for kind in ID_KINDS:
            self._pending[kind].clear()
        if self._saved_cursor is not None:
            self._cursor = self._saved_cursor
            self._saved_cursor = None

    def issued_count(self, kind: IdKind) -> int:
        return len(self._issued[kind])
