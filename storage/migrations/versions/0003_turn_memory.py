"""The handoff's memory of a conversation between turns, shared by gateway replicas (handoff/models.py
``TurnMemory``, issue 16): the policy's signals, the digest of the turn's client address and a ticket
still to be announced.

Revision ID: 0003_turn_memory
Revises: 0002_leases
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_turn_memory"
down_revision = "0002_leases"


def upgrade() -> None:
    op.create_table(
        "handoff_turn_memory",
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("failure_streak", sa.Integer(), nullable=False),
        sa.Column("last_frustration", sa.Float(), nullable=False),
        sa.Column("offer_pending", sa.String(32), nullable=True),
        sa.Column("cooldown", sa.Integer(), nullable=False),
        sa.Column("new_ticket_id", sa.Integer(), nullable=True),
        sa.Column("client_key", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], name="fk_turn_memory_conversation"),
        sa.PrimaryKeyConstraint("conversation_id", name="pk_handoff_turn_memory"),
    )


def downgrade() -> None:
    op.drop_table("handoff_turn_memory")
