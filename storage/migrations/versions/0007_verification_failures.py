"""Failed identity checks (order id + email/username), counted per order and per sender for the lockout.

Revision ID: 0007_verification_failures
Revises: 0006_ops
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_verification_failures"
down_revision: str | None = "0006_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verification_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(10), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verification_failures"),
    )
    op.create_index(
        "ix_verification_failures_order_id_created_at", "verification_failures", ["order_id", "created_at"]
    )
    op.create_index(
        "ix_verification_failures_sender_id_created_at", "verification_failures", ["sender_id", "created_at"]
    )
    op.create_index("ix_verification_failures_created_at", "verification_failures", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_verification_failures_created_at", table_name="verification_failures")
    op.drop_index("ix_verification_failures_sender_id_created_at", table_name="verification_failures")
    op.drop_index("ix_verification_failures_order_id_created_at", table_name="verification_failures")
    op.drop_table("verification_failures")
