"""Answers from the help centre: ``ask_question``, messages the NLU cannot place, and feedback.

The decision (answer / clarify / decline) is ``kb_index.answering.decide``, the same function the
quality benchmark measures; this module only turns it into messages and records what was shown.
Sentences are composed here rather than in domain.yml because every message carries computed
parts (quoted text, sources, buttons built from search results).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from anyio import to_thread
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import select

from bot.actions import runtime
from bot.actions.change_of_mind import TASK_FORMS, states_the_reason
from conversations.labels import INTENT, label, language
from conversations.models import KbAnswer
from conversations.requests import lean_task
from kb_index.answering import KbDecision
from storage.db import transaction

NONE_OF_THESE = "none"
QUERY_KEY = "kb_query"  # conversations/topic.py: a message the gateway sent as a question, its text
FALLBACK_INTENT = "nlu_fallback"
# Intents worth offering back as "did you mean" when the NLU was unsure: the tasks the bot performs.
TASK_INTENTS = frozenset(
    {
        "check_order_status",
        "track_shipment",
        "request_refund",
        "refund_status",
        "return_item",
        "cancel_order",
        "change_shipping_address",
        "reset_password",
    }
)
GUESS_MIN_CONFIDENCE = 0.2
# A message that names an order but no task ("where is 5120648393", "its 5120648393 jwu@x.com
# wheres my order"): the task the ranking leans to, from this confidence, else the order's status.
ORDER_TASK_INTENTS = frozenset({FALLBACK_INTENT, "ask_question", "out_of_scope", "inform"})

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "helped": "That helped",
        "not_helped": "Not what I need",
        "other_language": "(This article is only available in English.)",
        "clarify": "I'm not sure I understood. Is your question about one of these?",
        "none_of_these": "None of these",
        "declined": "I couldn't find an answer to that in our help centre.",
        "offer_person": "Would you like me to connect you with a person from our support team?",
        "talk_to_person": "Talk to a person",
        "no_thanks": "No, thanks",
        "rephrase": "Could you say it in other words? Or I can connect you with a person.",
        "glad": "Glad it helped! Anything else I can do for you?",
        "sorry": "Sorry that didn't answer it.",
        "maybe_these": "Maybe one of these is closer?",
        "unavailable": "Our help centre search is starting up. Please ask again in a moment.",
    },
    "zh": {
        "helped": "有帮助",
        "not_helped": "不是我要的",
        "other_language": "（这篇文章目前只有其他语言版本。）",
        "clarify": "我不太确定您的意思。您想问的是下面哪一个？",
        "none_of_these": "都不是",
        "declined": "抱歉，帮助中心里没有找到这个问题的答案。",
        "offer_person": "需要为您转接人工客服吗？",
        "talk_to_person": "转人工客服",
        "no_thanks": "不用了",
        "rephrase": "能换个说法再问一次吗？也可以为您转接人工客服。",
        "glad": "很高兴能帮到您！还有什么可以帮您的吗？",
        "sorry": "抱歉，这个回答没有解决您的问题。",
        "maybe_these": "下面这些会不会更接近？",
        "unavailable": "帮助中心搜索正在启动，请稍后再问。",
    },
    "ru": {
        "helped": "Помогло",
        "not_helped": "Не то, что нужно",
        "other_language": "(Эта статья пока есть только на другом языке.)",
        "clarify": "Не уверен, что правильно понял. Ваш вопрос об одном из этого?",
        "none_of_these": "Ничего из этого",
        "declined": "В справочном центре не нашлось ответа на этот вопрос.",
        "offer_person": "Соединить вас с сотрудником поддержки?",
        "talk_to_person": "Связаться с оператором",
        "no_thanks": "Нет, спасибо",
        "rephrase": "Можете сформулировать иначе? Или я соединю вас с сотрудником поддержки.",
        "glad": "Рад, что помогло! Могу ещё чем-нибудь помочь?",
        "sorry": "Жаль, что это не помогло.",
        "maybe_these": "Может быть, ближе что-то из этого?",
        "unavailable": "Поиск по справочному центру запускается. Спросите, пожалуйста, ещё раз через минуту.",
    },
}


def text(key: str, lang: str) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key]


def payload(intent: str, **entities: str) -> str:
    """A button payload in Rasa's ``/intent{json}`` form, which skips the NLU."""
    return f"/{intent}{json.dumps(entities, ensure_ascii=False)}" if entities else f"/{intent}"


def person_buttons(lang: str) -> list[dict[str, str]]:
    return [
        {"title": text("talk_to_person", lang), "payload": payload("human_handoff")},
        {"title": text("no_thanks", lang), "payload": payload("deny")},
    ]


