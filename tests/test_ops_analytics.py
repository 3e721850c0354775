"""Analytics on a fixture of conversations, against values computed by hand from the definitions in
README "Analytics definitions" (ops/analytics.py). Real SQLite, every table written as the app does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from conversations.models import KbAnswer, Message
from handoff.models import Ticket
from ops.analytics import Analytics, AnalyticsConfig, csv_text, prometheus_text
from storage.db import make_engine, make_session_factory, transaction, upgrade
from tests.test_ops_fixtures import T0, Chat

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=T0.tzinfo)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('analytics') / 'a.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    _fixture(factory)
    yield factory
    engine.dispose()


def _fixture(db_: sessionmaker[Session]) -> None:
    """Six sessions; the comment on each says what the definitions make of it."""
    # s1 (web, en, 11-20): KB answer marked helpful → contained, confirmed; nobody comes back → durable.
    s1 = Chat(db_, "s1", start=T0)
    s1.say("where is my order", "check_order_status", 0.9)
    s1.say("what is the return window", "ask_question", 0.8)
    with transaction(db_) as db:
        db.add(KbAnswer(sender_id="s1", query="what is the return window", language="en", outcome="answered",
                        article_id="returns", helpful=True, candidates=[], created_at=s1.at, feedback_at=s1.at))
    # s2 (web, en, 11-20 10:00): no signal, customer left → assumed resolution; but the same customer
    # is back two days later → not durable.
    s2 = Chat(db_, "s2", start=T0 + timedelta(hours=1))
    s2.say("cancel my order", "cancel_order", 0.7)
    # s2's second session (11-22): ends on an NLU fallback → negative signal, contained, no resolution.
    s2.at = T0 + timedelta(days=2, hours=1)
    s2.say("hmm whatever", "nlu_fallback", 0.2)
    # s3 (telegram, ru, 11-20 11:00): handed off (explicit request), agent replies after 60 s, resolved
    # after 600 s, CSAT 5.
    s3 = Chat(db_, "s3", channel="telegram", language="ru", start=T0 + timedelta(hours=2))
    s3.say("позовите оператора", "human_handoff", 0.95)
    opened = s3.at
    with transaction(db_) as db:
        db.add(Ticket(conversation_id=s3.conv_id, sender_id="s3", channel="telegram", language="ru", status="resolved",
                      reason="explicit_request", topic="orders", queue="orders-ru", created_at=opened, queued_at=opened,
                      closed_at=opened + timedelta(seconds=600), csat_score=5, csat_at=opened + timedelta(seconds=700)))
        db.add(Message(conversation_id=s3.conv_id, direction="out", type="agent", text="Здравствуйте!", data={},
                       language="ru", channel="telegram", created_at=opened + timedelta(seconds=60)))
    # s4 (telegram, ru, 11-21): the KB declined → negative signal; contained, not resolved.
    s4 = Chat(db_, "s4", channel="telegram", language="ru", start=T0 + timedelta(days=1))
    s4.say("можно оплатить биткоином", "ask_question", 0.6)
    with transaction(db_) as db:
        db.add(KbAnswer(sender_id="s4", query="можно оплатить биткоином", language="ru", outcome="declined",
                        candidates=[], created_at=s4.at))
    # s5 (web, zh, 11-29 11:50): still going at NOW (less than 30 min since its last message).
    s5 = Chat(db_, "s5", language="zh", start=NOW - timedelta(minutes=11))
    s5.say("我的订单在哪", "check_order_status", 0.88)


@pytest.fixture(scope="module")
def analytics(sessions: sessionmaker[Session]) -> Analytics:
    return Analytics(sessions, AnalyticsConfig(session_gap=timedelta(minutes=30), durable_days=7))


def test_totals_match_the_hand_computed_values(analytics: Analytics) -> None:
    t = analytics.report(now=NOW)["total"]
    expected = {
        "sessions": 6, "ended_sessions": 5, "handed_off": 1, "contained": 5, "containment_rate": round(5 / 6, 4),
        "handoff_rate": round(1 / 6, 4), "confirmed_resolutions": 1, "assumed_resolutions": 1, "resolutions": 2,
        "deflection_rate": 0.4, "durable_judged": 2, "durable_resolutions": 1, "durable_resolution_rate": 0.5,
        "tickets": 1, "tickets_by_reason": {"explicit_request": 1}, "kb_replies": 2, "kb_answered": 1, "kb_declined": 1,
        "kb_answer_rate": 0.5, "kb_decline_rate": 0.5, "kb_feedback": 1, "kb_helpful": 1, "kb_helpfulness_rate": 1.0,
        "turns": 7, "csat_count": 1, "csat_mean": 5.0, "csat_satisfied_rate": 1.0,
        "first_agent_reply_s_median": 60.0, "resolution_s_median": 600.0,
    }  # fmt: skip
    assert {k: t[k] for k in expected} == expected
    assert t["intents"]["check_order_status"] == {"count": 2, "mean_confidence": round((0.9 + 0.88) / 2, 4)}
    assert t["handoff_rate_by_reason"] == {"explicit_request": round(1 / 6, 4)}


def test_split_by_day_language_and_channel(analytics: Analytics) -> None:
    rows = analytics.report(now=NOW)["rows"]
    by_key = {(r["day"], r["language"], r["channel"]): r for r in rows}
    web_en_20 = by_key[("2026-11-20", "en", "rest")]
    assert (web_en_20["sessions"], web_en_20["confirmed_resolutions"], web_en_20["assumed_resolutions"]) == (2, 1, 1)
    tg_ru_20 = by_key[("2026-11-20", "ru", "telegram")]
    assert (tg_ru_20["sessions"], tg_ru_20["handed_off"], tg_ru_20["tickets"], tg_ru_20["csat_mean"]) == (1, 1, 1, 5.0)
    assert by_key[("2026-11-21", "ru", "telegram")]["kb_decline_rate"] == 1.0
    assert by_key[("2026-11-29", "zh", "rest")]["ended_sessions"] == 0
    per_lang = {r["language"]: r for r in analytics.report(group_by=["language"], now=NOW)["rows"]}
    assert {k: v["sessions"] for k, v in per_lang.items()} == {"en": 3, "ru": 2, "zh": 1}


def test_date_range(analytics: Analytics) -> None:
    r = analytics.report(since=date(2026, 11, 21), until=date(2026, 11, 22), group_by=["day"], now=NOW)
    assert [(row["day"], row["sessions"]) for row in r["rows"]] == [("2026-11-21", 1), ("2026-11-22", 1)]
    assert r["total"]["tickets"] == 0


def test_unknown_dimension_is_refused(analytics: Analytics) -> None:
    with pytest.raises(ValueError, match="unknown dimension"):
        analytics.report(group_by=["week"])


def test_csv_and_prometheus(analytics: Analytics, tmp_path: Path) -> None:
    report = analytics.report(group_by=["language", "channel"], now=NOW)
    text = csv_text(report)
    lines = text.strip().splitlines()
    assert lines[0].startswith("language,channel,sessions,")
    assert lines[-1].startswith("TOTAL,TOTAL,6,5,")
    prom = prometheus_text(report).decode()
    assert 'supportbot_sessions{channel="telegram",language="ru"} 2.0' in prom
    assert 'supportbot_tickets_by_reason{channel="telegram",language="ru",reason="explicit_request"} 1.0' in prom
