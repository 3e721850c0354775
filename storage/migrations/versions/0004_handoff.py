"""Human handoff: queues, agents and their sessions, tickets, notes, audit log, outbox; and the
conversations' count of messages not yet delivered to the customer.

Revision ID: 0004_handoff
Revises: 0003_kb_feedback
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_handoff"
down_revision: str | None = "0003_kb_feedback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("undelivered", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "handoff_queues",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("avg_handle_minutes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_handoff_queues"),
    )
    op.create_table(
        "handoff_agents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_handoff_agents"),
        sa.UniqueConstraint("username", name="uq_handoff_agents_username"),
    )
    op.create_table(
        "handoff_agent_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["handoff_agents.id"], name="fk_sessions_agent"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_handoff_agent_sessions"),
    )
    op.create_table(
        "handoff_tickets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(64), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("customer", sa.JSON(), nullable=False),
        sa.Column("contact_email", sa.String(254), nullable=True),
        sa.Column("awaiting_email", sa.Boolean(), nullable=False),
        sa.Column("request_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=True),
        sa.Column("last_customer_at", sa.DateTime(), nullable=True),
        sa.Column("last_agent_at", sa.DateTime(), nullable=True),
        sa.Column("agent_nudged_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("close_reason", sa.String(64), nullable=True),
        sa.Column("csat_stage", sa.String(16), nullable=True),
        sa.Column("csat_score", sa.Integer(), nullable=True),
        sa.Column("csat_comment", sa.Text(), nullable=True),
        sa.Column("csat_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], name="fk_tickets_conversation"),
        sa.ForeignKeyConstraint(["agent_id"], ["handoff_agents.id"], name="fk_tickets_agent"),
        sa.PrimaryKeyConstraint("id", name="pk_handoff_tickets"),
    )
    op.create_index("ix_handoff_tickets_status", "handoff_tickets", ["status", "queue", "priority", "queued_at"])
    op.create_index("ix_handoff_tickets_conversation", "handoff_tickets", ["conversation_id", "status"])
    op.create_index("ix_handoff_tickets_agent", "handoff_tickets", ["agent_id", "status"])
    op.create_table(
        "handoff_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["handoff_tickets.id"], name="fk_notes_ticket"),
        sa.ForeignKeyConstraint(["agent_id"], ["handoff_agents.id"], name="fk_notes_agent"),
        sa.PrimaryKeyConstraint("id", name="pk_handoff_notes"),
    )
    op.create_index("ix_handoff_notes_ticket", "handoff_notes", ["ticket_id"])
    op.create_table(
        "handoff_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_handoff_audit"),
    )
    op.create_index("ix_handoff_audit_ticket", "handoff_audit", ["ticket_id"])
    op.create_table(
        "handoff_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("adapter", sa.String(16), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_handoff_outbox"),
    )
    op.create_index("ix_handoff_outbox_due", "handoff_outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    for index, table in (
        ("ix_handoff_outbox_due", "handoff_outbox"),
        ("ix_handoff_audit_ticket", "handoff_audit"),
        ("ix_handoff_notes_ticket", "handoff_notes"),
        ("ix_handoff_tickets_agent", "handoff_tickets"),
        ("ix_handoff_tickets_conversation", "handoff_tickets"),
        ("ix_handoff_tickets_status", "handoff_tickets"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("handoff_outbox", "handoff_audit", "handoff_notes", "handoff_tickets",
                  "handoff_agent_sessions", "handoff_agents", "handoff_queues"):
        op.drop_table(table)
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("undelivered")
