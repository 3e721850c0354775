"""The Rasa input channel the gateway talks to (runs inside Rasa, Python 3.10).

Like Rasa's REST channel it takes one customer message and returns the bot's messages, but it
also returns what the bot understood in that turn (intent ranking, entities, actions run, slots,
active form), so the gateway can store it without a second request. It also keeps the
conversation's ``language`` slot in step with the language the gateway detected.

Route: POST /webhooks/gateway/webhook
  {"sender": str, "message": str, "metadata": {"language": "en|zh|ru", "verified_username"?: str, ...}}
→ {"messages": [...], "turn": {"intent": ..., "intent_ranking": [...], "entities": [...],
   "actions": [...], "slots": {...}, "active_loop": str|null}}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

LANGUAGES = ("en", "zh", "ru")


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
            body = request.json or {}
            sender, text = body.get("sender"), body.get("message")
            if not isinstance(sender, str) or not isinstance(text, str):
                return response.json({"error": "sender and message are required strings"}, status=400)
            metadata = body.get("metadata") or {}
            language = metadata.get("language")
            agent = request.app.ctx.agent
            processor = agent.processor
            collector = CollectingOutputChannel()
            message = UserMessage(text, collector, sender, input_channel=self.name(), metadata=metadata)
            # Agent.handle_message's steps, keeping the tracker in hand: the turn summary and the
            # language slot then cost no extra tracker-store round trips (one load, one save,
            # exactly like Rasa's own REST channel).
            async with agent.lock_store.lock(sender):
                tracker = await processor.log_message(message, should_save_tracker=False)
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
            return response.json({"messages": collector.messages, "turn": turn})

        return bp
