"""The handoff service: tickets, queues, live relay between customer and agent, CSAT.

The conversation service calls two hooks on every turn (``before_rasa`` and ``after_turn``); Rasa
actions call ``escalate`` / ``escalate_blocking``; the agent API calls the agent operations.
Conversation states: ``bot`` → ``queued`` (ticket waiting; the bot still answers) → ``human``
(an agent owns it; the bot is silent) → ``bot`` (handed back, or resolved and rated) / ``closed``
(resolved, waiting for the customer's rating). Every change of state is an event of the state
machine in ``handoff/lifecycle.py`` (drawn in docs/architecture.md, "Handoff lifecycle").

Database work runs in worker threads; live events are published from the event loop afterwards
(``EventBus`` is not thread-safe), so every DB step returns the events it wants sent.

``HandoffService`` is the one object the gateway, the Rasa actions and the agent API hold; its
parts live in one module per concept:

- ``turns``: the per-turn hooks (relay, rating, email, offers, queue notices);
- ``escalation``: opening a ticket and telling the customer where they stand;
- ``assignment``: who takes a waiting ticket, queue positions and waiting times;
- ``agent_actions``: claim, reply, note, transfer, resolve, hand back;
- ``delivery``: getting messages to the customer (websocket, push, next answer);
- ``views``: the console's read views; ``audit``: the audit trail; ``helpdesk``: outside copies;
- ``base``: shared state and lookups; ``lifecycle``: the state machine.
"""

from __future__ import annotations

from handoff.agent_actions import AgentActions
from handoff.assignment import Assignment, position_of
from handoff.audit import Audit
from handoff.base import AgentIdentity, EscalationOutcome, HandoffBase, utcnow
from handoff.delivery import Delivery
from handoff.errors import HandoffError
from handoff.escalation import Escalation
from handoff.helpdesk import Helpdesk
from handoff.policy import PRIORITY_NORMAL
from handoff.turns import QUEUE_NOTICE, TurnHooks
from handoff.views import Views


class HandoffService(TurnHooks, Escalation, AgentActions, Assignment, Delivery, Views, Audit, Helpdesk, HandoffBase):
    """Human handoff for one gateway: the parts above, over one set of sessions, settings and policy memory."""


__all__ = ["AgentIdentity", "EscalationOutcome", "HandoffError", "HandoffService", "position_of", "PRIORITY_NORMAL",
           "QUEUE_NOTICE", "utcnow"]
