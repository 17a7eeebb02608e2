"""Makes every user and group change: checks it, commits it in one transaction, announces it."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Literal

import sqlalchemy as sa

from rosterd.config import Config
from rosterd.errors import (
    Conflict,
    IdTaken,
    InUse,
    InvalidValue,
    NameTaken,
    NotFound,
    RosterError,
)
from rosterd.hostfiles import HostFiles
from rosterd.ids import IdAllocator
from rosterd.model import Change, Group, User
from rosterd.names import (
    check_home,
    check_name,
    check_shell,
    derive_login_name,
    is_valid_name,
    sanitize_gecos,
    shown,
)
from rosterd.store import Store, Transaction, new_id
from rosterd.store import groups as store_groups

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _ignore_change(_change: Change) -> None:
    return None


@dataclass(frozen=True)
class NewUser:
    """What add_users_bulk needs to know about one user (the arguments of add_user)."""

    name: str
    uid: int | None = None
    gid: int | None = None
    full_name: str = ""
    home: str | None = None
    shell: str | None = None
    groups: tuple[str, ...] = ()
    external_id: str | None = None
    user_name: str | None = None
    scim_attributes: str | None = None
    locked: bool = False


@dataclass(frozen=True)
class DirectoryUser:
    """A person as an identity provider pushes them (SCIM): what a create or replace sets.

    `uid`, `gid`, `home` and `shell` are None when the provider leaves them to rosterd.
    """

    user_name: str
    external_id: str | None = None
    active: bool = True
    full_name: str = ""
    attributes: str | None = None  # the provider's other attributes, JSON text kept verbatim
    uid: int | None = None
    gid: int | None = None
    home: str | None = None
    shell: str | None = None


@dataclass(frozen=True)
class DirectoryGroup:
    """A group as an identity provider pushes it: its display name and members by user ID."""

    display_name: str
    external_id: str | None = None
    member_ids: tuple[str, ...] = ()
    gid: int | None = None


@dataclass(frozen=True)
class FederatedLogin:
    """A person signing in through OpenID, as the claim mapping (openid/mapping.py) reads them.

    `login_value` is what the POSIX name is derived from (by `login_rule`) when the
    account is new; None fields leave what is stored alone; `groups` None leaves
    memberships alone.
    """

    unique_id: str
    login_value: str
    login_rule: Literal["whole", "local-part"]
    full_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    groups: tuple[str, ...] | None = None
    groups_by_unique_id: bool = False
    groups_auto_provision: bool = False


@dataclass(frozen=True)
class FederatedOutcome:
    """What one federated sign-in did (or, in a dry run, would do)."""

    user: User
    created: bool
    groups_added: tuple[str, ...] = ()
    groups_removed: tuple[str, ...] = ()
    groups_created: tuple[str, ...] = ()
    groups_unknown: tuple[str, ...] = ()


class _DryRunDone(Exception):
    """Rolls a dry run's transaction back, carrying what it would have done."""

    def __init__(self, outcome: FederatedOutcome) -> None:
        super().__init__("dry run")
        self.outcome = outcome


class StaleVersion(RosterError):
    """The caller's idea of the object's version is out of date (SCIM If-Match, RFC 7644 §3.14)."""


@dataclass(frozen=True)
class _GroupRef:
    id: str
    name: str
    gid: int
    private_for_user_id: str | None


@dataclass
class _BatchView:
    """Names and groups as one batch sees them: the store's, plus what the batch added."""

    tx: Transaction
    preload: bool
    user_names: set[str] = field(default_factory=set)
    groups_by_name: dict[str, _GroupRef] = field(default_factory=dict)
    groups_by_gid: dict[int, _GroupRef] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.preload:
            self.user_names = self.tx.user_names()
            for group_id, name, gid, private_for in self.tx.group_refs():
                self.add_group(_GroupRef(group_id, name, gid, private_for))

    def user_exists(self, name: str) -> bool:
        if name in self.user_names:
            return True
        return not self.preload and self.tx.user_by_name(name) is not None

    def _ref(self, group: Group | None) -> _GroupRef | None:
        if group is None:
            return None
        return _GroupRef(group.id, group.name, group.gid, group.private_for_user_id)

    def group_by_name(self, name: str) -> _GroupRef | None:
        found = self.groups_by_name.get(name)
        if found is None and not self.preload:
            found = self._ref(self.tx.group_by_name(name))
        return found

    def group_by_gid(self, gid: int) -> _GroupRef | None:
        found = self.groups_by_gid.get(gid)
        if found is None and not self.preload:
            found = self._ref(self.tx.group_by_gid(gid))
        return found

    def add_group(self, ref: _GroupRef) -> None:
        self.groups_by_name[ref.name] = ref
        self.groups_by_gid[ref.gid] = ref


