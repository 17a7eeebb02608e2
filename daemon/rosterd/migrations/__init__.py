"""Holds rosterd's Alembic migrations, run in code by Store.migrate (no alembic.ini on the host)."""
