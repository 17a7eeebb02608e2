"""Holds the plain values the store hands out: users, groups, issued IDs and change notices."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class User:
    """One rosterd account, as stored."""

    id: str
    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str
    locked: bool
    external_id: str | None
    created: datetime
    modified: datetime
    # SCIM's view (RFC 7643 §4.1): userName as sent (None for accounts made without
    # SCIM), the other stored attributes as JSON text, and the meta.version counter.
    user_name: str | None = None
    scim_attributes: str | None = None
    version: int = 1

    @property
    def active(self) -> bool:
        """Whether this account may sign in.

        This is THE one answer to "is this account active": shadow lookups, the
        PAM module and SCIM's `active` all read it, so the rule cannot drift
        between them (authd commit 28fe779 let a disabled user in because the
        check lived in two places).
        """
        return not self.locked


@dataclass(frozen=True, slots=True)
class Group:
    """One rosterd group; `member_names` is sorted and holds only supplementary members."""

    id: str
    name: str
    gid: int
    member_names: tuple[str, ...]
    private_for_user_id: str | None
    external_id: str | None
    created: datetime
    modified: datetime
    display_name: str | None = None  # SCIM displayName as sent; None: the group's name
    version: int = 1

    @property
    def user_private(self) -> bool:
        """Whether this is the private group created with (and deleted with) one user."""
        return self.private_for_user_id is not None


@dataclass(frozen=True, slots=True)
class IssuedId:
    """One UID or GID ever handed out; `retired` once its holder is gone (it is never reused)."""

    kind: str  # "uid" or "gid"
    number: int
    holder: str
    issued_at: datetime
    retired_at: datetime | None

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


@dataclass(frozen=True)
class Change:
    """What one committed write changed, with full fresh objects for every changed line."""

    users_upserted: list[User] = field(default_factory=list)
    users_removed: list[User] = field(default_factory=list)
    groups_upserted: list[Group] = field(default_factory=list)
    groups_removed: list[Group] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.users_upserted or self.users_removed or self.groups_upserted or self.groups_removed
        )
