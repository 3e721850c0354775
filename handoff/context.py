"""What the agent (and an outside helpdesk) receives: the ticket document.

Built from the conversation store, not from Rasa's tracker: the gateway wrote every message and
what the bot understood in each turn (``turns``), so the document is complete even when the
conversation spanned a Rasa restart.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conversations.labels import INTENT, label
from conversations.models import Conversation, KbAnswer, Message, Turn
from handoff.models import Agent, Ticket, TicketNote
from store.service import OrdersService

# Slots an agent needs (the form slots collected, the verified identity, the KB state).
FACT_SLOTS = ("order_id", "customer_identifier", "verified", "verified_username", "refund_reason", "refund_method",
              "return_reason", "new_address", "confirm_write", "account_identifier", "failed_attempts",
              "task_blocked", "kb_outcome", "kb_query", "language")
REASON_LABELS = {"explicit_request": "Customer asked for a person", "repeated_failure": "The bot could not help twice",
                 "frustration": "Customer frustrated", "business_rule": "Business rule"}
PRIORITY_LABELS = {0: "urgent", 1: "high", 2: "normal", 3: "low"}


def message_view(m: Message, agents: dict[int, str] | None = None) -> dict[str, Any]:
    data = m.data or {}
    sender = "customer" if m.direction == "in" else ("agent" if m.type == "agent" else "bot")
    view: dict[str, Any] = {
        "id": m.id, "from": sender, "type": m.type, "text": m.text, "payload": m.payload,
        "buttons": data.get("buttons", []), "sources": data.get("sources", []),
        "language": m.language, "channel": m.channel, "created_at": m.created_at.isoformat(),
    }
    if sender == "agent":
        view["agent"] = data.get("agent")
    return view


def transcript(db: Session, conversation_id: int) -> list[dict[str, Any]]:
    rows = db.scalars(select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id))
    return [message_view(m) for m in rows]


def understood(db: Session, conv: Conversation) -> dict[str, Any]:
    """Per-turn intents/confidences/entities, the latest slots, and KB answers with their feedback."""
    turns = list(db.scalars(select(Turn).where(Turn.conversation_id == conv.id).order_by(Turn.id)))
    texts = dict(db.execute(
        select(Message.id, Message.text).where(Message.conversation_id == conv.id, Message.direction == "in")
    ).all())
    per_turn = [
        {
            "message_id": t.message_id, "text": texts.get(t.message_id, ""), "intent": t.intent,
            "confidence": round(t.confidence, 3) if t.confidence is not None else None,
            "ranking": [{"name": r.get("name"), "confidence": r.get("confidence")} for r in (t.intent_ranking or [])[:3]],
            "entities": [{"entity": e.get("entity"), "value": e.get("value")} for e in t.entities or []],
            "actions": t.actions, "active_loop": t.active_loop, "language": t.language,
            "at": t.created_at.isoformat(),
        }
        for t in turns
    ]
    slots = dict(turns[-1].slots) if turns else {}
    kb = [
        {"query": k.query, "outcome": k.outcome, "article_id": k.article_id, "article_language": k.article_language,
         "score": k.score, "helpful": k.helpful, "at": k.created_at.isoformat()}
        for k in db.scalars(select(KbAnswer).where(KbAnswer.sender_id == conv.sender_id).order_by(KbAnswer.id))
    ]
    return {
        "turns": per_turn,
        "slots": {k: slots.get(k) for k in FACT_SLOTS if slots.get(k) not in (None, "", [])},
        "active_loop": turns[-1].active_loop if turns else None,
        "kb_answers": kb,
    }


def customer_identity(orders: OrdersService | None, slots: dict[str, Any], contact_email: str | None) -> dict[str, Any]:
    """What we know about who the customer is: verified or only claimed."""
    identity: dict[str, Any] = {"verified": bool(slots.get("verified"))}
    username = slots.get("verified_username") if slots.get("verified") else None
    if username:
        identity["username"] = username
        if orders is not None:
            theirs = orders.orders_of(str(username))
            if theirs:
                c = theirs[0].customer
                identity.update(full_name=c.full_name, email=c.email, membership=str(c.membership_level),
                                orders=[o.order_id for o in theirs][:10])
    elif slots.get("customer_identifier"):
        identity["claimed_identifier"] = slots["customer_identifier"]
    if contact_email:
        identity["contact_email"] = contact_email
    return identity


def order_facts(orders: OrdersService | None, order_id: str | None) -> dict[str, Any] | None:
    if not order_id or orders is None:
        return None
    order = orders.get_order(str(order_id))
    if order is None:
        return None
    facts: dict[str, Any] = {"order_id": order.order_id, "status": str(order.status),
                             "total": f"{order.total} {order.currency}", "carrier": order.carrier,
                             "tracking_number": order.tracking_number}
    if order.refund is not None:
        facts["refund"] = {"amount": str(order.refund.amount), "status": str(order.refund.status),
                           "method": str(order.refund.method)}
    return facts


def last_request(db: Session, conversation_id: int) -> str:
    """The customer's last typed message (button clicks skipped)."""
    row = db.scalar(
        select(Message.text).where(Message.conversation_id == conversation_id, Message.direction == "in",
                                   Message.payload.is_(None)).order_by(Message.id.desc()).limit(1)
    )
    return row or ""


