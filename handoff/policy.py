"""When to hand a conversation to a person, and why: one readable policy.

Four kinds of trigger (issue 4 §1), each answered with a decision that names its reason:

========================  =================================================  ======================
trigger                   how it is seen                                     decision
========================  =================================================  ======================
explicit request          intent ``human_handoff`` (text in any language,    ``Escalate`` at once
                          or the "talk to a person" button ``/human_handoff``)
repeated failure          ``failure_turns`` consecutive turns the bot could  ``Offer``; escalate on yes
                          not help: NLU fallback, Rasa's fallback actions,
                          a declined KB answer, a form that failed 3 times
frustration               ``handoff.frustration`` score ≥ threshold, or two   ``Offer``; escalate on yes
                          angry messages in a row
business rules            refund above the automatic limit (the refund        ``Escalate`` with the rule
                          action), legal threat, chargeback, suspected
                          account takeover (keywords, 3 languages), a gold
                          customer asking for a person a second time
========================  =================================================  ======================

Where they run: the explicit request, the refund limit and the gold customer's repeat inside the
Rasa action ``action_handoff_request`` / ``action_submit_refund`` (the bot knows the intent and the
verified customer there); the keyword rules before the turn reaches Rasa (an account takeover must
not start a password-reset form); failure and frustration after each turn in the gateway.
Every decision to escalate opens at most one ticket per conversation, and new tickets are capped per
sender and per client address per day (``HandoffService._ticket_capped``): the keyword rules run
before the bot, for any new sender id, so they must not be a way to flood the queues.
Everything here is pure: the state it needs (``Signals``) is passed in and updated in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from handoff import frustration

__all__ = [
    "Escalate", "Offer", "PolicyConfig", "Signals", "HandoffPolicy",
    "PRIORITY_URGENT", "PRIORITY_HIGH", "PRIORITY_NORMAL", "PRIORITY_LOW",
]

PRIORITY_URGENT, PRIORITY_HIGH, PRIORITY_NORMAL, PRIORITY_LOW = 0, 1, 2, 3

# Reasons (what kind of trigger) and rules (which business rule) as stored on tickets.
EXPLICIT = "explicit_request"
REPEATED_FAILURE = "repeated_failure"
FRUSTRATION = "frustration"
BUSINESS_RULE = "business_rule"

RULE_REFUND_ABOVE_LIMIT = "refund_above_limit"
RULE_LEGAL_THREAT = "legal_threat"
RULE_CHARGEBACK = "chargeback"
RULE_ACCOUNT_TAKEOVER = "account_takeover"
RULE_VIP_REPEAT = "vip_repeat_request"

FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTIONS = frozenset({"action_default_ask_affirmation", "action_default_ask_rephrase",
                              "action_two_stage_fallback", "action_default_fallback"})
KB_ACTIONS = frozenset({"action_answer_question", "action_kb_feedback"})


@dataclass(frozen=True)
class Escalate:
    reason: str
    rule: str | None = None
    priority: int = PRIORITY_NORMAL
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Offer:
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyConfig:
    failure_turns: int = 2
    frustration_threshold: float = 1.0
    offer_cooldown_turns: int = 5
    max_verification_attempts: int = 3


@dataclass
class Signals:
    """Per-conversation memory of the policy (kept by the gateway between turns)."""

    failure_streak: int = 0
    last_frustration: float = 0.0
    offer_pending: str | None = None  # reason of the offer waiting for yes/no
    cooldown: int = 0  # turns left before another offer may be made


# --- business rules on the customer's words ----------------------------------------------------
# Latin/Cyrillic: lower-cased, word-bounded; Chinese: substrings. Each list is one rule.
_RULE_PATTERNS: dict[str, tuple[list[str], list[str]]] = {
    RULE_LEGAL_THREAT: (
        [
            r"sue|suing|lawsuit|lawyer\w*|attorney\w*|legal action|take (?:you|this) to court|court|small claims",
            r"consumer protection|trading standards|ombudsman|class action|legal (?:proceedings|department)",
            r"суд\w*|засуж\w*|иск\w*|юрист\w*|адвокат\w*|прокуратур\w*|роспотребнадзор\w*|защит\w* прав потребител\w*",
        ],
        ["律师", "起诉", "法院", "告你们", "法律途径", "诉讼", "消协", "消费者协会", "12315", "打官司", "仲裁"],
    ),
    RULE_CHARGEBACK: (
        [
            r"charge ?back\w*|dispute (?:the|this|a) (?:charge|payment|transaction)|reverse the (?:charge|payment)",
            r"(?:call|contact|tell) my (?:bank|card issuer|credit card company)|(?:bank|card) dispute",
            r"чарджбэк\w*|чарджбек\w*|оспор\w* (?:платёж|платеж|списание|операци\w*)|отозв\w* платёж|отозв\w* платеж",
            r"(?:через|в) банк\w* (?:верну|оспор\w*)|заблокир\w* (?:платёж|платеж)",
        ],
        ["拒付", "信用卡争议", "撤销付款", "找银行", "银行追回", "银行申诉", "申请退单拒付", "撤回付款"],
    ),
    RULE_ACCOUNT_TAKEOVER: (
        [
            r"hack\w*|account (?:was |has been |got )?(?:compromised|stolen|taken over)",
            r"someone (?:else )?(?:changed|reset|logged|has changed|got into|accessed|is using|used)\b.*\b(?:password|email|account|login)",
            r"someone (?:else )?(?:logged in|got into|accessed)|unauthori[sz]ed (?:order|purchase|login|access|charge)",
            r"i (?:did not|didn'?t) (?:place|make|order) (?:this|that|these|those) (?:order|purchase)",
            r"взлом\w*|украли (?:мой )?(?:аккаунт|учётн\w*|учетн\w*|пароль)|кто-то (?:сменил|поменял|изменил|зашёл|зашел|вош[её]л)\w*",
            r"не я (?:делал|делала|оформлял|оформляла|заказывал|заказывала)|несанкционирован\w*",
        ],
        ["被盗", "被黑", "盗号", "账号被", "帐号被", "有人改了我的", "有人登录", "有人登陆", "不是我下的", "不是我买的",
         "异地登录", "被人登录", "密码被改"],
    ),
}


def _compile_rule(latin: list[str]) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(latin) + r")(?!\w)", re.IGNORECASE)


_RULES = {rule: (_compile_rule(latin), han) for rule, (latin, han) in _RULE_PATTERNS.items()}
_RULE_PRIORITY = {RULE_LEGAL_THREAT: PRIORITY_URGENT, RULE_CHARGEBACK: PRIORITY_URGENT,
                  RULE_ACCOUNT_TAKEOVER: PRIORITY_URGENT}


class HandoffPolicy:
    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()

    # --- before Rasa ---------------------------------------------------------------------------
    @staticmethod
    def rule_in_text(text: str | None) -> Escalate | None:
        """Legal threat, chargeback or account takeover in the customer's words → escalate at once."""
        if not text:
            return None
        lowered = text.lower()
        for rule, (latin, han) in _RULES.items():
            hit = latin.search(lowered)
            found = hit.group(0) if hit else next((w for w in han if w in text), None)
            if found:
                return Escalate(BUSINESS_RULE, rule, _RULE_PRIORITY[rule], {"matched": found})
        return None

    # --- inside the Rasa actions ----------------------------------------------------------------
    @staticmethod
    def explicit_request(times_asked: int, membership: str | None) -> Escalate:
        """Asking for a person always works. A gold customer asking again is escalated as a VIP."""
        if membership == "gold" and times_asked >= 2:
            return Escalate(BUSINESS_RULE, RULE_VIP_REPEAT, PRIORITY_URGENT, {"times_asked": times_asked})
        priority = PRIORITY_HIGH if membership == "gold" else PRIORITY_NORMAL
        return Escalate(EXPLICIT, None, priority, {"times_asked": times_asked})

    @staticmethod
    def refund_above_limit(order_id: str, amount: str, limit: str) -> Escalate:
        return Escalate(BUSINESS_RULE, RULE_REFUND_ABOVE_LIMIT, PRIORITY_HIGH,
                        {"order_id": order_id, "amount": amount, "limit": limit})

    # --- after each bot turn (gateway) -----------------------------------------------------------
    def turn_failed(self, turn: dict[str, Any]) -> str | None:
        """Why the bot could not help in this turn (from the gateway's turn summary), or None."""
        raw_intent = turn.get("intent")
        intent = raw_intent.get("name") if isinstance(raw_intent, dict) else raw_intent
        actions = set(turn.get("actions") or [])
        slots = turn.get("slots") or {}
        if intent == FALLBACK_INTENT:
            return "nlu_fallback"
        if actions & FALLBACK_ACTIONS:
            return "fallback_action"
        # kb_outcome keeps its value across turns: count it only on a turn that asked the KB.
        if slots.get("kb_outcome") == "declined" and actions & KB_ACTIONS:
            return "kb_declined"
        if "utter_too_many_attempts" in actions:
            return "form_failed"
        failed = slots.get("failed_attempts") or 0
        if float(failed) >= self.config.max_verification_attempts:
            return "form_failed"
        return None

    def after_turn(self, signals: Signals, turn: dict[str, Any], text: str | None) -> Offer | None:
        """Update ``signals`` with this turn and decide whether to offer a person."""
        if signals.cooldown > 0:
            signals.cooldown -= 1
        failure = self.turn_failed(turn)
        signals.failure_streak = signals.failure_streak + 1 if failure else 0
        scored = frustration.score(text or "")
        angry_twice = scored.value >= frustration.MILD and signals.last_frustration >= frustration.MILD
        signals.last_frustration = scored.value
        if signals.offer_pending or signals.cooldown > 0:
            return None
        if scored.value >= self.config.frustration_threshold or angry_twice:
            return Offer(FRUSTRATION, {"score": scored.value, "signals": scored.signals, "repeated": angry_twice})
        if signals.failure_streak >= self.config.failure_turns:
            return Offer(REPEATED_FAILURE, {"turns": signals.failure_streak, "last": failure})
        return None

    def offered(self, signals: Signals, offer: Offer) -> None:
        signals.offer_pending = offer.reason

    def declined(self, signals: Signals) -> None:
        signals.offer_pending = None
        signals.failure_streak = 0
        signals.last_frustration = 0.0
        signals.cooldown = self.config.offer_cooldown_turns

    def accepted(self, signals: Signals) -> str | None:
        reason, signals.offer_pending = signals.offer_pending, None
        signals.failure_streak = 0
        signals.last_frustration = 0.0
        return reason
