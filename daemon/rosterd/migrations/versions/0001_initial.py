"""Creates the first schema: users, groups, memberships and the permanent record of issued IDs.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("uid", sa.BigInteger, nullable=False),
        sa.Column("gid", sa.BigInteger, nullable=False),
        sa.Column("gecos", sa.Text, nullable=False),
        sa.Column("home", sa.Text, nullable=False),
        sa.Column("shell", sa.Text, nullable=False),
        sa.Column("locked", sa.Boolean(create_constraint=True, name="ck_users_locked_bool"),
                  nullable=False),
        sa.Column("external_id", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
        sa.UniqueConstraint("uid", name="uq_users_uid"),
        sa.UniqueConstraint("external_id", name="uq_users_external_id"),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("gid", sa.BigInteger, nullable=False),
        sa.Column("private_for_user_id", sa.String(36), nullable=True),
        sa.Column("external_id", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
        sa.UniqueConstraint("name", name="uq_groups_name"),
        sa.UniqueConstraint("gid", name="uq_groups_gid"),
        sa.UniqueConstraint("private_for_user_id", name="uq_groups_private_for_user_id"),
        sa.UniqueConstraint("external_id", name="uq_groups_external_id"),
        sa.ForeignKeyConstraint(["private_for_user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_groups_private_for_user_id_users"),
    )
    op.create_table(
        "memberships",
        sa.Column("group_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "user_id", name="pk_memberships"),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], ondelete="CASCADE",
                                name="fk_memberships_group_id_groups"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_memberships_user_id_users"),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_table(
        "issued_ids",
        sa.Column("kind", sa.String(3), nullable=False),
        sa.Column("number", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kind", "number", name="pk_issued_ids"),
        sa.CheckConstraint("kind IN ('uid', 'gid')", name="ck_issued_ids_kind"),
    )


def downgrade() -> None:
    op.drop_table("issued_ids")
    op.drop_index("ix_memberships_user_id", table_name="memberships")
    op.drop_table("memberships")
    op.drop_table("groups")
    op.drop_table("users")
