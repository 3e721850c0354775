"""What a conversation left behind: its handoff ticket, side effects and the store fields of its
reserved orders. Parsers raise ``ValueError`` for the loader (which adds file and line);
evaluations are plain functions over what ``scenarios.database`` read, so they can be tested
without a system.

- ``ticket: {queue, priority, reason, rule}``: some ticket of the conversation has all the given
  fields; ``queue`` is a shell glob (``*-zh``), the others exact (any case), each any of a list.
  Rule names are compared after folding case, spaces and hyphens, with the spellings of README
  mapped to the product's (``suspected account takeover`` → ``account_takeover``), and a rule's name
  given as the ``reason`` matches that rule's ticket (reason ``business_rule``); priorities by
  name (``urgent`` 0, ``high`` 1, ``normal`` 2, ``low`` 3, as ``handoff.policy``).
- ``side_effects``: ``password_reset_email`` (a ``password_reset`` row of ``outbox_emails`` to an
  account the conversation named, written after its first message), ``rating_stored`` (a ticket
  of the conversation has a 1–5 ``csat_score``).
- ``store``: ``refund_amount`` (decimal; currency signs ignored), ``refund_reason`` /
  ``return_reason`` (the latest row's reason contains the text, NFC and any case), null = no such
  row; ``other_orders_unchanged: true`` (see ``orders_changed`` and ``foreign_writes``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from scenarios.checks import Verdict, nfc, same_value

TICKET_FIELDS = ("queue", "priority", "reason", "rule")
PRIORITIES = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
RULE_ALIASES = {"suspected_account_takeover": "account_takeover"}
SIDE_EFFECTS = ("password_reset_email", "rating_stored")
WRITE_ACTIONS = frozenset({"action_cancel_order", "action_change_address", "action_submit_refund", "action_submit_return"})
REASON_FIELDS = ("refund_reason", "return_reason")
_MONEY_NOISE = re.compile(r"[\s,$€£¥₽]|USD|CNY|RUB|EUR|GBP|RMB|руб\.?|元", re.IGNORECASE)


# --- ticket ---------------------------------------------------------------------------------------


def parse_ticket_field(name: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise ValueError(f"ticket.{name} must be a non-empty string or a list of non-empty strings")
    if name == "priority":
        bad = [v for v in items if v.strip().casefold() not in PRIORITIES]
        if bad:
            raise ValueError(f"ticket.priority: unknown priority {bad[0]!r}; one of {', '.join(PRIORITIES)}")
    return tuple(items)


def rule_name(value: Any) -> str:
    folded = re.sub(r"[\s\-]+", "_", str(value).strip().casefold())
    return RULE_ALIASES.get(folded, folded)


def _field_matches(name: str, wanted: Sequence[str], got: Any) -> bool:
    if got is None:
        return False
    if name == "queue":
        return any(fnmatch.fnmatchcase(str(got).casefold(), w.casefold()) for w in wanted)
    if name == "priority":
        return any(PRIORITIES[w.strip().casefold()] == got for w in wanted)
    if name == "rule":
        return any(rule_name(w) == rule_name(got) for w in wanted)
    if name == "reason" and isinstance(got, tuple):  # (reason, rule): see ``ticket_verdict``
        reason, rule = got
        return _field_matches(name, wanted, reason) or (rule is not None and _field_matches("rule", wanted, rule))
    return any(w.strip().casefold() == str(got).strip().casefold() for w in wanted)


def _ticket_view(t: Mapping[str, Any]) -> dict[str, Any]:
    names = {v: k for k, v in PRIORITIES.items()}
    return {"queue": t.get("queue"), "priority": names.get(t.get("priority"), t.get("priority")),
            "reason": t.get("reason"), "rule": t.get("rule")}


def ticket_verdict(expected: Mapping[str, Sequence[str]], tickets: Sequence[Mapping[str, Any]] | None) -> Verdict:
    if tickets is None:
        return Verdict(False, "this system records no handoff tickets (table handoff_tickets is absent)")
    if not tickets:
        return Verdict(False, "no handoff ticket")
    # A business rule's ticket has the reason "business_rule" and the rule's name; a scenario that
    # names the rule as the reason ("reason: refund_above_limit", as outcome's handoff_reason does)
    # means that ticket: the names are mapped, the check is not weakened.
    def got(t: Mapping[str, Any], k: str) -> Any:
        return (t.get("reason"), t.get("rule")) if k == "reason" and t.get("reason") == "business_rule" else t.get(k)

    ok = any(all(_field_matches(k, v, got(t, k)) for k, v in expected.items()) for t in tickets)
    return Verdict(ok, [_ticket_view(t) for t in tickets])


# --- side effects ---------------------------------------------------------------------------------


def parse_side_effect(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"side_effects.{name} must be true or false")
    return value


_IDENTIFIER = re.compile(r"[A-Za-z0-9._%+\-@]+")


def identifiers(texts: Iterable[str], slots: Iterable[Mapping[str, Any]] = ()) -> set[str]:
    """Account identifiers a conversation may have given: email- or username-like tokens of what the
    customer typed, and the identity slots the bot filled."""
    found = {m.group(0).strip(".,;:!?-").casefold() for t in texts for m in _IDENTIFIER.finditer(t)}
    for s in slots:
        for key in ("customer_identifier", "email", "username", "verified_username", "account_identifier"):
            v = s.get(key)
            if isinstance(v, str) and v.strip():
                found.add(v.strip().casefold())
    return {f for f in found if len(f) >= 3}


def rating_stored(tickets: Sequence[Mapping[str, Any]] | None) -> bool:
    return any(isinstance(t.get("csat_score"), int) and 1 <= t["csat_score"] <= 5 for t in tickets or [])


# --- store fields --------------------------------------------------------------------------------


def money(value: Any) -> Decimal | None:
    """``117``, ``"117.00"``, ``"$117.00"``, ``"¥117"`` → Decimal; None for null; ValueError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("not an amount")
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    try:
        return Decimal(_MONEY_NOISE.sub("", str(value)))
    except InvalidOperation as err:
        raise ValueError(f"not an amount: {value!r}") from err


