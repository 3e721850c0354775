"""A customer who takes a request back or asks for something else in the middle of a form.

Rasa maps the message to the requested slot before any validator runs, so "never mind, don't change
it, just cancel the order" would become the new address and "wait, actually do a return instead" the
refund reason. Every form validator asks this module first: a message whose intent is another task,
or that takes the request back, fills nothing; the form ends with nothing written, and another task
asked for is started next (``next_task``, followed up by the action that ends the form).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT

from conversations import confirm
from conversations.topic import REQUEST_WORDS, TOPICS, names_task

CONFIRM_SLOT = "confirm_write"
# The form each task intent starts.
TASK_FORMS: dict[str, str] = {
    "check_order_status": "order_status_form",
    "track_shipment": "tracking_form",
    "refund_status": "refund_status_form",
    "request_refund": "refund_form",
    "return_item": "return_form",
    "cancel_order": "cancel_form",
    "change_shipping_address": "address_form",
    "reset_password": "password_reset_form",
}
# Below this the intent is not trusted to override a slot answer (answers are often short and odd).
SWITCH_CONFIDENCE = 0.6
# A message that takes the current task back and names another one switches from this confidence.
RETRACT_SWITCH_CONFIDENCE = 0.4
# Under this the message must also name the task's subject to switch to it.
SURE_SWITCH_CONFIDENCE = 0.9
# How far down the NLU's ranking a task named in a taking-back message is looked for.
RANKING_DEPTH = 5
SAME_SUBJECT = frozenset({"refund_form", "refund_status_form"})
# The write forms' tasks as confirm.TASK_VERBS names them ("да, отменяйте": the task's own verb is a yes).
_TASK_OF = {"cancel_form": "cancel", "address_form": "address", "refund_form": "refund", "return_form": "return",
            "password_reset_form": "reset"}
_ORDER_ID = re.compile(r"(?<!\d)\d(?:[\s-]?\d){9}(?!\d)")
_QUESTION = re.compile(
    r"\?|？|^(?:(?:btw|by the way|also|oh|and|quick question)[,\s]+)?(?:how|what|when|why|which|is there|are there|do you|does)\b"
    r"|\b(?:how long|how much|how many)\b|сколько|через сколько|\bкогда\b|\bпочему\b|\bзачем\b|\bкак\b|多久|多长时间|"
    r"什么时候|为什么|怎么|吗$|呢$",
    re.IGNORECASE,
)
# A plain "no"/"stop" only ends the form at the steps that ask for the task's own data; at the order
# number and identity steps a "no" is answered by the form's own rules.
DATA_SLOTS = frozenset({"new_address", "refund_reason", "return_reason", "refund_method", CONFIRM_SLOT})
ENDING_INTENTS = frozenset({"stop", "deny"})
REASON_SLOTS = frozenset({"refund_reason", "return_reason"})
# The form reads a customer message only right after it (Rasa's own rule: listen, then slot mapping).
READING_ACTIONS = frozenset({"action_listen", "action_extract_slots"})


@dataclass(frozen=True)
class Turn:
    intent: str | None
    confidence: float
    text: str
    requested: str | None
    ranking: tuple[str, ...] = ()  # the NLU's intents, most likely first


def latest(tracker: Tracker) -> Turn:
    message = tracker.latest_message or {}
    intent = message.get("intent") or {}
    return Turn(
        intent=intent.get("name"),
        confidence=float(intent.get("confidence") or 0.0),
        text=message.get("text") or "",
        requested=tracker.get_slot(REQUESTED_SLOT),
        ranking=tuple(str(c.get("name")) for c in message.get("intent_ranking") or [] if c.get("name")),
    )


def other_task(turn: Turn, own_form: str) -> str | None:
    """The form of another task this message asks for: the NLU is sure of it and the message names
    the task's subject ("не буду я вам email давать" was once read as a refund status at 0.74); or
    the message takes this task back and names another one in words, whatever the NLU's top intent
    ("а хотя нет, адрес менять не надо, лучше отмените заказ" read as an address change)."""
    form = TASK_FORMS.get(turn.intent or "")
    if form is None or form == own_form:
        return named_instead(turn, own_form)
    if turn.confidence < SWITCH_CONFIDENCE:
        # "算了 地址不用改了 直接幫我取消訂單好了" (0.54): taken back, and the other task named in words
        taken_back = turn.confidence >= RETRACT_SWITCH_CONFIDENCE and confirm.retracts(turn.text)
        return form if taken_back and names_task(turn.intent or "", turn.text) else named_instead(turn, own_form)
    if turn.confidence < SURE_SWITCH_CONFIDENCE and not names_task(turn.intent or "", turn.text):
        return None
    return form


def named_instead(turn: Turn, own_form: str) -> str | None:
    """Taken back, and another task named in words: the first such task of the NLU's ranking
    ("算了还是退货吧 尺码小了" at the refund's reason step, return at 0.34). The order status is not
    switched to this way: its words (order, заказ, 订单) name every task's order."""
    if turn.requested is None or not confirm.retracts(turn.text):
        return None  # the form has asked nothing yet: "can I get a refund on X? changed my mind" is the request
    for name in turn.ranking[:RANKING_DEPTH]:
        form = TASK_FORMS.get(name)
        if form is None or form == own_form or name == "check_order_status" or name not in TOPICS:
            continue
        if {form, own_form} <= SAME_SUBJECT:
            continue  # a refund and its status share every word ("refund", "деньги", "退款")
        if names_task(name, turn.text):
            return form
    return None


def asks_a_question(text: str) -> bool:
    """A general question ("by the way, how long do refunds take?"), not a request about an order."""
    norm = confirm.normalise(text)
    return _ORDER_ID.search(norm) is None and _QUESTION.search(norm) is not None and REQUEST_WORDS.search(norm) is None


def states_the_reason(tracker: Tracker) -> bool:
    """Asked why, answered with a statement that the NLU took for a help-centre question ("джинсы
    порвались по шву после первой носки"): the answer is the reason, not a question to look up."""
    message = tracker.latest_message or {}
    intent = (message.get("intent") or {}).get("name")
    return (
        tracker.active_loop_name is not None
        and tracker.get_slot(REQUESTED_SLOT) in REASON_SLOTS
        and intent == "ask_question"
        and _QUESTION.search(confirm.normalise(message.get("text") or "")) is None
    )


def takes_back(turn: Turn) -> bool:
    if turn.requested not in DATA_SLOTS or turn.requested == CONFIRM_SLOT:
        return False  # the confirmation step reads its own answer (bot.actions.confirm)
    if turn.requested in REASON_SLOTS and turn.intent == "deny":
        return confirm.retracts(turn.text)  # "wrong colour", "no good": a reason, not a no
    return turn.intent in ENDING_INTENTS or confirm.retracts(turn.text)


def end_form(tracker: Tracker, next_task: str | None = None) -> list[EventType]:
    """Nothing from this message is kept; the form ends and its submit action writes nothing."""
    # the slot the form asked for was filled with this message's text ("не буду я вам email давать" as
    # the identity to check): dropped too, except an order number the message named
    requested = tracker.get_slot(REQUESTED_SLOT)
    dropped: dict[str, Any] = {
        slot: None for slot in tracker.slots_to_validate()
        if slot in DATA_SLOTS or (slot == requested and slot != "order_id")
    }
    events: list[EventType] = [SlotSet(slot, value) for slot, value in dropped.items()]
    events += [SlotSet(CONFIRM_SLOT, None), SlotSet("task_blocked", True), SlotSet("next_task", next_task)]
    return [*events, SlotSet(REQUESTED_SLOT, None)]


def reads_customer_message(tracker: Tracker, form: str) -> bool:
    """Whether the form runs on a message just received. Rasa hands validators a tracker ending in
    the form's own ``ActionExecuted``; what ran before it tells a reading turn (listen) from a form
    started by a rule or by another action."""
    seen_form = False
    for event in reversed(tracker.events):
        if event.get("event") != "action":
            continue
        if not seen_form and event.get("name") == form:
            seen_form = True
            continue
        return event.get("name") in READING_ACTIONS
    return False


Digression = Callable[[Tracker, CollectingDispatcher], "list[EventType] | None"]


def guard(
    tracker: Tracker, dispatcher: CollectingDispatcher, own_form: str, digress: Digression | None = None
) -> list[EventType] | None:
    """Events that end the form when the customer changed their mind; None to validate as usual.

    A general question that reads like another task ("кстати, через сколько приходят деньги при
    возврате?" at the identity step) is answered from the help centre by ``digress`` when an article
    answers it, and the form asks its question again."""
    if not reads_customer_message(tracker, own_form):
        return None  # the form is starting (or re-asking): no new customer message to read
    turn = latest(tracker)
    switch = other_task(turn, own_form)
    if switch is not None:
        if turn.requested == CONFIRM_SLOT:
            answer = confirm.read(turn.text, turn.intent, turn.confidence)
            if answer == confirm.Answer.YES:
                return None
            if answer == confirm.Answer.UNCLEAR and confirm.conditional_yes(turn.text, _TASK_OF.get(own_form)):
                # a yes with a condition or a question: answered if the help centre can, and asked again
                answered = digress(tracker, dispatcher) if digress is not None and asks_a_question(turn.text) else None
                return [*answered, SlotSet(CONFIRM_SLOT, None)] if answered is not None else None
        if digress is not None and turn.requested and asks_a_question(turn.text):
            answered = digress(tracker, dispatcher)
            if answered is not None:
                return [*answered, SlotSet(turn.requested, None)]
        dispatcher.utter_message(response="utter_task_switched")
        return end_form(tracker, next_task=switch)
    if takes_back(turn):
        dispatcher.utter_message(response="utter_nothing_changed")
        return end_form(tracker)
    return None
