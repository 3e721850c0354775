"""Tables of support ops (schema: the Alembic baseline ``0001_schema``).

The review inbox keeps only redacted text: the raw message stays in ``messages`` (owned by the
conversation store), and what ops users read, annotate and export is the redacted copy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base
from storage.types import UTCDateTime

# Why an item is in the inbox.
SOURCES = ("fallback", "low_confidence", "kb_declined", "kb_unhelpful", "handoff", "rephrased")
ITEM_STATUSES = ("open", "annotated", "knowledge_gap", "dismissed")


class ReviewItem(Base):
    """One message worth a look. ``source_key`` makes collection idempotent ("turn:17", "kb:4")."""

    __tablename__ = "ops_review_items"
    __table_args__ = (Index("ix_ops_review_items_status", "status", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[int | None] = mapped_column(Integer)
    conversation_id: Mapped[int | None] = mapped_column(Integer)
    sender_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    intent: Mapped[str | None] = mapped_column(String(64))  # what the bot understood
    confidence: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)  # redacted with surrogates: what an annotation writes
    masked: Mapped[str] = mapped_column(Text)  # redacted with [TYPE] masks: what exports show
    pii: Mapped[list[str]] = mapped_column(JSON, default=list)  # types found and replaced
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. the rephrase, the KB article
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32 unit vector (e5 query view)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolution: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # intent, entities, file, note
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the customer wrote it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Cursor(Base):
    """How far each collector has read its source table (highest id seen)."""

    __tablename__ = "ops_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)


class KbDraft(Base):
    """A help-centre article proposed from a handoff (customer question + agent answer, redacted)."""

    __tablename__ = "ops_kb_drafts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    article_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | published | discarded
    kb_version: Mapped[str | None] = mapped_column(String(64))  # the index version publishing created
    updated_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrainingJob(Base):
    """A background retrain: train → evaluate → gate (→ promote when asked and allowed)."""

    __tablename__ = "ops_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|passed|refused|failed
    stage: Mapped[str] = mapped_column(String(32), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    started_by: Mapped[str] = mapped_column(String(64))
    auto_promote: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_id: Mapped[str | None] = mapped_column(String(64))
    baseline_id: Mapped[str | None] = mapped_column(String(64))
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the gate's decision and reasons
    log_tail: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ModelVersion(Base):
    """A trained Rasa model kept with what made it and how it scored. Never deleted by ops."""

    __tablename__ = "ops_models"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the file name without .tar.gz
    path: Mapped[str] = mapped_column(Text)
    data_hash: Mapped[str] = mapped_column(String(64))  # bot.training.model_hash of its inputs
    config: Mapped[str] = mapped_column(Text)  # the pipeline config's text
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # per language, per intent, stories
    test_hash: Mapped[str | None] = mapped_column(String(64))  # which test split the metrics are for
    status: Mapped[str] = mapped_column(String(16), default="candidate")  # candidate | active | retired | refused
    trained_by: Mapped[str] = mapped_column(String(64))
    training_seconds: Mapped[float | None] = mapped_column(Float)
    job_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """Who did what in ops: annotations, promotions, rollbacks, publications."""

    __tablename__ = "ops_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