@dataclass
class _Batch:
    """Rows one write will insert, in foreign-key order."""

    users: list[User] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    memberships: list[tuple[str, str]] = field(default_factory=list)
    issued: list[tuple[str, int, str]] = field(default_factory=list)
    touched_group_ids: set[str] = field(default_factory=set)


class Accounts:
    """The one place where users and groups change; writes are serialised by one lock.

    After each committed write, `on_change` gets a Change with fresh objects for every
    user and group whose passwd or group line changed (the lookup index applies it).
    """

    def __init__(
        self,
        store: Store,
        config: Config,
        host: HostFiles,
        allocator: IdAllocator,
        on_change: Callable[[Change], None] = _ignore_change,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._store = store
        self._config = config
        self._host = host
        self._allocator = allocator
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def _max_name(self) -> int:
        return self._config.provisioning.max_name_length

    # Writing

    @contextmanager
    def _writing(self) -> Iterator[tuple[Transaction, list[Change]]]:
        """One serialised write transaction; the Change it fills is announced after commit."""
        changes: list[Change] = []
        with self._lock:
            try:
                with self._store.write() as tx:
                    yield tx, changes
            except sa.exc.IntegrityError as err:
                self._allocator.rollback()
                log.warning("write refused by a database constraint: %s", err.orig)
                raise Conflict(
                    "this change clashes with an existing account (a name, ID or external ID "
                    "is already held); nothing was changed") from None
            except BaseException:
                self._allocator.rollback()
                raise
            self._allocator.commit()
            for change in changes:
                if change:
                    self._announce(change)

    def _announce(self, change: Change) -> None:
        try:
            self._on_change(change)
        except Exception:
            # The write is committed; a failed notification must not undo the reply.
            log.exception("the lookup index could not apply a committed change")

    def _check_user_name(self, view: _BatchView, name: str) -> str:
        check_name(name, max_length=self._max_name, what="user name")
        if self._host.user(name) is not None:
            raise NameTaken(f"user name {name!r} is already used by a user in "
                            f"{self._host.passwd_path}; choose another name")
        if view.user_exists(name):
            raise NameTaken(f"user name {name!r} is already taken by another rosterd user")
        return name

    def _prepare_user(self, tx: Transaction, view: _BatchView, spec: NewUser,
                      now: datetime, batch: _Batch) -> User:
        name = self._check_user_name(view, spec.name)
        prov = self._config.provisioning
        gecos = sanitize_gecos(spec.full_name)
        home = check_home(spec.home if spec.home is not None else f"{prov.home_root}/{name}",
                          home_root=PurePosixPath(prov.home_root))
        shell = check_shell(spec.shell if spec.shell is not None else prov.default_shell)
        supplementary: list[_GroupRef] = []
        for group_name in dict.fromkeys(spec.groups):
            ref = view.group_by_name(group_name)
            if ref is None:
                raise NotFound(f"group {shown(group_name)} does not exist; create it first "
                               "(rosterctl group add NAME)")
            supplementary.append(ref)
        if spec.external_id is not None and tx.user_by_external_id(spec.external_id):
            raise Conflict(f"external ID {shown(spec.external_id)} already belongs to another "
                           "rosterd user")
        primary: _GroupRef | None = None
        if spec.gid is not None:
            primary = view.group_by_gid(spec.gid)
            if primary is not None and primary.private_for_user_id is not None:
                raise IdTaken(f"GID {spec.gid} is the private group of user {primary.name}; "
                              "give a shared group's GID, or leave the GID out")
        if primary is None:
            # A user private group takes the user's name (useradd(8), USERGROUPS_ENAB).
            if self._host.group(name) is not None:
                raise NameTaken(f"user name {name!r} cannot be used: its private group would "
                                f"clash with the group {name!r} in {self._host.group_path}")
            if view.group_by_name(name) is not None:
                raise NameTaken(f"user name {name!r} cannot be used: a rosterd group of that "
                                "name exists, and the user's private group needs the name")
        uid = (self._allocator.claim_uid(spec.uid) if spec.uid is not None
               else self._allocator.next_uid())
        user_id = new_id()
        if primary is None:
            gid = (self._allocator.claim_gid(spec.gid) if spec.gid is not None
                   else self._allocator.private_gid_for(uid))
            private = Group(id=new_id(), name=name, gid=gid, member_names=(),
                            private_for_user_id=user_id, external_id=None,
                            created=now, modified=now)
            batch.groups.append(private)
            batch.issued.append(("gid", gid, name))
            view.add_group(_GroupRef(private.id, name, gid, user_id))
        else:
            gid = primary.gid
        user = User(id=user_id, name=name, uid=uid, gid=gid, gecos=gecos, home=home, shell=shell,
                    locked=spec.locked, external_id=spec.external_id, created=now, modified=now,
                    user_name=spec.user_name, scim_attributes=spec.scim_attributes)
        view.user_names.add(name)
        batch.users.append(user)
        batch.issued.append(("uid", uid, name))
        for ref in supplementary:
            batch.memberships.append((ref.id, user_id))
            batch.touched_group_ids.add(ref.id)
        return user

    def _insert(self, tx: Transaction, batch: _Batch, now: datetime) -> Change:
        tx.issue_ids(batch.issued, now)
        tx.insert_users(batch.users)
        tx.insert_groups(batch.groups)
        tx.add_memberships(batch.memberships)
        tx.touch_groups(batch.touched_group_ids, now)
        fresh_groups = tx.groups_by_ids(batch.touched_group_ids)
        return Change(users_upserted=list(batch.users),
                      groups_upserted=list(batch.groups) + fresh_groups)

    def add_user(
        self,
        name: str,
        *,
        uid: int | None = None,
        gid: int | None = None,
        full_name: str = "",
        home: str | None = None,
        shell: str | None = None,
        groups: Sequence[str] = (),
        external_id: str | None = None,
    ) -> User:
        """Creates a user with a private group (unless `gid` names a rosterd group)."""
        spec = NewUser(name, uid, gid, full_name, home, shell, tuple(groups), external_id)
        with self._writing() as (tx, changes):
            now = self._clock()
            batch = _Batch()
            user = self._prepare_user(tx, _BatchView(tx, preload=False), spec, now, batch)
            changes.append(self._insert(tx, batch, now))
        log.info("added user %s (UID %d, GID %d)", user.name, user.uid, user.gid)
        return user

    def add_users_bulk(self, specs: Iterable[NewUser], *,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> list[User]:
        """Adds many users, one transaction per batch; a refusal stops at that user's batch.

        Checks and allocation are those of add_user. Batches committed before a
        refusal stay committed.
        """
        added: list[User] = []
        pending = list(specs)
        view: _BatchView | None = None
        for start in range(0, len(pending), batch_size):
            with self._writing() as (tx, changes):
                now = self._clock()
                # Names and groups are read once; later batches see the earlier ones'
                # additions through the view (the lock keeps anyone else out meanwhile,
                # and a failed batch ends the call).
                if view is None:
                    view = _BatchView(tx, preload=True)
                view.tx = tx
                batch = _Batch()
                for spec in pending[start:start + batch_size]:
                    self._prepare_user(tx, view, spec, now, batch)
                changes.append(self._insert(tx, batch, now))
            added.extend(batch.users)
        log.info("added %d users in bulk", len(added))
        return added

    def _set_locked(self, name: str, locked: bool) -> User:
        with self._writing() as (tx, changes):
            user = self._need_user(tx, name)
            if user.locked == locked:
                return user
            now = self._clock()
            tx.update_user(user.id, locked=locked, modified_at=now)
            fresh = self._need_user(tx, name)
            changes.append(Change(users_upserted=[fresh]))
        log.info("%s user %s", "locked" if locked else "unlocked", name)
        return fresh

    def lock_user(self, name: str) -> User:
        """Locks the account: it still resolves, but shows locked in shadow and cannot sign in."""
        return self._set_locked(name, True)

    def unlock_user(self, name: str) -> User:
        return self._set_locked(name, False)

    def update_user(self, name: str, *, full_name: str | None = None, home: str | None = None,
                    shell: str | None = None) -> User:
        """Changes the full name, home or shell (each checked as in add_user)."""
        prov = self._config.provisioning
        values: dict[str, object] = {}
        if full_name is not None:
            values["gecos"] = sanitize_gecos(full_name)
        if home is not None:
            values["home"] = check_home(home, home_root=PurePosixPath(prov.home_root))
        if shell is not None:
            values["shell"] = check_shell(shell)
        with self._writing() as (tx, changes):
            user = self._need_user(tx, name)
            if all(getattr(user, key) == value for key, value in values.items()):
                return user
            tx.update_user(user.id, modified_at=self._clock(), **values)
            fresh = self._need_user(tx, name)
            changes.append(Change(users_upserted=[fresh]))
        return fresh

    def delete_user(self, name: str) -> User:
        """Deletes the user, its private group and its memberships; its IDs stay retired forever."""
        with self._writing() as (tx, changes):
            user = self._need_user(tx, name)
            changes.append(self._delete_user(tx, user))
        log.info("deleted user %s; UID %d is retired", name, user.uid)
        return user

    def _delete_user(self, tx: Transaction, user: User) -> Change:
        now = self._clock()
        member_of = [g.id for g in tx.groups_of_user(user.id)]
        private_group = tx.private_group_of(user.id)
        private = [private_group] if private_group is not None else []
        tx.retire_id("uid", user.uid, now)
        for group in private:
            tx.retire_id("gid", group.gid, now)
        tx.delete_user(user.id)  # the private group and memberships cascade
        tx.touch_groups(member_of, now)
        return Change(users_removed=[user], groups_removed=private,
                      groups_upserted=tx.groups_by_ids(member_of))

    def add_group(self, name: str, *, gid: int | None = None,
                  external_id: str | None = None) -> Group:
        """Creates an empty group with the given or the next free GID."""
        with self._writing() as (tx, changes):
            group = self._insert_group(tx, name, gid=gid, external_id=external_id)
            changes.append(Change(groups_upserted=[group]))
        log.info("added group %s (GID %d)", name, group.gid)
        return group

    def _insert_group(self, tx: Transaction, name: str, *, gid: int | None,
                      external_id: str | None, display_name: str | None = None) -> Group:
        check_name(name, max_length=self._max_name, what="group name")
        if self._host.group(name) is not None:
            raise NameTaken(f"group name {name!r} is already used by a group in "
                            f"{self._host.group_path}; choose another name")
        if tx.group_by_name(name) is not None:
            raise NameTaken(f"group name {name!r} is already taken by another rosterd group")
        if external_id is not None and tx.group_by_external_id(external_id):
            raise Conflict(f"external ID {shown(external_id)} already belongs to another "
                           "rosterd group")
        number = (self._allocator.claim_gid(gid) if gid is not None
                  else self._allocator.next_gid())
        now = self._clock()
        group = Group(id=new_id(), name=name, gid=number, member_names=(),
                      private_for_user_id=None, external_id=external_id,
                      created=now, modified=now, display_name=display_name)
        tx.issue_ids([("gid", number, name)], now)
        tx.insert_groups([group])
        return group

    def delete_group(self, name: str) -> Group:
        """Deletes a group that no user has as primary group; its GID stays retired forever."""
        with self._writing() as (tx, changes):
            group = self._need_group(tx, name)
            changes.append(self._delete_group(tx, group))
        log.info("deleted group %s; GID %d is retired", name, group.gid)
        return group

    def _delete_group(self, tx: Transaction, group: Group) -> Change:
        name = group.name
        if group.private_for_user_id is not None:
            owner = tx.user_by_id(group.private_for_user_id)
            raise InUse(f"group {name!r} is the private group of user "
                        f"{owner.name if owner else name}; it is deleted with that user")
        primary_of = tx.users_with_primary_gid(group.gid)
        if primary_of:
            listed = ", ".join(primary_of[:5]) + (" and others" if len(primary_of) > 5 else "")
            raise InUse(f"group {name!r} is the primary group of {listed}; "
                        "delete those users first")
        tx.retire_id("gid", group.gid, self._clock())
        tx.delete_group(group.id)
        return Change(groups_removed=[group])

    def add_member(self, group_name: str, user_name: str) -> Group:
        """Makes the user a member of the group; adding a member again changes nothing."""
        return self._change_member(group_name, user_name, add=True)

    def remove_member(self, group_name: str, user_name: str) -> Group:
        """Removes the user from the group; removing a non-member changes nothing."""
        return self._change_member(group_name, user_name, add=False)

    def _change_member(self, group_name: str, user_name: str, *, add: bool) -> Group:
        with self._writing() as (tx, changes):
            group = self._need_group(tx, group_name)
            user = self._need_user(tx, user_name)
            if add and not tx.is_member(group.id, user.id):
                tx.add_memberships([(group.id, user.id)])
            elif add or not tx.remove_membership(group.id, user.id):
                return group
            tx.touch_groups([group.id], self._clock())
            fresh = self._need_group(tx, group_name)
            changes.append(Change(groups_upserted=[fresh]))
        log.info("%s %s %s group %s", "added" if add else "removed", user_name,
                 "to" if add else "from", group_name)
        return fresh

    # Writes from an identity provider (SCIM). Objects are addressed by their ID, the
    # SCIM `id`; login and group names are derived once and never follow a rename, so
    # files on disk and sudoers lines keep naming the same account.

    def _login_name_held(self, tx: Transaction, name: str) -> bool:
        # A user's private group takes its name, so a group of that name blocks it too.
        return (self._host.user(name) is not None or self._host.group(name) is not None
                or tx.user_by_name(name) is not None or tx.group_by_name(name) is not None)

    def _check_directory_user(self, tx: Transaction, entry: DirectoryUser,
                              current: User | None) -> None:
        holder = tx.user_by_user_name(entry.user_name)
        if holder is not None and (current is None or holder.id != current.id):
            raise NameTaken(f"userName {shown(entry.user_name)} is already held by the account "
                            f"{holder.name} (userName is unique, ignoring case)")
        if entry.external_id is not None:
            owner = tx.user_by_external_id(entry.external_id)
            if owner is not None and (current is None or owner.id != current.id):
                raise Conflict(f"externalId {shown(entry.external_id)} already belongs to the "
                               f"account {owner.name}")

    def provision_user(self, entry: DirectoryUser, *,
                       rule: Literal["whole", "local-part"]) -> User:
        """Creates a pushed user, deriving its login name from userName by `rule`.

        An account made earlier without a userName (by a first login) whose external
        ID matches is adopted instead, so one person stays one account.
        """
        with self._writing() as (tx, changes):
            if entry.external_id is not None:
                adopted = tx.user_by_external_id(entry.external_id)
                if adopted is not None and adopted.user_name is None:
                    changes.append(self._set_directory_user(tx, adopted, entry))
                    fresh = self._need_user_by_id(tx, adopted.id)
                    log.info("userName %s adopted the existing account %s",
                             shown(entry.user_name), adopted.name)
                    return fresh
            self._check_directory_user(tx, entry, None)
            name = derive_login_name(entry.user_name, rule=rule, max_length=self._max_name,
                                     taken=lambda candidate: self._login_name_held(tx, candidate))
            spec = NewUser(name, entry.uid, entry.gid, entry.full_name, entry.home, entry.shell,
                           external_id=entry.external_id, user_name=entry.user_name,
                           scim_attributes=entry.attributes, locked=not entry.active)
            now = self._clock()
            batch = _Batch()
            user = self._prepare_user(tx, _BatchView(tx, preload=False), spec, now, batch)
            changes.append(self._insert(tx, batch, now))
        log.info("provisioned user %s as %s (UID %d)", shown(entry.user_name), user.name, user.uid)
        return user

    def _set_directory_user(self, tx: Transaction, user: User, entry: DirectoryUser) -> Change:
        prov = self._config.provisioning
        if entry.uid is not None and entry.uid != user.uid:
            raise InvalidValue(f"the UID of {user.name} is {user.uid} and cannot change")
        if entry.gid is not None and entry.gid != user.gid:
            raise InvalidValue(f"the GID of {user.name} is {user.gid} and cannot change")
        self._check_directory_user(tx, entry, user)
        values: dict[str, object] = {
            "user_name": entry.user_name, "external_id": entry.external_id,
            "scim_attributes": entry.attributes, "gecos": sanitize_gecos(entry.full_name),
            "locked": not entry.active, "modified_at": self._clock(),
        }
        if entry.home is not None:
            values["home"] = check_home(entry.home, home_root=PurePosixPath(prov.home_root))
        if entry.shell is not None:
            values["shell"] = check_shell(entry.shell)
        tx.update_user(user.id, **values)
        return Change(users_upserted=[self._need_user_by_id(tx, user.id)])

    def replace_user(self, user_id: str, build: Callable[[User], DirectoryUser], *,
                     expect_version: int | None = None) -> User:
        """Replaces what the provider holds about a user with what `build(current)` returns.

        `build` runs inside the write, on the current state, so a PATCH applied through
        it is atomic and cannot lose a concurrent change.
        """
        with self._writing() as (tx, changes):
            user = self._need_user_by_id(tx, user_id, expect_version)
            changes.append(self._set_directory_user(tx, user, build(user)))
            fresh = self._need_user_by_id(tx, user_id)
        log.info("replaced user %s (%s)", fresh.name, "active" if fresh.active else "locked")
        return fresh

    def delete_user_by_id(self, user_id: str, *, expect_version: int | None = None) -> User:
        """Deletes the user as delete_user does; its UID stays retired forever."""
        with self._writing() as (tx, changes):
            user = self._need_user_by_id(tx, user_id, expect_version)
            changes.append(self._delete_user(tx, user))
        log.info("deleted user %s; UID %d is retired", user.name, user.uid)
        return user

    def _resolve_members(self, tx: Transaction, member_ids: Iterable[str]) -> list[User]:
        found = []
        for member_id in dict.fromkeys(member_ids):
            user = tx.user_by_id(member_id)
            if user is None:
                raise InvalidValue(f"member {shown(member_id)} is not a rosterd user: push the "
                                   "user before adding it to a group")
            found.append(user)
        return found

    def provision_group(self, entry: DirectoryGroup) -> Group:
        """Creates a pushed group; its POSIX name is derived from the display name."""
        with self._writing() as (tx, changes):
            if entry.external_id is not None and tx.group_by_external_id(entry.external_id):
                raise Conflict(f"externalId {shown(entry.external_id)} already belongs to "
                               "another group")
            members = self._resolve_members(tx, entry.member_ids)
            name = derive_login_name(
                entry.display_name, rule="whole", max_length=self._max_name, digit_prefix="g",
                taken=lambda candidate: (self._host.group(candidate) is not None
                                         or tx.group_by_name(candidate) is not None))
            group = self._insert_group(tx, name, gid=entry.gid, external_id=entry.external_id,
                                       display_name=entry.display_name)
            tx.add_memberships((group.id, user.id) for user in members)
            fresh = self._need_group_by_id(tx, group.id)
            changes.append(Change(groups_upserted=[fresh]))
        log.info("provisioned group %s as %s (GID %d)", shown(entry.display_name), name,
                 group.gid)
        return fresh

    def replace_group(self, group_id: str,
                      build: Callable[[Group, list[str]], DirectoryGroup], *,
                      expect_version: int | None = None) -> Group:
        """Sets a group's display name, external ID and members to `build(current, member_ids)`."""
        with self._writing() as (tx, changes):
            group = self._need_group_by_id(tx, group_id, expect_version)
            current = [member[0] for member in tx.members_of([group.id]).get(group.id, [])]
            entry = build(group, current)
            if entry.gid is not None and entry.gid != group.gid:
                raise InvalidValue(f"the GID of group {group.name} is {group.gid} and cannot "
                                   "change")
            if entry.external_id is not None:
                owner = tx.group_by_external_id(entry.external_id)
                if owner is not None and owner.id != group.id:
                    raise Conflict(f"externalId {shown(entry.external_id)} already belongs to "
                                   f"the group {owner.name}")
            wanted = {user.id for user in self._resolve_members(tx, entry.member_ids)}
            for member_id in set(current) - wanted:
                tx.remove_membership(group.id, member_id)
            tx.add_memberships((group.id, member_id) for member_id in wanted - set(current))
            tx.update_group(group.id, display_name=entry.display_name,
                            external_id=entry.external_id, modified_at=self._clock())
            fresh = self._need_group_by_id(tx, group.id)
            changes.append(Change(groups_upserted=[fresh]))
        log.info("replaced group %s (%d members)", fresh.name, len(fresh.member_names))
        return fresh

    def delete_group_by_id(self, group_id: str, *, expect_version: int | None = None) -> Group:
        """Deletes the group as delete_group does; its GID stays retired forever."""
        with self._writing() as (tx, changes):
            group = self._need_group_by_id(tx, group_id, expect_version)
            changes.append(self._delete_group(tx, group))
        log.info("deleted group %s; GID %d is retired", group.name, group.gid)
        return group

    # Writes from an OpenID sign-in. The account is found by the unique ID claim,
    # kept as the external ID, so it is also the account a SCIM push with that
    # externalId made; its login name is derived once and never follows a rename.

    def sign_in_federated(self, login: FederatedLogin, *, create: bool,
                          dry_run: bool = False) -> FederatedOutcome:
        """Finds or (with `create`) makes the person's account, refreshes it, syncs groups.

        One transaction; with `dry_run` it is rolled back and the outcome says what
        would have happened. Raises NotFound when the account is new and `create` is false.
        """
        try:
            with self._writing() as (tx, changes):
                outcome = self._sign_in(tx, changes, login, create=create)
                if dry_run:
                    raise _DryRunDone(outcome)
        except _DryRunDone as done:
            return done.outcome
        log.info("OpenID sign-in of %s (UID %d)%s", outcome.user.name, outcome.user.uid,
                 ": account created" if outcome.created else "")
        return outcome

    def _sign_in(self, tx: Transaction, changes: list[Change], login: FederatedLogin, *,
                 create: bool) -> FederatedOutcome:
        user = tx.user_by_external_id(login.unique_id)
        created = user is None
        now = self._clock()
        if user is None:
            if not create:
                raise NotFound(f"no account is linked to {shown(login.unique_id)}")
            name = derive_login_name(login.login_value, rule=login.login_rule,
                                     max_length=self._max_name,
                                     taken=lambda candidate: self._login_name_held(tx, candidate))
            spec = NewUser(name, full_name=login.full_name or "", external_id=login.unique_id,
                           scim_attributes=self._profile_json(None, login))
            batch = _Batch()
            user = self._prepare_user(tx, _BatchView(tx, preload=False), spec, now, batch)
            changes.append(self._insert(tx, batch, now))
        else:
            values: dict[str, object] = {}
            if login.full_name is not None:
                values["gecos"] = sanitize_gecos(login.full_name)
            profile = self._profile_json(user.scim_attributes, login)
            if profile != user.scim_attributes:
                values["scim_attributes"] = profile
            if any(getattr(user, key) != value for key, value in values.items()):
                tx.update_user(user.id, modified_at=now, **values)
                user = self._need_user_by_id(tx, user.id)
                changes.append(Change(users_upserted=[user]))
        if login.groups is None:
            return FederatedOutcome(user, created)
        return self._sync_federated_groups(tx, changes, user, login, created, now)

    @staticmethod
    def _profile_json(stored: str | None, login: FederatedLogin) -> str | None:
        """The SCIM attributes with name and e-mail refreshed from the sign-in's claims."""
        document: dict[str, object] = json.loads(stored) if stored else {}
        name = dict(document.get("name") or {})  # type: ignore[call-overload]
        if login.first_name is not None:
            name["givenName"] = login.first_name
        if login.last_name is not None:
            name["familyName"] = login.last_name
        if name:
            document["name"] = name
        if login.email is not None:
            document["emails"] = [{"value": login.email, "primary": True}]
        if not document:
            return stored
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    def _sync_federated_groups(self, tx: Transaction, changes: list[Change], user: User,
                               login: FederatedLogin, created: bool,
                               now: datetime) -> FederatedOutcome:
        wanted: dict[str, Group] = {}
        made: list[str] = []
        unknown: list[str] = []
        for value in dict.fromkeys(login.groups or ()):
            if login.groups_by_unique_id:
                group = tx.group_by_external_id(value)
            else:
                group = tx.group_by_name(value)
                if group is None:
                    named = tx.shared_groups_where(store_groups.c.display_name == value, limit=1)
                    group = named[0] if named else None
            if group is not None and group.user_private:
                group = None
            if group is None and login.groups_auto_provision and not login.groups_by_unique_id:
                name = derive_login_name(
                    value, rule="whole", max_length=self._max_name, digit_prefix="g",
                    taken=lambda candidate: (self._host.group(candidate) is not None
                                             or tx.group_by_name(candidate) is not None))
                group = self._insert_group(tx, name, gid=None, external_id=None,
                                           display_name=value)
                made.append(group.name)
            if group is None:
                unknown.append(value)
                continue
            wanted[group.id] = group
        current = {group.id: group for group in tx.groups_of_user(user.id)}
        added = [wanted[group_id] for group_id in wanted.keys() - current.keys()]
        removed = [current[group_id] for group_id in current.keys() - wanted.keys()]
        tx.add_memberships((group.id, user.id) for group in added)
        for group in removed:
            tx.remove_membership(group.id, user.id)
        touched = [group.id for group in added + removed]
        made_ids = [group.id for group in wanted.values() if group.name in made]
        if touched or made_ids:
            tx.touch_groups(touched, now)
            changes.append(Change(groups_upserted=tx.groups_by_ids(set(touched) | set(made_ids))))
        return FederatedOutcome(user, created, tuple(sorted(g.name for g in added)),
                                tuple(sorted(g.name for g in removed)), tuple(made),
                                tuple(unknown))

    # Reading

    @contextmanager
    def reading(self) -> Iterator[Transaction]:
        """One consistent read of the store (for SCIM's queries)."""
        with self._store.read() as tx:
            yield tx

    def _need_user_by_id(self, tx: Transaction, user_id: str,
                         expect_version: int | None = None) -> User:
        user = tx.user_by_id(user_id)
        if user is None:
            raise NotFound(f"no user has the ID {shown(user_id)}")
        if expect_version is not None and user.version != expect_version:
            raise StaleVersion(f"user {user.name} has changed since version {expect_version} "
                               f"(it is at version {user.version}); read it again")
        return user

    def _need_group_by_id(self, tx: Transaction, group_id: str,
                          expect_version: int | None = None) -> Group:
        group = tx.group_by_id(group_id)
        if group is None or group.user_private:
            raise NotFound(f"no group has the ID {shown(group_id)}")
        if expect_version is not None and group.version != expect_version:
            raise StaleVersion(f"group {group.name} has changed since version {expect_version} "
                               f"(it is at version {group.version}); read it again")
        return group

    def _need_user(self, tx: Transaction, name: str) -> User:
        user = tx.user_by_name(name)
        if user is None:
            log.debug("no user %r", name)
            raise NotFound(f"user {shown(name)} does not exist")
        return user

    def _need_group(self, tx: Transaction, name: str) -> Group:
        group = tx.group_by_name(name)
        if group is None:
            log.debug("no group %r", name)
            raise NotFound(f"group {shown(name)} does not exist")
        return group

    def get_user(self, name: str) -> User:
        with self._store.read() as tx:
            return self._need_user(tx, name)

    def get_user_by_external_id(self, external_id: str) -> User | None:
        with self._store.read() as tx:
            return tx.user_by_external_id(external_id)

    def list_users(self) -> list[User]:
        """Every user, by UID."""
        with self._store.read() as tx:
            return tx.users()

    def user_counts(self) -> tuple[int, int]:
        """(users, locked users), counted by the database rather than by loading them."""
        with self._store.read() as tx:
            return tx.user_counts()

    def get_group(self, name: str) -> Group:
        with self._store.read() as tx:
            return self._need_group(tx, name)

    def list_groups(self) -> list[Group]:
        """Every group, by GID, with its members."""
        with self._store.read() as tx:
            return tx.groups()

    def groups_of(self, user_name: str) -> list[Group]:
        """The groups the user is a supplementary member of."""
        with self._store.read() as tx:
            return tx.groups_of_user(self._need_user(tx, user_name).id)

    def snapshot(self) -> tuple[list[User], list[Group]]:
        """All users and groups from one consistent read, for building the lookup index."""
        with self._store.read() as tx:
            return tx.users(), tx.groups()

    def login_name_taken(self, name: str) -> bool:
        """Whether a new user could not have this name (for names.derive_login_name)."""
        if not is_valid_name(name, max_length=self._max_name):
            return True
        if self._host.user(name) is not None or self._host.group(name) is not None:
            return True
        with self._store.read() as tx:
            return tx.user_by_name(name) is not None or tx.group_by_name(name) is not None

    def group_name_taken(self, name: str) -> bool:
        """Whether a new group could not have this name (for names.derive_login_name)."""
        if not is_valid_name(name, max_length=self._max_name):
            return True
        if self._host.group(name) is not None:
            return True
        with self._store.read() as tx:
            return tx.group_by_name(name) is not None
