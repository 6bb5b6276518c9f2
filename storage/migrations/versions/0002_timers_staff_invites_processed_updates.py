"""timers, staff invites, processed updates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 16:24:00.557736
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processed_updates",
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bot_id", "update_id", name=op.f("pk_processed_updates")),
    )
    op.create_index(op.f("ix_processed_updates_at"), "processed_updates", ["at"], unique=False)
    op.create_table(
        "staff_invites",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_staff_invites")),
    )
    op.create_table(
        "timers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("dedup_key", sa.String(length=160), nullable=False),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_timers_complaint_id_complaints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timers")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_timers_dedup_key")),
    )
    op.create_index(op.f("ix_timers_complaint_id"), "timers", ["complaint_id"], unique=False)
    op.create_index("ix_timers_pending", "timers", ["done_at", "due_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_timers_pending", table_name="timers")
    op.drop_index(op.f("ix_timers_complaint_id"), table_name="timers")
    op.drop_table("timers")
    op.drop_table("staff_invites")
    op.drop_index(op.f("ix_processed_updates_at"), table_name="processed_updates")
    op.drop_table("processed_updates")
