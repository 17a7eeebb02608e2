"""Runs rosterd's migrations on the connection Store.migrate hands over (online mode only)."""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "rosterd migrations run only through rosterd.store.Store.migrate, "
            "which passes an open connection")
    # render_as_batch: SQLite cannot ALTER most constraints; batch mode rebuilds the
    # table instead, and is a no-op on PostgreSQL.
    context.configure(connection=connection, target_metadata=None, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("rosterd does not support offline (SQL script) migrations")
run_migrations_online()
