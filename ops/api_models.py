"""The bodies the support-ops API answers with (``ops/api.py``; ``/docs`` shows them).

Fields are in the order the services build them (``ops/inbox.py``, ``ops/grouping.py``,
``ops/drafts.py``, ``ops/training.py``, ``ops/registry.py``, ``ops/kb_versions.py``,
``ops/analytics.py``), so the JSON is what it was before the models existed. Free-form parts (an
item's ``detail``, a gate report, analytics rows whose metrics are documented in README
"Analytics definitions") stay objects.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class InboxItem(BaseModel):
    """One message the bot did not handle well, redacted (``text``: surrogates, ``masked``: [TYPE] marks)."""

    id: int
    source: str
    status: str
    language: str
    channel: str
    intent: str | None
    confidence: float | None
    text: str
    masked: str
    pii: list[str]
    detail: dict[str, Any]
    resolution: dict[str, Any]
    resolved_by: str | None
    occurred_at: str
    sender_id: str
    conversation_id: int | None
    message_id: int | None


class Guess(BaseModel):
    intent: str
    score: float  # mean confidence over the group's items
    best_for: int  # items that had it as their best guess


class ClosestArticle(BaseModel):
    article_id: str
    title: str
    language: str
    score: float


class Cluster(BaseModel):
    """A group of open items alike in meaning, with the bot's guesses and the closest KB article."""

    id: int
    size: int
    language: str
    kind: str
    unreadable: bool
    label: str
    samples: list[str]
    guesses: list[Guess]
    kb_article: ClosestArticle | None
    kb_answered: dict[str, int]
    languages: dict[str, int]
    sources: dict[str, int]
    intents: dict[str, int]
    last_at: str
    items: list[InboxItem]


class Inbox(BaseModel):
    clusters: list[Cluster]
    items: int


class Collected(BaseModel):
    added: dict[str, int]
    total: int


class Items(BaseModel):
    items: list[InboxItem]


class Assigned(Items):
    note: str | None


class Intents(BaseModel):
    intents: list[str]
    domain_intents: list[str]
    entities: list[str]


class Span(BaseModel):
    start: int
    end: int
    type: str


class Redacted(BaseModel):
    text: str
    spans: list[Span]


class Draft(BaseModel):
    """A help-centre article drafted from a resolved ticket's answer."""

    id: int
    ticket_id: int | None
    language: str
    title: str
    question: str
    answer: str
    article_id: str | None
    status: str
    kb_version: str | None
    updated_by: str | None
    created_at: str
    updated_at: str


class Proposed(BaseModel):
    created: int


class Job(BaseModel):
    """A training job: stage and progress while it runs, the gate's report when done."""

    id: int
    status: str
    stage: str
    progress: float
    started_by: str
    auto_promote: bool
    model_id: str | None
    baseline_id: str | None
    report: dict[str, Any]
    error: str | None
    log_tail: str
    created_at: str
    started_at: str | None
    finished_at: str | None


class StoryCounts(BaseModel):
    total: int | None
    failed: int | None


class Model(BaseModel):
    id: str
    path: str
    status: str
    data_hash: str | None
    trained_by: str | None
    created_at: str
    promoted_at: str | None
    training_seconds: float | None
    job_id: int | None
    test_hash: str | None
    accuracy: dict[str, float | None]
    stories: StoryCounts | None
    file_present: bool


class ModelDetail(Model):
    config: str
    metrics: dict[str, Any] | None


class Promoted(BaseModel):
    active: str
    previous: str | None
    action: str


class KbVersion(BaseModel):
    version: str
    current: bool
    articles: int | None
    chunks: int | None
    languages: list[str] | None
    embedder: str | None
    content_hash: str | None
    updated_at: str | None
    on_disk: bool


class KbRolledBack(BaseModel):
    current: str
    previous: str | None


class Analytics(BaseModel):
    """Rows per group and the totals; each metric is defined in README "Analytics definitions"."""

    group_by: list[str]
    since: str | None
    until: str | None
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    definitions: str


class AuditRow(BaseModel):
    id: int
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    created_at: str
