"""Adds what SCIM needs to round-trip: userName, the other stored attributes, versions, displayName.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        # userName as the client sent it, and its case-folded key: RFC 7643 §4.1.1 makes
        # userName unique with caseExact false, so the key column carries the constraint.
        batch.add_column(sa.Column("user_name", sa.Text, nullable=True))
        batch.add_column(sa.Column("user_name_key", sa.Text, nullable=True))
        batch.add_column(sa.Column("scim_attributes", sa.Text, nullable=True))
        batch.add_column(sa.Column("version", sa.BigInteger, nullable=False,
                                   server_default="1"))
        batch.create_unique_constraint("uq_users_user_name_key", ["user_name_key"])
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("display_name", sa.Text, nullable=True))
        batch.add_column(sa.Column("version", sa.BigInteger, nullable=False,
                                   server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("version")
        batch.drop_column("display_name")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_user_name_key", type_="unique")
        batch.drop_column("version")
        batch.drop_column("scim_attributes")
        batch.drop_column("user_name_key")
        batch.drop_column("user_name")
