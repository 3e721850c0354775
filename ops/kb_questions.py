"""Questions from the support ops tables, for the knowledge base answerer's question index.

- A published KB draft (``ops_kb_drafts``, status ``published``): the customer's question that the
  agent answered is a question its article answers.
- A review-inbox item marked as a knowledge gap (``ops_review_items``, status ``knowledge_gap``)
  whose resolution names the article that answers it: ``resolution.article_id``, or a note
  ``article: <id>`` (the inbox's "knowledge gap" action takes a free note). Items that name no
  article are gaps still to be written and teach nothing yet.

Only the redacted texts are read (the inbox and drafts never hold raw customer text).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from ops.models import KbDraft, ReviewItem

_NOTE = re.compile(r"(?:^|\s)article\s*[:=]\s*([A-Za-z0-9][A-Za-z0-9_.:-]{0,127})", re.IGNORECASE)


def gap_article(resolution: dict[str, Any] | None) -> str | None:
    """The article a knowledge-gap resolution names, if any."""
    if not isinstance(resolution, dict):
        return None
    aid = resolution.get("article_id")
    if isinstance(aid, str) and aid.strip():
        return aid.strip()
    m = _NOTE.search(str(resolution.get("note") or ""))
    return m.group(1) if m else None


def load_ops_questions(sessions: sessionmaker[Session]) -> dict[str, list[str]]:
    """``article id → questions`` from published drafts and resolved knowledge gaps; empty when
    the ops tables do not exist (a gateway without ops)."""
    out: dict[str, list[str]] = {}
    with sessions() as db:
        tables = set(inspect(db.get_bind()).get_table_names())
        if KbDraft.__tablename__ in tables:
            for article_id, question in db.execute(
                select(KbDraft.article_id, KbDraft.question).where(KbDraft.status == "published", KbDraft.article_id.is_not(None))
            ):
                if question and question.strip():
                    out.setdefault(article_id, []).append(question.strip())
        if ReviewItem.__tablename__ in tables:
            for text, resolution in db.execute(select(ReviewItem.text, ReviewItem.resolution).where(ReviewItem.status == "knowledge_gap")):
                aid = gap_article(resolution)
                if aid and text and text.strip():
                    out.setdefault(aid, []).append(text.strip())
    return out