def summarise(ticket: Ticket, context: dict[str, Any], customer: dict[str, Any], last: str) -> str:
    """A few lines an agent can act on without scrolling: why, what they asked, the key facts."""
    reason = REASON_LABELS.get(ticket.reason, ticket.reason)
    if ticket.rule:
        reason = f"{reason}: {ticket.rule.replace('_', ' ')}"
    lines = [f"{reason}."]
    task = next((t["intent"] for t in reversed(context.get("turns", []))
                 if t["intent"] in INTENT and t["intent"] not in {"affirm", "deny", "inform", "greet", "thanks",
                                                                   "human_handoff", "out_of_scope", "goodbye"}), None)
    if task:
        lines.append(f"Wanted: {label(INTENT, task, 'en')}.")
    if last:
        lines.append(f"Last request: \u201c{last[:200]}\u201d")
    order = context.get("order")
    if order:
        lines.append(f"Order {order['order_id']}: {order['status']}, {order['total']}"
                     + (f"; refund {order['refund']['amount']} {order['refund']['status']}" if order.get("refund") else "")
                     + ".")
    elif context.get("slots", {}).get("order_id"):
        lines.append(f"Order {context['slots']['order_id']} (not verified).")
    if customer.get("username"):
        who = customer.get("full_name") or customer["username"]
        lines.append(f"Customer: {who} ({customer.get('membership', 'unknown')} member), identity verified.")
    else:
        lines.append("Customer: identity not verified.")
    declined = [k["query"] for k in context.get("kb_answers", []) if k["outcome"] == "declined" or k["helpful"] is False]
    if declined:
        lines.append(f"Help centre had no answer for: \u201c{declined[-1][:120]}\u201d.")
    detail = ticket.context.get("trigger") if ticket.context else None
    if detail and detail.get("amount"):
        lines.append(f"Refund of {detail['amount']} is above the automatic limit of {detail.get('limit')}.")
    return " ".join(lines)


def ticket_summary(t: Ticket, agent_name: str | None = None, position: int | None = None,
                   now_iso: str | None = None) -> dict[str, Any]:
    """The row shown in queue lists and carried by live events."""
    return {
        "id": t.id, "sender_id": t.sender_id, "status": t.status, "reason": t.reason, "rule": t.rule,
        "priority": t.priority, "priority_label": PRIORITY_LABELS.get(t.priority, str(t.priority)),
        "topic": t.topic, "queue": t.queue, "language": t.language, "channel": t.channel,
        "agent_id": t.agent_id, "agent": agent_name, "summary": t.summary, "position": position,
        "created_at": t.created_at.isoformat(), "queued_at": t.queued_at.isoformat(),
        "assigned_at": t.assigned_at.isoformat() if t.assigned_at else None,
        "last_customer_at": t.last_customer_at.isoformat() if t.last_customer_at else None,
        "closed_at": t.closed_at.isoformat() if t.closed_at else None,
        "contact_email": t.contact_email, "csat_score": t.csat_score,
    }


def ticket_document(db: Session, t: Ticket) -> dict[str, Any]:
    """Everything about a ticket: summary row, transcript, understood context, customer, notes, CSAT."""
    agents = dict(db.execute(select(Agent.id, Agent.display_name)).all())
    notes = [
        {"id": n.id, "agent": agents.get(n.agent_id), "agent_id": n.agent_id, "text": n.text,
         "created_at": n.created_at.isoformat()}
        for n in db.scalars(select(TicketNote).where(TicketNote.ticket_id == t.id).order_by(TicketNote.id))
    ]
    # Turns and KB answers are read live (the escalating turn is stored after the action that filed
    # the ticket, and the conversation goes on); the snapshot keeps the order and the trigger.
    live = understood(db, db.get_one(Conversation, t.conversation_id))
    context = {**(t.context or {}), **live, "slots": {**(t.context or {}).get("slots", {}), **live["slots"]}}
    return {
        **ticket_summary(t, agents.get(t.agent_id) if t.agent_id else None),
        "transcript": transcript(db, t.conversation_id),
        "context": context,
        "customer": t.customer,
        "notes": notes,
        "close_reason": t.close_reason,
        "csat": {"score": t.csat_score, "comment": t.csat_comment,
                 "at": t.csat_at.isoformat() if t.csat_at else None},
    }
