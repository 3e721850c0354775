"""The Rasa input channel the gateway talks to (runs inside Rasa, Python 3.10).

Like Rasa's REST channel it takes one customer message and returns the bot's messages, but it
also returns what the bot understood in that turn (intent ranking, entities, actions run, slots,
active form), so the gateway can store it without a second request. It also keeps the
conversation's ``language`` slot in step with the language the gateway detected.

Route: POST /webhooks/gateway/webhook   (Authorization: Bearer <GATEWAY_CHANNEL_TOKEN>)
  {"sender": str, "message": str, "message_id"?: str,
   "metadata": {"language": "en|zh|ru", "verified_username"?: str, ...}}
→ {"messages": [...], "turn": {"intent": ..., "intent_ranking": [...], "entities": [...],
   "actions": [...], "slots": {...}, "active_loop": str|null}, "replayed": bool}

Only the gateway may call it: the metadata carries identities the gateway vouches for (a signed-in
widget customer), so a caller without the token (compared in constant time; none configured →
every call refused) gets 401 and nothing reaches the tracker.

Exactly once: the gateway sends its stored message's id. If the tracker already holds a user
message with that id (Rasa answered, but the gateway never got the answer: a timeout, a crash, a
lost connection), the turn is not run again; the bot messages that followed it are returned as
they were ("replayed": true), so no action runs twice.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

LANGUAGES = ("en", "zh", "ru")
TOKEN_ENV = "GATEWAY_CHANNEL_TOKEN"
# One request of a message that asked for several things, with the task the gateway read its parts as
# (conversations/requests.py, metadata key ``planned_task``): read on its own, the request may parse
# as a bare detail ("帮我看下订单7367089080的情况 a@b.co" → inform), and the policy then guesses a task.
# The task is taken only when the NLU found none; entities are always the NLU's own.
TASK_KEY = "planned_task"
PLANNED_TASKS = frozenset({
    "check_order_status", "track_shipment", "request_refund", "refund_status", "return_item", "cancel_order",
    "change_shipping_address", "reset_password",
})
NO_TASK = frozenset({None, "inform", "nlu_fallback", "out_of_scope", "ask_question"})
UNSURE_TASK = 0.5  # conversations/requests.py MIN_CONFIDENCE: below it a task is not split off either


# Asked why ("what's the reason for the refund?"), a statement is the reason, whatever it is about: the
# classifier read "брак, не работает молния" and "條裙啲線甩晒" as out of scope, the form said it could not
# help and asked again. A question stays a question (the help centre may answer it on the side).
REASON_STEPS = {"refund_form": "refund_reason", "return_form": "return_reason"}
UNPLACED = frozenset({"out_of_scope", "nlu_fallback"})
QUESTION = re.compile(r"[?？]|吗|嗎|呢\s*$|怎么|怎麼|多久|幾耐|几耐|点解|點解|\b(?:how|what|when|why|can|could|do|does|is|are)\b"
                      r"|(?:^|\s)(?:как|что|когда|почему|зачем|сколько|можно|ли)(?=\s|$)", re.IGNORECASE)


def _as_intent(parse_data: dict[str, Any], intent: str) -> dict[str, Any]:
    ranking = [r for r in parse_data.get("intent_ranking") or [] if r.get("name") != intent]
    return {**parse_data, "intent": {"name": intent, "confidence": 1.0},
            "intent_ranking": [{"name": intent, "confidence": 1.0}, *ranking]}


def with_planned_task(parse_data: dict[str, Any], task: Any) -> dict[str, Any] | None:
    """The parse with the planned task as its intent, when the NLU read no task, or another task it
    is unsure of (below ``UNSURE_TASK``: "что там с заказом …, ещё не отправили?" read as an address
    change at 0.36); else None."""
    intent = (parse_data.get("intent") or {}).get("name")
    confidence = float((parse_data.get("intent") or {}).get("confidence") or 0.0)
    unsure = intent in PLANNED_TASKS and intent != task and confidence < UNSURE_TASK
    if task not in PLANNED_TASKS or (intent not in NO_TASK and not unsure) or str(parse_data.get("text") or "").startswith("/"):
        return None
    return _as_intent(parse_data, task)


def as_the_reason(parse_data: dict[str, Any], form: str | None, requested: Any) -> dict[str, Any] | None:
    """A statement the NLU could not place, typed when a form asked for a reason: an answer (``inform``)."""
    text = str(parse_data.get("text") or "")
    intent = (parse_data.get("intent") or {}).get("name")
    if form not in REASON_STEPS or requested != REASON_STEPS[form] or intent not in UNPLACED:
        return None
    return None if text.startswith("/") or QUESTION.search(text) else _as_intent(parse_data, "inform")


def authorized(header: str | None, expected: str | None = None) -> bool:
    """``Authorization: Bearer <token>`` against GATEWAY_CHANNEL_TOKEN; no token configured → False."""
    expected = os.environ.get(TOKEN_ENV, "") if expected is None else expected
    if not expected or not header or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), expected.encode())


def replay(tracker: DialogueStateTracker, message_id: str) -> list[dict[str, Any]] | None:
    """The bot messages that answered the user message ``message_id``; None if it is not in the tracker."""
    found = False
    messages: list[dict[str, Any]] = []
    for event in tracker.events:
        if isinstance(event, UserUttered):
            if found:
                break
            found = event.message_id == message_id
        elif found and isinstance(event, BotUttered):
            message: dict[str, Any] = {"recipient_id": tracker.sender_id}
            if event.text:
                message["text"] = event.text
            data = event.data or {}
            for key in ("buttons", "image", "attachment", "custom", "elements", "quick_replies"):
                if data.get(key):
                    message[key] = data[key]
            messages.append(message)
    return messages if found else None


def summarise_turn(tracker: DialogueStateTracker) -> dict[str, Any]:
    """What happened since the customer's last message."""
    actions: list[str] = []
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            break
        if isinstance(event, ActionExecuted) and event.action_name and event.action_name != "action_listen":
            actions.append(event.action_name)
    parse = tracker.latest_message.parse_data if tracker.latest_message else {}
    return {
        "intent": (parse.get("intent") or {}),
        "intent_ranking": list(parse.get("intent_ranking") or [])[:5],
        "entities": [
            {k: e.get(k) for k in ("entity", "value", "start", "end", "extractor", "confidence_entity")}
            for e in parse.get("entities") or []
        ],
        "actions": list(reversed(actions)),
        "slots": tracker.current_slot_values(),
        "active_loop": tracker.active_loop_name,
    }


class GatewayInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return "gateway"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("gateway_webhook", __name__)

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not authorized(request.headers.get("authorization")):
                return response.json({"error": "the gateway channel needs the gateway's bearer token"}, status=401)
            try:
                body = request.json or {}
            except Exception:  # sanic raises on a body that is not JSON
                return response.json({"error": "the body must be a JSON object"}, status=400)
            if not isinstance(body, dict):
                return response.json({"error": "the body must be a JSON object"}, status=400)
            sender, text = body.get("sender"), body.get("message")
            if not isinstance(sender, str) or not isinstance(text, str):
                return response.json({"error": "sender and message are required strings"}, status=400)
            message_id = body.get("message_id")
            if message_id is not None and not isinstance(message_id, str):
                return response.json({"error": "message_id must be a string"}, status=400)
            metadata = body.get("metadata") or {}
            if not isinstance(metadata, dict):
                return response.json({"error": "metadata must be an object"}, status=400)
            language = metadata.get("language")
            agent = request.app.ctx.agent
            processor = agent.processor
            collector = CollectingOutputChannel()
            message = UserMessage(
                text, collector, sender, input_channel=self.name(), metadata=metadata, message_id=message_id
            )
            # Agent.handle_message's steps, keeping the tracker in hand: the turn summary and the
            # language slot then cost no extra tracker-store round trips (one load, one save,
            # exactly like Rasa's own REST channel).
            async with agent.lock_store.lock(sender):
                # processor.log_message's two steps, with the replay check between them (one load).
                tracker = await processor.fetch_tracker_and_update_session(sender, collector, metadata)
                answered = replay(tracker, message_id) if message_id else None
                if answered is not None:
                    return response.json({"messages": answered, "turn": summarise_turn(tracker), "replayed": True})
                if metadata.get(TASK_KEY) or tracker.active_loop_name in REASON_STEPS:
                    parsed = await processor.parse_message(message, tracker)
                    message.parse_data = (with_planned_task(parsed, metadata.get(TASK_KEY))
                                          or as_the_reason(parsed, tracker.active_loop_name, tracker.get_slot("requested_slot"))
                                          or parsed)
                await processor._handle_message_with_tracker(message, tracker)
                if language in LANGUAGES and tracker.get_slot("language") != language:
                    tracker.update(SlotSet("language", language))
                # A customer the gateway verified (the widget's signed user id) skips identity
                # checks for their own orders. Set once, while no identity is known, so that a
                # later verification for someone else's order (forms.py) is not overwritten.
                verified_username = metadata.get("verified_username")
                if isinstance(verified_username, str) and verified_username and not tracker.get_slot("verified_username"):
                    tracker.update(SlotSet("verified", True))
                    tracker.update(SlotSet("verified_username", verified_username))
                tracker = await processor.run_action_extract_slots(collector, tracker)
                await processor._run_prediction_loop(collector, tracker)
                await processor.run_anonymization_pipeline(tracker)
                await processor.save_tracker(tracker)
            turn = summarise_turn(tracker)
            return response.json({"messages": collector.messages, "turn": turn, "replayed": False})

        return bp
