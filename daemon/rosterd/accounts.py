"""Makes every user and group change: checks it, commits it in one transaction, announces it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

import sqlalchemy as sa

from rosterd.config import Config
from rosterd.errors import Conflict, IdTaken, InUse, NameTaken, NotFound
from rosterd.hostfiles import HostFiles
from rosterd.ids import IdAllocator
from rosterd.model import Change, Group, User
from rosterd.names import (
    check_home,
    check_name,
    check_shell,
    is_valid_name,
    sanitize_gecos,
    shown,
)
from rosterd.store import Store, Transaction, new_id

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
                    locked=False, external_id=spec.external_id, created=now, modified=now)
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
            now = self._clock()
            member_of = [g.id for g in tx.groups_of_user(user.id)]
            private_group = tx.private_group_of(user.id)
            private = [private_group] if private_group is not None else []
            tx.retire_id("uid", user.uid, now)
            for group in private:
                tx.retire_id("gid", group.gid, now)
            tx.delete_user(user.id)  # the private group and memberships cascade
            tx.touch_groups(member_of, now)
            changes.append(Change(users_removed=[user], groups_removed=private,
                                  groups_upserted=tx.groups_by_ids(member_of)))
        log.info("deleted user %s; UID %d is retired", name, user.uid)
        return user

    def add_group(self, name: str, *, gid: int | None = None,
                  external_id: str | None = None) -> Group:
        """Creates an empty group with the given or the next free GID."""
        with self._writing() as (tx, changes):
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
                          created=now, modified=now)
            tx.issue_ids([("gid", number, name)], now)
            tx.insert_groups([group])
            changes.append(Change(groups_upserted=[group]))
        log.info("added group %s (GID %d)", name, number)
        return group

    def delete_group(self, name: str) -> Group:
        """Deletes a group that no user has as primary group; its GID stays retired forever."""
        with self._writing() as (tx, changes):
            group = self._need_group(tx, name)
            if group.private_for_user_id is not None:
                owner = tx.user_by_id(group.private_for_user_id)
                raise InUse(f"group {name!r} is the private group of user "
                            f"{owner.name if owner else name}; it is deleted with that user")
            primary_of = tx.users_with_primary_gid(group.gid)
            if primary_of:
                listed = ", ".join(primary_of[:5]) + (" and others" if len(primary_of) > 5 else "")
                raise InUse(f"group {name!r} is the primary group of {listed}; "
                            "delete those users first")
            now = self._clock()
            tx.retire_id("gid", group.gid, now)
            tx.delete_group(group.id)
            changes.append(Change(groups_removed=[group]))
        log.info("deleted group %s; GID %d is retired", name, group.gid)
        return group

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

    # Reading

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
