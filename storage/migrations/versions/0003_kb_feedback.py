"""Knowledge-base answers shown in conversations and the customer's feedback on them.

Revision ID: 0003_kb_feedback
Revises: 0002_conversations
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_kb_feedback"
down_revision: str | None = "0002_conversations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kb_answers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("article_id", sa.String(128), nullable=True),
        sa.Column("article_language", sa.String(8), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=True),
        sa.Column("feedback_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_answers"),
    )
    op.create_index("ix_kb_answers_sender", "kb_answers", ["sender_id", "id"])
    op.create_index("ix_kb_answers_article", "kb_answers", ["article_id"])


def downgrade() -> None:
    op.drop_index("ix_kb_answers_article", table_name="kb_answers")
    op.drop_index("ix_kb_answers_sender", table_name="kb_answers")
    op.drop_table("kb_answers")
