"""Keeps users, groups, memberships and every ID ever issued in SQL (SQLite now, PostgreSQL later).

Only accounts.py writes, always through `Store.write()`: one transaction per
write, so a crash never leaves half a user. SQLite runs in WAL mode with
synchronous=FULL, so a commit that returned survives a power cut
(https://www.sqlite.org/pragma.html#pragma_synchronous).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Connection, Dialect, Engine

from rosterd.model import Group, IssuedId, User

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 5000
# Rows per IN (...) list: SQLite allows 32766 bound parameters per statement.
_IN_CHUNK = 10_000
_WRITE_OPTION = "rosterd_write"


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back time-zone aware (SQLite keeps none)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Constraint names are fixed by convention so later migrations can name them on
# both SQLite (batch mode) and PostgreSQL.
metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("uid", sa.BigInteger, nullable=False, unique=True),
    sa.Column("gid", sa.BigInteger, nullable=False),
    sa.Column("gecos", sa.Text, nullable=False),
    sa.Column("home", sa.Text, nullable=False),
    sa.Column("shell", sa.Text, nullable=False),
    sa.Column("locked", sa.Boolean(create_constraint=True, name="locked_bool"), nullable=False),
    sa.Column("external_id", sa.Text, nullable=True, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("modified_at", UtcDateTime, nullable=False),
    sa.Column("user_name", sa.Text, nullable=True),
    sa.Column("user_name_key", sa.Text, nullable=True, unique=True),
    sa.Column("scim_attributes", sa.Text, nullable=True),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
)

groups = sa.Table(
    "groups", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("gid", sa.BigInteger, nullable=False, unique=True),
    sa.Column("private_for_user_id", sa.String(36),
              sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True, unique=True),
    sa.Column("external_id", sa.Text, nullable=True, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("modified_at", UtcDateTime, nullable=False),
    sa.Column("display_name", sa.Text, nullable=True),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
)

memberships = sa.Table(
    "memberships", metadata,
    sa.Column("group_id", sa.String(36), sa.ForeignKey("groups.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True, index=True),
)

issued_ids = sa.Table(
    "issued_ids", metadata,
    sa.Column("kind", sa.String(3), primary_key=True),
    sa.Column("number", sa.BigInteger, primary_key=True),
    sa.Column("holder", sa.String(256), nullable=False),
    sa.Column("issued_at", UtcDateTime, nullable=False),
    sa.Column("retired_at", UtcDateTime, nullable=True),
    sa.CheckConstraint("kind IN ('uid', 'gid')", name="kind"),
)


def user_name_key(user_name: str | None) -> str | None:
    """The key userName is unique by: case-folded, as RFC 7643 §4.1.1 has it caseExact false."""
    return None if user_name is None else user_name.casefold()


# SCIM clients' bearer tokens, as SHA-256 hashes only; rosterd.tokens reads and
# writes this table (migration 0002).
api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("label", sa.String(128), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_used_at", UtcDateTime, nullable=True),
    sa.Column("last_used_from", sa.String(64), nullable=True),
)


def new_id() -> str:
    """A fresh object ID (a random UUID, also the SCIM `id`)."""
    return str(uuid.uuid4())


def _user(row: sa.Row[Any]) -> User:
    return User(
        id=row.id, name=row.name, uid=row.uid, gid=row.gid, gecos=row.gecos, home=row.home,
        shell=row.shell, locked=bool(row.locked), external_id=row.external_id,
        created=row.created_at, modified=row.modified_at, user_name=row.user_name,
        scim_attributes=row.scim_attributes, version=row.version,
    )


def _group(row: sa.Row[Any], members: Iterable[str]) -> Group:
    return Group(
        id=row.id, name=row.name, gid=row.gid, member_names=tuple(sorted(members)),
        private_for_user_id=row.private_for_user_id, external_id=row.external_id,
        created=row.created_at, modified=row.modified_at, display_name=row.display_name,
        version=row.version,
    )


class Transaction:
    """Reads and writes inside one database transaction (see Store.read and Store.write)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # Users

    def _one_user(self, where: sa.ColumnElement[bool]) -> User | None:
        row = self.conn.execute(sa.select(users).where(where)).first()
        return None if row is None else _user(row)

    def user_by_name(self, name: str) -> User | None:
        return self._one_user(users.c.name == name)

    def user_by_uid(self, uid: int) -> User | None:
        return self._one_user(users.c.uid == uid)

    def user_by_id(self, user_id: str) -> User | None:
        return self._one_user(users.c.id == user_id)

    def user_by_external_id(self, external_id: str) -> User | None:
        return self._one_user(users.c.external_id == external_id)

    def users(self) -> list[User]:
        rows = self.conn.execute(sa.select(users).order_by(users.c.uid))
        return [_user(row) for row in rows]

    def user_counts(self) -> tuple[int, int]:
        """How many users there are, and how many of them are locked."""
        total, locked = self.conn.execute(sa.select(
            sa.func.count(), sa.func.count().filter(users.c.locked.is_(True))
        ).select_from(users)).one()
        return int(total), int(locked)

    def users_with_primary_gid(self, gid: int) -> list[str]:
        rows = self.conn.execute(
            sa.select(users.c.name).where(users.c.gid == gid).order_by(users.c.name))
        return [row.name for row in rows]

    def user_names(self) -> set[str]:
        return set(self.conn.execute(sa.select(users.c.name)).scalars())

    def insert_users(self, new: Iterable[User]) -> None:
        rows = [
            {"id": u.id, "name": u.name, "uid": u.uid, "gid": u.gid, "gecos": u.gecos,
             "home": u.home, "shell": u.shell, "locked": u.locked, "external_id": u.external_id,
             "created_at": u.created, "modified_at": u.modified, "user_name": u.user_name,
             "user_name_key": user_name_key(u.user_name), "scim_attributes": u.scim_attributes,
             "version": u.version}
            for u in new
        ]
        if rows:
            self.conn.execute(sa.insert(users), rows)

    def update_user(self, user_id: str, **values: object) -> None:
        """Sets column values and bumps the user's version (SCIM meta.version, RFC 7644 §3.14)."""
        if "user_name" in values:
            given = values["user_name"]
            values["user_name_key"] = user_name_key(given if isinstance(given, str) else None)
        self.conn.execute(sa.update(users).where(users.c.id == user_id).values(
            version=users.c.version + 1, **values))

    def user_by_user_name(self, user_name: str) -> User | None:
        """The user whose SCIM userName equals `user_name` ignoring case (RFC 7643 §4.1.1)."""
        return self._one_user(users.c.user_name_key == user_name_key(user_name))

    def users_where(self, where: sa.ColumnElement[bool] | None = None, *, offset: int = 0,
                    limit: int | None = None) -> list[User]:
        """Users in SCIM's stable order (creation, then ID), optionally one page of them."""
        query = sa.select(users).order_by(users.c.created_at, users.c.id)
        if where is not None:
            query = query.where(where)
        query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return [_user(row) for row in self.conn.execute(query)]

    def count_users(self) -> int:
        return int(self.conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())

    def groups_of_users(self, user_ids: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """(group ID, SCIM display name) of each user's shared groups, for SCIM's `groups`."""
        wanted = list(set(user_ids))
        found: dict[str, list[tuple[str, str]]] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            rows = self.conn.execute(
                sa.select(memberships.c.user_id, groups.c.id, groups.c.name, groups.c.display_name)
                .join(groups, groups.c.id == memberships.c.group_id)
                .where(memberships.c.user_id.in_(wanted[start:start + _IN_CHUNK]))
                .order_by(groups.c.created_at, groups.c.id))
            for row in rows:
                found.setdefault(row.user_id, []).append(
                    (row.id, row.display_name if row.display_name is not None else row.name))
        return found

    def delete_user(self, user_id: str) -> None:
        """Deletes the user; its private group and memberships go with it (ON DELETE CASCADE)."""
        self.conn.execute(sa.delete(users).where(users.c.id == user_id))

    # Groups

    def _groups(self, where: sa.ColumnElement[bool] | None = None) -> list[Group]:
        query = sa.select(groups).order_by(groups.c.gid)
        member_query = (
            sa.select(memberships.c.group_id, users.c.name)
            .join(users, users.c.id == memberships.c.user_id)
        )
        if where is not None:
            query = query.where(where)
            member_query = member_query.where(
                memberships.c.group_id.in_(sa.select(groups.c.id).where(where)))
        members: dict[str, list[str]] = {}
        for group_id, name in self.conn.execute(member_query):
            members.setdefault(group_id, []).append(name)
        return [_group(row, members.get(row.id, ())) for row in self.conn.execute(query)]

    def _one_group(self, where: sa.ColumnElement[bool]) -> Group | None:
        found = self._groups(where)
        return found[0] if found else None

    def group_by_name(self, name: str) -> Group | None:
        return self._one_group(groups.c.name == name)

    def group_by_gid(self, gid: int) -> Group | None:
        return self._one_group(groups.c.gid == gid)

    def group_by_id(self, group_id: str) -> Group | None:
        return self._one_group(groups.c.id == group_id)

    def group_by_external_id(self, external_id: str) -> Group | None:
        return self._one_group(groups.c.external_id == external_id)

    def groups(self) -> list[Group]:
        return self._groups()

    def private_group_of(self, user_id: str) -> Group | None:
        return self._one_group(groups.c.private_for_user_id == user_id)

    def group_refs(self) -> list[tuple[str, str, int, str | None]]:
        """(id, name, gid, private_for_user_id) of every group, without members."""
        rows = self.conn.execute(sa.select(
            groups.c.id, groups.c.name, groups.c.gid, groups.c.private_for_user_id))
        return [(row.id, row.name, row.gid, row.private_for_user_id) for row in rows]

    def groups_by_ids(self, group_ids: Iterable[str]) -> list[Group]:
        wanted = list(set(group_ids))
        return self._groups(groups.c.id.in_(wanted)) if wanted else []

    def groups_of_user(self, user_id: str) -> list[Group]:
        """The groups the user is a supplementary member of."""
        return self._groups(groups.c.id.in_(
            sa.select(memberships.c.group_id).where(memberships.c.user_id == user_id)))

    def group_names(self) -> set[str]:
        return set(self.conn.execute(sa.select(groups.c.name)).scalars())

    def group_gids(self) -> dict[int, str]:
        """Every rosterd GID with its group's ID."""
        return {gid: gid_id for gid, gid_id in self.conn.execute(
            sa.select(groups.c.gid, groups.c.id))}

    def insert_groups(self, new: Iterable[Group]) -> None:
        rows = [
            {"id": g.id, "name": g.name, "gid": g.gid, "private_for_user_id": g.private_for_user_id,
             "external_id": g.external_id, "created_at": g.created, "modified_at": g.modified,
             "display_name": g.display_name, "version": g.version}
            for g in new
        ]
        if rows:
            self.conn.execute(sa.insert(groups), rows)

    def touch_groups(self, group_ids: Iterable[str], when: datetime) -> None:
        """Marks the groups changed: new modified time and version (SCIM meta, RFC 7644 §3.14)."""
        wanted = list(set(group_ids))
        if wanted:
            self.conn.execute(sa.update(groups).where(groups.c.id.in_(wanted)).values(
                modified_at=when, version=groups.c.version + 1))

    def update_group(self, group_id: str, **values: object) -> None:
        """Sets column values and bumps the group's version."""
        self.conn.execute(sa.update(groups).where(groups.c.id == group_id).values(
            version=groups.c.version + 1, **values))

    def shared_groups_where(self, where: sa.ColumnElement[bool] | None = None, *,
                            offset: int = 0, limit: int | None = None) -> list[Group]:
        """Groups that are not user private groups, in SCIM's stable order, with members."""
        query = (sa.select(groups).where(groups.c.private_for_user_id.is_(None))
                 .order_by(groups.c.created_at, groups.c.id))
        if where is not None:
            query = query.where(where)
        query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        rows = list(self.conn.execute(query))
        members = self.members_of([row.id for row in rows])
        return [_group(row, (name for _, name, _ in members.get(row.id, ()))) for row in rows]

    def count_shared_groups(self) -> int:
        return int(self.conn.execute(sa.select(sa.func.count()).select_from(groups).where(
            groups.c.private_for_user_id.is_(None))).scalar_one())

    def members_of(self, group_ids: Iterable[str]) -> dict[str, list[tuple[str, str, str | None]]]:
        """(user ID, login name, userName) of each group's members, in SCIM's stable order."""
        wanted = list(set(group_ids))
        found: dict[str, list[tuple[str, str, str | None]]] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            rows = self.conn.execute(
                sa.select(memberships.c.group_id, users.c.id, users.c.name, users.c.user_name)
                .join(users, users.c.id == memberships.c.user_id)
                .where(memberships.c.group_id.in_(wanted[start:start + _IN_CHUNK]))
                .order_by(users.c.created_at, users.c.id))
            for row in rows:
                found.setdefault(row.group_id, []).append((row.id, row.name, row.user_name))
        return found

    def delete_group(self, group_id: str) -> None:
        self.conn.execute(sa.delete(groups).where(groups.c.id == group_id))

    # Memberships

    def add_memberships(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Adds (group_id, user_id) pairs; the caller has checked they are new."""
        rows = [{"group_id": group_id, "user_id": user_id} for group_id, user_id in pairs]
        if rows:
            self.conn.execute(sa.insert(memberships), rows)

    def is_member(self, group_id: str, user_id: str) -> bool:
        row = self.conn.execute(sa.select(memberships.c.user_id).where(
            memberships.c.group_id == group_id, memberships.c.user_id == user_id)).first()
        return row is not None

    def remove_membership(self, group_id: str, user_id: str) -> bool:
        result = self.conn.execute(sa.delete(memberships).where(
            memberships.c.group_id == group_id, memberships.c.user_id == user_id))
        return bool(result.rowcount)

    # Issued IDs: the permanent record, never deleted.

    def issue_ids(self, issued: Iterable[tuple[str, int, str]], when: datetime) -> None:
        """Records (kind, number, holder) as issued; a number issued before fails the insert."""
        rows = [{"kind": kind, "number": number, "holder": holder, "issued_at": when,
                 "retired_at": None} for kind, number, holder in issued]
        if rows:
            self.conn.execute(sa.insert(issued_ids), rows)

    def retire_id(self, kind: str, number: int, when: datetime) -> None:
        self.conn.execute(sa.update(issued_ids).where(
            issued_ids.c.kind == kind, issued_ids.c.number == number,
            issued_ids.c.retired_at.is_(None)).values(retired_at=when))

    def issued_id(self, kind: str, number: int) -> IssuedId | None:
        row = self.conn.execute(sa.select(issued_ids).where(
            issued_ids.c.kind == kind, issued_ids.c.number == number)).first()
        if row is None:
            return None
        return IssuedId(kind=row.kind, number=row.number, holder=row.holder,
                        issued_at=row.issued_at, retired_at=row.retired_at)

    def issued_numbers(self, kind: str) -> list[int]:
        return list(self.conn.execute(
            sa.select(issued_ids.c.number).where(issued_ids.c.kind == kind)).scalars())


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is switched off (isolation_level None)
    # so that _begin below decides how each transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS:d}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes SQLite's write lock at BEGIN, not at its first write, so two
    # writers never deadlock upgrading their read locks (SQLITE_BUSY mid-transaction).
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Store:
    """The database: open it, migrate it to the newest schema, and run transactions on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})

    @classmethod
    def open_sqlite(cls, path: Path) -> Store:
        """Opens (creating if needed) the SQLite database at `path` and migrates it."""
        engine = sa.create_engine(f"sqlite:///{path}")
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        store = cls(engine)
        store.migrate()
        return store

    @classmethod
    def open_url(cls, url: str) -> Store:
        """Opens a database by SQLAlchemy URL (PostgreSQL: a later issue) and migrates it."""
        if url.startswith("sqlite:"):
            return cls.open_sqlite(Path(url.split("///", 1)[1]))
        store = cls(sa.create_engine(url, pool_pre_ping=True))
        store.migrate()
        return store

    def migrate(self) -> None:
        """Upgrades the schema to the newest Alembic revision shipped in rosterd/migrations."""
        alembic_cfg = AlembicConfig()
        alembic_cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._writer.begin() as conn:
            alembic_cfg.attributes["connection"] = conn
            command.upgrade(alembic_cfg, "head")

    def schema_revision(self) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT version_num FROM alembic_version")).first()
            conn.rollback()
        return None if row is None else str(row[0])

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A read-only transaction: one consistent view of the store."""
        with self.engine.connect() as conn:
            with conn.begin() as outer:
                yield Transaction(conn)
                outer.rollback()

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """One write transaction: committed durably when the block ends, rolled back on error."""
        with self._writer.begin() as conn:
            yield Transaction(conn)

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def _read_only(path: Path) -> Iterator[Connection]:
    """A read-only connection for rosterctl doctor, which may run beside the daemon.

    mode=ro writes nothing and never migrates; any WAL side files it creates as root
    are handed to the database's owner, so the daemon can still open them.
    """
    owner = path.stat()
    before = {s: path.with_name(path.name + s).exists() for s in ("-wal", "-shm")}
    engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
        for suffix, existed in before.items():
            side = path.with_name(path.name + suffix)
            if not existed and side.exists() and os.geteuid() == 0:
                os.chown(side, owner.st_uid, owner.st_gid)


def integrity_problems(path: Path) -> list[str]:
    """What SQLite's PRAGMA integrity_check reports for the database at `path`; [] if sound."""
    with _read_only(path) as conn:
        rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check")]
    return [] if rows == ["ok"] else rows


def read_names(path: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(name, UID) of every user and (name, GID) of every group, read without migrating."""
    with _read_only(path) as conn:
        user_rows = conn.execute(sa.select(users.c.name, users.c.uid)).all()
        group_rows = conn.execute(sa.select(groups.c.name, groups.c.gid)).all()
    return ([(str(n), int(i)) for n, i in user_rows], [(str(n), int(i)) for n, i in group_rows])
