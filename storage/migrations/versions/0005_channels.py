"""Push channels: inbound de-duplication and retry, the outbound outbox, button references.

Revision ID: 0005_channels
Revises: 0003_kb_feedback
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_channels"
down_revision: str | None = "0003_kb_feedback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_inbound",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(160), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("language", sa.String(8), nullable=True),
        sa.Column("language_hint", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_channel_inbound"),
        sa.UniqueConstraint("channel", "external_id", name="uq_channel_inbound_external"),
    )
    op.create_index("ix_channel_inbound_due", "channel_inbound", ["status", "next_attempt_at"])
    op.create_table(
        "channel_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("dedup_key", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_channel_outbox"),
        sa.UniqueConstraint("dedup_key", name="uq_channel_outbox_dedup_key"),
    )
    op.create_index("ix_channel_outbox_queue", "channel_outbox", ["channel", "status", "id"])
    op.create_table(
        "channel_buttons",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_channel_buttons"),
    )
    op.create_index("ix_channel_buttons_sender", "channel_buttons", ["sender_id", "slot"])


def downgrade() -> None:
    op.drop_index("ix_channel_buttons_sender", table_name="channel_buttons")
    op.drop_table("channel_buttons")
    op.drop_index("ix_channel_outbox_queue", table_name="channel_outbox")
    op.drop_table("channel_outbox")
    op.drop_index("ix_channel_inbound_due", table_name="channel_inbound")
    op.drop_table("channel_inbound")