def parse_store_field(name: str, value: Any, has_placeholder: bool) -> Any:
    if name == "other_orders_unchanged":
        if value is not True:
            raise ValueError("other_orders_unchanged can only be true")
        return True
    if name == "refund_amount" and not has_placeholder:
        try:
            money(value)
        except ValueError as err:
            raise ValueError(f"refund_amount must be an amount (117, \"117.00\", \"$117\") or null: {err}") from err
    if name in REASON_FIELDS and value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"{name} must be a non-empty text (a part of the stored reason) or null")
    return value


def store_verdict(name: str, expected: Any, facts: Mapping[str, Any]) -> Verdict:
    """A ``store`` field other than ``other_orders_unchanged``, compared with ``order_facts``."""
    got = facts.get(name)
    if name == "refund_amount":
        try:
            want = money(expected)
        except ValueError as err:
            return Verdict(False, f"{got} (the expected value is {err})")
        return Verdict(want == got if want is None or got is None else want == Decimal(str(got)), got)
    if name in REASON_FIELDS:
        if expected is None or got is None:
            return Verdict(expected is None and got is None, got)
        return Verdict(nfc(str(expected)) in nfc(str(got)), got)
    return Verdict(same_value(expected, got), got)


def orders_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Orders whose snapshot (status, address, refund and return rows) differs, with what changed."""
    changed = []
    for order_id, then in before.items():
        now = after.get(order_id)
        if now != then:
            fields = [k for k in then if not now or now.get(k) != then.get(k)] if isinstance(then, dict) else []
            changed.append(f"{order_id}: {', '.join(fields) or 'changed'}")
    return changed


def foreign_writes(runs: Iterable[tuple[str, Iterable[Any]]], reserved: Iterable[str]) -> list[str]:
    """Write actions of this conversation that named an order other than the reserved ones:
    ``runs`` is (action, order ids it named) per run, from ``action_runs`` and ``turns``."""
    allowed = {str(r) for r in reserved}
    bad = []
    for action, ids in runs:
        if action not in WRITE_ACTIONS:
            continue
        bad += [f"{action} on {i}" for i in dict.fromkeys(str(i) for i in ids if i) if i not in allowed]
    return list(dict.fromkeys(bad))


def other_orders_verdict(before: Mapping[str, Any], after: Mapping[str, Any],
                         runs: Iterable[tuple[str, Iterable[Any]]], reserved: Iterable[str]) -> Verdict:
    problems = foreign_writes(runs, reserved) + orders_changed(before, after)
    return Verdict(not problems, problems or f"{len(before)} other orders unchanged, writes only on reserved orders")


def order_ids_in(value: Any) -> list[str]:
    """Every ``order_id`` an action's stored result names (response arguments, SlotSet events)."""
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("event") == "slot" and value.get("name") == "order_id" and value.get("value"):
            found.append(str(value["value"]))
        for k, v in value.items():
            if k == "order_id" and isinstance(v, str | int) and v:
                found.append(str(v))
            else:
                found += order_ids_in(v)
    elif isinstance(value, list):
        for v in value:
            found += order_ids_in(v)
    return found
