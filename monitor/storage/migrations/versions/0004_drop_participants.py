"""Drop the participants table: written on every ingest, read by nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 13:30:00.000000

Every address it held is in the messages row itself (from_addr, sender_addr, to_addrs,
cc_addrs), so dropping it loses nothing, and it cost a fifth of a PostgreSQL backfill (four
rows and two index entries per message). A downgrade rebuilds it from those columns.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _addresses(value: object) -> list[str]:
    """A JSON column as read here: text on SQLite, already decoded by psycopg."""
    decoded = json.loads(value) if isinstance(value, str | bytes) else value
    return [a for a in decoded or () if isinstance(a, str)] if isinstance(decoded, list) else []


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participants_address"))
    op.drop_table("participants")


def downgrade() -> None:
    participants = op.create_table(
        "participants",
        sa.Column("message_pk", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["messages.id"],
            name=op.f("fk_participants_message_pk_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_pk", "address", "role", name=op.f("pk_participants")),
    )
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_participants_address"), ["address"], unique=False)
    conn = op.get_bind()
    messages = conn.execute(
        sa.text(
            "SELECT id, from_addr, sender_addr, to_addrs, cc_addrs FROM messages"
        ).execution_options(yield_per=2000)  # streamed: the store may be large
    )
    rows: list[dict[str, Any]] = []
    for pk, from_addr, sender_addr, to_json, cc_json in messages:
        for role, addresses in (
            ("from", [from_addr]),
            ("sender", [sender_addr]),
            ("to", _addresses(to_json)),
            ("cc", _addresses(cc_json)),
        ):
            for address in dict.fromkeys(a for a in addresses if a):
                rows.append({"message_pk": pk, "address": address[:320], "role": role})
        if len(rows) >= 5000:
            op.bulk_insert(participants, rows)
            rows = []
    if rows:
        op.bulk_insert(participants, rows)
