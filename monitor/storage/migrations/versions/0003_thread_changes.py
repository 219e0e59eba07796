"""A log of changed threads for incremental evaluation, instead of per-thread snapshots;
a partial index on out-of-office replies.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:30:00.000000

Incremental evaluation used to compare an aggregate of every thread's messages with the
snapshot it last evaluated, a scan of the whole store on every pass. The store now logs each
thread it changes, and evaluation consumes the log. Upgrading logs every stored thread once,
so the first pass after the upgrade evaluates them all. Every pass also reads our people's
out-of-office replies: a partial index holds only those rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SNAPSHOT_COLUMNS = ("message_count", "last_at", "answered_count", "digest")
OUT_OF_OFFICE_ROWS = "automatic = 'out_of_office'"


def upgrade() -> None:
    op.create_table(
        "thread_changes",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_thread_changes")),
    )
    op.execute("INSERT INTO thread_changes (thread_id) SELECT thread_id FROM threads")
    with op.batch_alter_table("thread_checks", schema=None) as batch_op:
        for column in SNAPSHOT_COLUMNS:
            batch_op.drop_column(column)
    op.create_index(
        "ix_messages_out_of_office",
        "messages",
        ["time"],
        sqlite_where=sa.text(OUT_OF_OFFICE_ROWS),
        postgresql_where=sa.text(OUT_OF_OFFICE_ROWS),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_out_of_office", table_name="messages")
    with op.batch_alter_table("thread_checks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("message_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("last_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("answered_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("digest", sa.String(length=64), nullable=False, server_default="")
        )
    op.drop_table("thread_changes")
