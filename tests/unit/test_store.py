"""Tests for rosterd.store on real SQLite files: schema, durability settings, atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from rosterd.model import Group, User
from rosterd.store import MIGRATIONS_DIR, Store, metadata, new_id

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_user(name: str, uid: int, gid: int | None = None) -> User:
    return User(
        id=new_id(), name=name, uid=uid, gid=uid if gid is None else gid, gecos="",
                home=f"/home/{name}", shell="/bin/sh", locked=False, external_id=None,
                created=NOW, modified=NOW)


def make_group(name: str, gid: int, private_for: str | None = None) -> Group:
    return Group(id=new_id(), name=name, gid=gid, member_names=(),
                 private_for_user_id=private_for, external_id=None, created=NOW, modified=NOW)


def _newest_revision() -> str | None:
    alembic_cfg = AlembicConfig()
    alembic_cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(alembic_cfg).get_current_head()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open_sqlite(tmp_path / "rosterd.db")
    yield opened
    opened.close()


def test_migrating_an_empty_database_creates_the_current_schema(tmp_path: Path) -> None:
    store = Store.open_sqlite(tmp_path / "fresh.db")
    try:
        assert store.schema_revision() == _newest_revision()
        with store.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert {"users", "groups", "memberships", "issued_ids", "alembic_version"} <= tables
        assert diff == []
    finally:
        store.close()


def test_opening_a_migrated_database_again_keeps_its_data(tmp_path: Path) -> None:
    first = Store.open_sqlite(tmp_path / "db")
    with first.write() as tx:
        tx.insert_users([make_user("alice", 1000)])
    first.close()
    second = Store.open_sqlite(tmp_path / "db")
    with second.read() as tx:
        assert [u.name for u in tx.users()] == ["alice"]
    assert second.schema_revision() == _newest_revision()
    second.close()


def test_durability_settings_are_applied_to_every_connection(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_a_write_that_fails_after_its_first_insert_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError, match="injected"):
        with store.write() as tx:
            tx.issue_ids([("uid", 1000, "alice")], NOW)
            tx.insert_users([make_user("alice", 1000)])
            raise RuntimeError("injected failure")
    with store.read() as tx:
        assert tx.users() == []
        assert tx.issued_numbers("uid") == []


def test_a_process_killed_mid_transaction_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    Store.open_sqlite(path).close()
    child = textwrap.dedent(f"""
        import os
        from datetime import UTC, datetime
        from rosterd.model import User
        from rosterd.store import Store
        now = datetime.now(UTC)
        store = Store.open_sqlite({str(path)!r})
        with store.write() as tx:
            tx.issue_ids([("uid", 1000, "alice")], now)
            tx.insert_users([User("id-1", "alice", 1000, 1000, "", "/home/alice", "/bin/sh",
                                  False, None, now, now)])
            os._exit(9)  # dies holding the open transaction, as a crash would
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "daemon"))
    result = subprocess.run([sys.executable, "-c", child], env=env, timeout=60, check=False)
    assert result.returncode == 9
    store = Store.open_sqlite(path)
    with store.read() as tx:
        assert tx.users() == []
        assert tx.issued_numbers("uid") == []
    store.close()


def test_the_largest_id_and_timestamps_round_trip(store: Store) -> None:
    with store.write() as tx:
        tx.insert_users([make_user("big", 4294967294)])
        tx.issue_ids([("uid", 4294967294, "big")], NOW)
    with store.read() as tx:
        user = tx.user_by_uid(4294967294)
        issued = tx.issued_id("uid", 4294967294)
    assert user is not None and user.uid == 4294967294 and user.gid == 4294967294
    assert user.created == NOW and user.created.tzinfo is not None
    assert issued is not None and issued.holder == "big" and not issued.retired


def test_deleting_a_user_cascades_to_its_private_group_and_memberships(store: Store) -> None:
    alice = make_user("alice", 1000)
    private = make_group("alice", 1000, private_for=alice.id)
    devs = make_group("devs", 2000)
    with store.write() as tx:
        tx.insert_users([alice])
        tx.insert_groups([private, devs])
        tx.add_memberships([(devs.id, alice.id)])
    with store.read() as tx:
        assert tx.group_by_name("devs") is not None
        assert tx.group_by_name("devs").member_names == ("alice",)  # type: ignore[union-attr]
    with store.write() as tx:
        tx.delete_user(alice.id)
    with store.read() as tx:
        assert tx.group_by_name("alice") is None
        devs_now = tx.group_by_name("devs")
    assert devs_now is not None and devs_now.member_names == ()


def test_an_id_is_recorded_once_and_stays_after_retirement(store: Store) -> None:
    with store.write() as tx:
        tx.issue_ids([("gid", 1500, "devs")], NOW)
    with store.write() as tx:
        tx.retire_id("gid", 1500, NOW)
    with store.read() as tx:
        issued = tx.issued_id("gid", 1500)
    assert issued is not None and issued.retired
    with pytest.raises(sa.exc.IntegrityError):
        with store.write() as tx:
            tx.issue_ids([("gid", 1500, "again")], NOW)


def test_unique_names_and_ids_are_enforced_by_the_schema(store: Store) -> None:
    with store.write() as tx:
        tx.insert_users([make_user("alice", 1000)])
    for duplicate in (make_user("alice", 1001), make_user("bob", 1000)):
        with pytest.raises(sa.exc.IntegrityError):
            with store.write() as tx:
                tx.insert_users([duplicate])


def test_group_members_are_sorted_by_name(store: Store) -> None:
    users = [make_user(name, uid) for name, uid in (("zed", 1), ("amy", 2), ("max", 3))]
    team = make_group("team", 10)
    with store.write() as tx:
        tx.insert_users(users)
        tx.insert_groups([team])
        tx.add_memberships([(team.id, u.id) for u in users])
    with store.read() as tx:
        assert tx.group_by_gid(10).member_names == ("amy", "max", "zed")  # type: ignore[union-attr]
