"""KB drafts from handoffs: when an agent answered what the bot could not, propose an article.

A draft is the customer's question and the agent's replies on a resolved ticket, both redacted
(``[EMAIL]``-style masks make what must not be published obvious to the editor). An ops user edits
it and publishes: the article is upserted into the live ``KnowledgeBase`` (a new index version; the
bot answers from it on the next question) and the draft records that version. Publishing refuses a
text that still holds a redaction mark or in which the patterns still find personal data.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api_errors import ApiError
from conversations.models import KbAnswer, Message
from ops import audit
from ops.inbox import last_question
from ops.models import KbDraft
from ops.redaction import Redactor
from storage.db import get_or_raise, transaction

ARTICLE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,100}$")
DEFAULT_URL = "https://help.demo-store.example/{language}/articles/{id}"


class DraftError(ApiError):
    """A refused draft operation; its ``status`` is the HTTP status the API answers."""


def _now() -> datetime:
    return datetime.now(UTC)


def draft_view(d: KbDraft) -> dict[str, Any]:
    return {
        "id": d.id, "ticket_id": d.ticket_id, "language": d.language, "title": d.title, "question": d.question,
        "answer": d.answer, "article_id": d.article_id, "status": d.status, "kb_version": d.kb_version,
        "updated_by": d.updated_by, "created_at": d.created_at.isoformat(), "updated_at": d.updated_at.isoformat(),
    }  # fmt: skip


class KbDrafts:
    def __init__(self, sessions: sessionmaker[Session], redactor: Redactor, url_template: str = DEFAULT_URL) -> None:
        self._sessions = sessions
        self.redactor = redactor
        self.url_template = url_template

    def propose(self) -> int:
        """Create a draft for every resolved ticket with an agent answer that has none yet."""
        try:
            from handoff.models import Ticket
        except ImportError:
            return 0
        created = 0
        with transaction(self._sessions) as db:
            done = set(db.scalars(select(KbDraft.ticket_id).where(KbDraft.ticket_id.is_not(None))))
            for ticket in db.scalars(select(Ticket).where(Ticket.status == "resolved").order_by(Ticket.id)):
                if ticket.id in done or self._kb_helped(db, ticket.sender_id, ticket.created_at):
                    continue
                found = last_question(db, ticket.conversation_id, ticket.created_at)
                answers = [
                    m.text for m in db.scalars(
                        select(Message).where(Message.conversation_id == ticket.conversation_id, Message.type == "agent",
                                              Message.direction == "out", Message.created_at >= ticket.created_at)
                        .order_by(Message.id)
                    ) if m.text.strip()
                ]  # fmt: skip
                if found is None or not answers:
                    continue
                question = self.redactor.redact_text(found[0].text, ticket.language)
                answer = "\n\n".join(self.redactor.redact_text(a, ticket.language) for a in answers)
                title = question if len(question) <= 120 else question[:117].rstrip() + "…"
                now = _now()
                db.add(KbDraft(ticket_id=ticket.id, language=ticket.language, title=title, question=question, answer=answer,
                               article_id=f"faq-ticket-{ticket.id}", status="draft", created_at=now, updated_at=now))
                created += 1
        return created

    @staticmethod
    def _kb_helped(db: Session, sender_id: str, before: datetime) -> bool:
        """The KB did answer (and was not marked unhelpful) in the hour before the handoff."""
        since = before - timedelta(hours=1)
        row = db.scalar(
            select(KbAnswer.id).where(KbAnswer.sender_id == sender_id, KbAnswer.outcome == "answered",
                                      KbAnswer.helpful.is_(True), KbAnswer.created_at >= since,
                                      KbAnswer.created_at <= before).limit(1)
        )  # fmt: skip
        return row is not None

    def list(self, status: str | None = "draft") -> list[dict[str, Any]]:
        with self._sessions() as db:
            query = select(KbDraft).order_by(KbDraft.id.desc())
            if status and status != "all":
                query = query.where(KbDraft.status == status)
            return [draft_view(d) for d in db.scalars(query)]

    def get(self, draft_id: int) -> dict[str, Any]:
        with self._sessions() as db:
            return draft_view(self._draft(db, draft_id))

    def update(self, draft_id: int, actor: str, **fields: Any) -> dict[str, Any]:
        allowed = {"title", "question", "answer", "article_id", "language"}
        unknown = set(fields) - allowed
        if unknown:
            raise DraftError(422, f"cannot change {', '.join(sorted(unknown))}")
        if "article_id" in fields and fields["article_id"] is not None and not ARTICLE_ID.match(fields["article_id"]):
            raise DraftError(422, "article_id: lower-case letters, digits and dashes (3-101 characters)")
        if "language" in fields and fields["language"] not in ("en", "zh", "ru"):
            raise DraftError(422, "language must be en, zh or ru")
        with transaction(self._sessions) as db:
            d = self._draft(db, draft_id)
            if d.status != "draft":
                raise DraftError(409, f"draft {draft_id} is {d.status}")
            changed = []
            for k, v in fields.items():
                if v is not None:
                    setattr(d, k, v.strip() if isinstance(v, str) else v)
                    changed.append(k)
            d.updated_by, d.updated_at = actor, _now()
            audit.add(db, actor, "edit_draft", f"draft:{d.id}", {"fields": sorted(changed)})
            return draft_view(d)

    def discard(self, draft_id: int, actor: str) -> dict[str, Any]:
        with transaction(self._sessions) as db:
            d = self._draft(db, draft_id)
            if d.status != "draft":
                raise DraftError(409, f"draft {draft_id} is {d.status}")
            d.status, d.updated_by, d.updated_at = "discarded", actor, _now()
            audit.add(db, actor, "discard_draft", f"draft:{d.id}")
            return draft_view(d)

    def publish(self, draft_id: int, actor: str, kb: Any) -> dict[str, Any]:
        """Upsert the draft as an article into ``kb`` (a ``kb_index.KnowledgeBase``)."""
        from kb_index import Article, KBError

        d = self.get(draft_id)
        if d["status"] != "draft":
            raise DraftError(409, f"draft {draft_id} is {d['status']}")
        if not d["title"].strip() or not d["answer"].strip():
            raise DraftError(422, "a title and an answer are needed to publish")
        for part in ("title", "question", "answer"):
            # Names are left out of this re-check: spaCy's small model takes title-cased headings
            # ("Gift wrapping") for names; names in the original text were masked when the draft was made.
            found = [s for s in self.redactor.find(d[part].replace("[", " ").replace("]", " "), d["language"]) if s.type != "person"]
            if found:
                kinds = ", ".join(sorted({s.type for s in found}))
                raise DraftError(422, f"the {part} still contains personal data ({kinds}); edit it before publishing")
            if re.search(r"\[(EMAIL|PHONE|CARD|ADDRESS|ORDER_ID|PERSON)\]", d[part]):
                raise DraftError(422, f"the {part} still has a redaction mark such as [EMAIL]; rewrite that part")
        article_id = d["article_id"] or f"faq-draft-{d['id']}"
        text = f"# {d['title']}\n\n{d['question']}\n\n{d['answer']}" if d["question"] else f"# {d['title']}\n\n{d['answer']}"
        article = Article(id=article_id, language=d["language"], title=d["title"],
                          url=self.url_template.format(language=d["language"], id=article_id), text=text,
                          tags=["faq", "from-handoff"], source_path=f"ops:draft:{d['id']}")
        try:
            report = kb.upsert([article])
        except KBError as err:
            raise DraftError(422, str(err)) from err
        with transaction(self._sessions) as db:
            row = self._draft(db, draft_id)
            row.status, row.kb_version, row.article_id = "published", report.version, article_id
            row.updated_by, row.updated_at = actor, _now()
            audit.add(db, actor, "publish_draft", f"draft:{row.id}", {"article_id": article_id, "kb_version": report.version})
            return draft_view(row)

    @staticmethod
    def _draft(db: Session, draft_id: int) -> KbDraft:
        return get_or_raise(db, KbDraft, draft_id, DraftError(404, f"no KB draft {draft_id}"))