def guessed_task(tracker: Tracker) -> str | None:
    """The task the NLU half-recognised in a message it could not place, if any."""
    latest = tracker.latest_message or {}
    if (latest.get("intent") or {}).get("name") != FALLBACK_INTENT:
        return None
    for candidate in latest.get("intent_ranking") or []:
        name = candidate.get("name")
        if name and name != FALLBACK_INTENT:
            confident = float(candidate.get("confidence") or 0) >= GUESS_MIN_CONFIDENCE
            return str(name) if name in TASK_INTENTS and confident else None
    return None


def _entity(tracker: Tracker, name: str) -> str | None:
    value = next(tracker.get_latest_entity_values(name), None)
    return str(value) if value is not None else None


def _record(sender_id: str, decision: KbDecision) -> int | None:
    """Write what was shown (ops reports, feedback, the handoff context) and return its id."""
    sessions = runtime.services().sessions
    if sessions is None:
        return None
    chunk = decision.chunk
    with transaction(sessions) as db:
        row = KbAnswer(
            sender_id=sender_id,
            query=decision.query,
            language=decision.language,
            outcome=decision.outcome,
            article_id=chunk.article_id if chunk else None,
            article_language=chunk.language if chunk else None,
            score=decision.confidence,
            candidates=[
                {"article_id": c.article_id, "language": c.language, "title": c.title, "confidence": c.confidence}
                for c in decision.candidates
            ],
            created_at=datetime.now(UTC),
        )
        db.add(row)
        db.flush()
        return row.id


def question_text(tracker: Tracker) -> str:
    """The question: the message's text, or the text the gateway sent as a question (``/ask_question``
    for "tracking says delivered but nothing came", conversations/topic.py)."""
    message = tracker.latest_message or {}
    routed = (message.get("metadata") or {}).get(QUERY_KEY)
    if isinstance(routed, str) and routed:
        return routed
    text = message.get("text") or ""
    return "" if text.startswith("/") else text  # a button or the gateway's "/out_of_scope": nothing to search


class ActionAnswerQuestion(Action):
    """Search the help centre and answer, ask which article is meant, or offer a person."""

    def name(self) -> str:
        return "action_answer_question"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if states_the_reason(tracker):  # the form that asked why takes the answer as the reason
            return []
        lang = language(tracker)
        answerer = runtime.services().knowledge
        if answerer is None:
            dispatcher.utter_message(text=text("unavailable", lang))
            return [SlotSet("kb_outcome", "declined")]
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        picked = _entity(tracker, "kb_article") if intent == "kb_pick" else None
        if picked == NONE_OF_THESE:
            return self._offer_person(dispatcher, lang, text("declined", lang))
        handoff = runtime.services().handoff
        if intent != "kb_pick" and handoff is not None and handoff.policy.asks_for_person(question_text(tracker)):
            return [FollowupAction("action_handoff_request")]  # "thanks. I also want to talk to someone about …"
        if intent == "out_of_scope" and not question_text(tracker):  # another shop's order (conversations/topic.py)
            dispatcher.utter_message(response="utter_out_of_scope")
            return [SlotSet("kb_outcome", "declined")]
        order_task = self._order_task(tracker, intent)
        if order_task and intent in (FALLBACK_INTENT, "inform"):  # "hi its 5120648393 wheres my order": act on the order
            return [FollowupAction(order_task)]
        if picked:
            query = tracker.get_slot("kb_query") or ""
            decision = await to_thread.run_sync(answerer.decide_for_article, query, lang, picked)
        else:
            query = question_text(tracker)
            decision = await to_thread.run_sync(answerer.decide, query, lang)
        answer_id = await to_thread.run_sync(_record, tracker.sender_id, decision)
        if decision.outcome == "answered":
            return self._answer(dispatcher, decision, answer_id, lang)
        if order_task and not picked:  # no article answers it, and it names an order: look at that order
            return [SlotSet("kb_outcome", None), FollowupAction(order_task)]
        if tracker.get_slot("kb_clarified") or decision.outcome == "declined" and picked:
            # The clarifying question did not help either: a person, not another guess.
            return self._offer_person(dispatcher, lang, text("declined", lang))
        task = guessed_task(tracker)
        if decision.outcome == "clarified" or task:
            buttons = [
                {"title": c.title, "payload": payload("kb_pick", kb_article=c.article_id)} for c in decision.candidates
            ]
            if task:  # the customer may have meant a task rather than a question
                buttons.insert(0, {"title": label(INTENT, task, lang).capitalize(), "payload": payload(task)})
            buttons.append(
                {"title": text("none_of_these", lang), "payload": payload("kb_pick", kb_article=NONE_OF_THESE)}
            )
            dispatcher.utter_message(text=text("clarify", lang), buttons=buttons)
            return [SlotSet("kb_outcome", "clarified"), SlotSet("kb_query", query), SlotSet("kb_clarified", True)]
        if intent == "out_of_scope":  # clearly not a store question: say what the bot can do instead
            dispatcher.utter_message(response="utter_out_of_scope")
            return [SlotSet("kb_outcome", "declined"), SlotSet("kb_query", query), SlotSet("kb_clarified", True)]
        dispatcher.utter_message(
            text=f"{text('declined', lang)} {text('rephrase', lang)}", buttons=person_buttons(lang)
        )
        return [SlotSet("kb_outcome", "declined"), SlotSet("kb_query", query), SlotSet("kb_clarified", True)]

    @staticmethod
    def _order_task(tracker: Tracker, intent: str | None) -> str | None:
        """The form to start for a message that names an order but that the NLU could not place:
        the task it half-recognised, else the order's status (entities first)."""
        if intent not in ORDER_TASK_INTENTS or _entity(tracker, "order_id") is None:
            return None
        latest = tracker.latest_message or {}
        return TASK_FORMS[lean_task(latest.get("intent_ranking") or [], str(latest.get("text") or ""))]

    @staticmethod
    def _answer(
        dispatcher: CollectingDispatcher, decision: KbDecision, answer_id: int | None, lang: str
    ) -> list[EventType]:
        assert decision.chunk is not None
        chunk = decision.chunk
        body = decision.text + (f"\n{text('other_language', lang)}" if decision.other_language else "")
        ref = str(answer_id or "")
        dispatcher.utter_message(
            json_message={
                "type": "kb_answer",
                "text": body,
                "sources": [
                    {"title": chunk.title, "url": chunk.url, "article_id": chunk.article_id, "language": chunk.language}
                ],
                "buttons": [
                    {
                        "title": text("helped", lang),
                        "payload": payload("kb_feedback", kb_helpful="yes", kb_answer_id=ref),
                    },
                    {
                        "title": text("not_helped", lang),
                        "payload": payload("kb_feedback", kb_helpful="no", kb_answer_id=ref),
                    },
                ],
            }
        )
        return [SlotSet("kb_outcome", "answered"), SlotSet("kb_query", decision.query), SlotSet("kb_clarified", False)]

    @staticmethod
    def _offer_person(dispatcher: CollectingDispatcher, lang: str, lead: str) -> list[EventType]:
        dispatcher.utter_message(text=f"{lead} {text('offer_person', lang)}", buttons=person_buttons(lang))
        return [SlotSet("kb_outcome", "declined"), SlotSet("kb_clarified", False)]


def answer_inline(tracker: Tracker, dispatcher: CollectingDispatcher) -> list[EventType] | None:
    """A question asked in the middle of a form, answered from the help centre when an article
    answers it (the form then asks its own question again); None when none does."""
    answerer = runtime.services().knowledge
    if answerer is None:
        return None
    lang = language(tracker)
    decision = answerer.decide(tracker.latest_message.get("text") or "", lang)
    if decision.outcome != "answered":
        return None
    answer_id = _record(tracker.sender_id, decision)
    return ActionAnswerQuestion._answer(dispatcher, decision, answer_id, lang)


def _store_feedback(sender_id: str, answer_id: str | None, helpful: bool) -> KbAnswer | None:
    """Mark the customer's verdict; only on an answer shown in this customer's own conversation."""
    sessions = runtime.services().sessions
    if sessions is None:
        return None
    with transaction(sessions) as db:
        query = select(KbAnswer).where(KbAnswer.sender_id == sender_id)
        if answer_id and answer_id.isdigit():
            query = query.where(KbAnswer.id == int(answer_id))
        row = db.scalar(query.order_by(KbAnswer.id.desc()).limit(1))
        if row is None:
            return None
        row.helpful, row.feedback_at = helpful, datetime.now(UTC)
        db.flush()
        db.expunge(row)
        return row


class ActionKbFeedback(Action):
    """ "That helped" / "Not what I need": store it; on "not", offer the other close articles or a person."""

    def name(self) -> str:
        return "action_kb_feedback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        lang = language(tracker)
        helpful = (_entity(tracker, "kb_helpful") or "").lower() in {"yes", "true", "1"}
        row = await to_thread.run_sync(_store_feedback, tracker.sender_id, _entity(tracker, "kb_answer_id"), helpful)
        if helpful:
            dispatcher.utter_message(text=text("glad", lang))
            return [SlotSet("kb_outcome", "answered")]
        others = [
            c for c in (row.candidates if row else []) if c.get("article_id") != (row.article_id if row else None)
        ]
        if others:
            buttons = [
                {"title": str(c["title"]), "payload": payload("kb_pick", kb_article=str(c["article_id"]))}
                for c in others[:3]
            ]
            buttons.append({"title": text("talk_to_person", lang), "payload": payload("human_handoff")})
            dispatcher.utter_message(text=f"{text('sorry', lang)} {text('maybe_these', lang)}", buttons=buttons)
            return [SlotSet("kb_outcome", "declined"), SlotSet("kb_clarified", True)]
        dispatcher.utter_message(
            text=f"{text('sorry', lang)} {text('offer_person', lang)}", buttons=person_buttons(lang)
        )
        return [SlotSet("kb_outcome", "declined"), SlotSet("kb_clarified", False)]
