"""Run scenarios against a live system: each one a fresh customer, several at a time.

Turns of one scenario are sent in order; different scenarios run concurrently (``concurrency``).
Every turn carries a message id (``<sender>-<n>``), which is how the runner finds what the bot
understood for exactly that message in the conversation store. After a failing check the
conversation goes on (a real customer would keep typing, and the outcome needs the whole
conversation); a turn that gets no reply at all, or a click on a button that was not offered,
ends it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from scenarios import effects
from scenarios.agent import AdminCredentials, AgentConsole
from scenarios.checks import CHECKS, Verdict
from scenarios.conversation import EVALUATE
from scenarios.database import PoolExhausted, SystemDatabase
from scenarios.drivers import DRIVERS, Driver
from scenarios.loader import PLACEHOLDER
from scenarios.model import Check, Location, Scenario, ScenarioCheck, Turn
from scenarios.observed import Observation
from scenarios.outcome import Resolution, resolve

REQUEST_TIMEOUT_S = 120.0  # a first message may wait for a model to warm up


@dataclass(frozen=True)
class CheckResult:
    key: str
    expected: Any
    got: Any
    ok: bool
    where: Location

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "expected": _plain(self.expected), "got": _plain(self.got), "ok": self.ok,
                "line": self.where.line}


@dataclass
class TurnResult:
    index: int  # 1-based
    turn: Turn
    sent: dict[str, Any]
    observation: Observation
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "line": self.turn.where.line, "sent": self.sent, "ok": self.ok,
                "checks": [c.as_dict() for c in self.checks], "observed": self.observation.as_dict()}


@dataclass
class ScenarioResult:
    scenario: Scenario
    sender_id: str
    turns: list[TurnResult] = field(default_factory=list)
    resolution: Resolution | None = None
    outcome_checks: list[CheckResult] = field(default_factory=list)
    store_checks: list[CheckResult] = field(default_factory=list)
    conversation_checks: list[CheckResult] = field(default_factory=list)  # eventually, never, ticket, side_effects
    error: str | None = None  # the scenario could not run (no order left in a pool, runner bug)
    bindings: dict[str, dict[str, str]] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(t.ok for t in self.turns) and all(c.ok for c in self.scenario_checks)

    @property
    def scenario_checks(self) -> list[CheckResult]:
        return [*self.outcome_checks, *self.conversation_checks, *self.store_checks]

    def first_failure(self) -> tuple[TurnResult | None, list[CheckResult]]:
        """The first failing turn and its failing checks; (None, [...]) for whole-conversation failures."""
        for t in self.turns:
            if not t.ok:
                return t, [c for c in t.checks if not c.ok]
        return None, [c for c in self.scenario_checks if not c.ok]

    def as_dict(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "name": s.name, "file": str(s.where.path), "line": s.where.line, "language": s.language,
            "channel": s.channel, "tags": list(s.tags), "sender_id": self.sender_id, "passed": self.passed,
            "error": self.error, "duration_s": round(self.duration_s, 3), "bindings": self.bindings,
            "expected_outcome": {"resolved_by": s.outcome.resolved_by, "handoff_reason": s.outcome.handoff_reason},
            "outcome": self.resolution.as_dict() if self.resolution else None,
            "outcome_checks": [c.as_dict() for c in self.outcome_checks],
            "store_checks": [c.as_dict() for c in self.store_checks],
            "conversation_checks": [c.as_dict() for c in self.conversation_checks],
            "turns": [t.as_dict() for t in self.turns],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def substitute(value: Any, bindings: dict[str, dict[str, str]], escape: bool = False) -> Any:
    """Replace ${name.field} in strings (inside lists and mappings too) by the reserved order's values."""
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            name, _, fld = m.group(1).partition(".")
            v = bindings[name][fld]
            return re.escape(v) if escape else v
        return PLACEHOLDER.sub(repl, value)
    if isinstance(value, tuple | list):
        return type(value)(substitute(v, bindings, escape) for v in value)
    if isinstance(value, dict):
        return {k: substitute(v, bindings, escape) for k, v in value.items()}
    return value


def find_button(spec: str, previous: Observation | None) -> str | None:
    """The payload of the offered button a ``click`` names: by title (any case), payload, or payload prefix*."""
    if previous is None:
        return None
    for b in previous.buttons:
        title, payload = str(b.get("title") or ""), str(b.get("payload") or "")
        if title.strip().casefold() == spec.strip().casefold() or payload == spec:
            return payload
        if spec.endswith("*") and payload.startswith(spec[:-1]):
            return payload
    return None


@dataclass
class Target:
    """The system under test: its base URL, its database (read-only) and, for agent turns, the
    handoff administrator's sign-in."""

    url: str
    database: SystemDatabase
    auto_refund_limit: Decimal = Decimal("150.00")
    admin: AdminCredentials | None = None


class Runner:
    def __init__(self, target: Target, concurrency: int = 4, run_id: str | None = None) -> None:
        self.target = target
        self.concurrency = max(1, concurrency)
        self.run_id = run_id or uuid.uuid4().hex[:8]

    async def run(
        self, scenarios: Sequence[Scenario], on_done: Callable[[ScenarioResult], None] | None = None
    ) -> list[ScenarioResult]:
        """All scenarios, results in the order given. Scenarios with agent turns run last, one at a
        time (see scenarios/agent.py for why)."""
        bindings = [self._reserve(s) for s in scenarios]
        sem = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency * 2, max_keepalive_connections=self.concurrency * 2)
        results: dict[int, ScenarioResult] = {}
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
            drivers = {name: cls(self.target.url, client) for name, cls in DRIVERS.items()}
            console = AgentConsole(self.target.url, client, self.target.admin, self.run_id)

            async def one(i: int, s: Scenario) -> None:
                async with sem:
                    result = await self._run_one(i, s, drivers[s.channel], console, bindings[i])
                results[i] = result
                if on_done is not None:
                    on_done(result)

            await asyncio.gather(*(one(i, s) for i, s in enumerate(scenarios) if not s.has_agent))
            for i, s in enumerate(scenarios):
                if s.has_agent:
                    await one(i, s)
        return [results[i] for i in range(len(scenarios))]

    def _reserve(self, s: Scenario) -> dict[str, dict[str, str]] | str:
        if not s.uses:
            return {}
        try:
            orders = self.target.database.reserve(s.uses.values(), self.target.auto_refund_limit)
        except PoolExhausted as err:
            return str(err)
        return dict(zip(s.uses, orders, strict=True))

    async def _run_one(
        self, index: int, s: Scenario, driver: Driver, console: AgentConsole, bindings: dict[str, dict[str, str]] | str
    ) -> ScenarioResult:
        sender = f"scn-{self.run_id}-{index:04d}-{uuid.uuid4().hex[:6]}"
        result = ScenarioResult(scenario=s, sender_id=sender)
        if isinstance(bindings, str):
            result.error = bindings
            return result
        result.bindings = bindings
        started = time.perf_counter()
        try:
            before = await self._snapshot(s, bindings)
            await self._converse(s, driver, console, sender, bindings, result)
            await self._conclude(s, sender, bindings, result, before)
        except Exception as err:  # a runner or database fault: report it on this scenario, go on
            result.error = f"{type(err).__name__}: {err}"
        result.duration_s = time.perf_counter() - started
        return result

    async def _converse(
        self, s: Scenario, driver: Driver, console: AgentConsole, sender: str, bindings: dict[str, dict[str, str]],
        result: ScenarioResult,
    ) -> None:
        db = self.target.database
        previous: Observation | None = None
        token: str | None = None
        seen_kb: set[int] = {int(r["id"]) for r in await asyncio.to_thread(db.kb_rows, sender)}
        typed: list[str] = []
        for n, turn in enumerate(s.turns, 1):
            if turn.agent is not None:
                done = await self._agent_turn(n, turn, console, sender, token, bindings, typed)
                result.turns.append(done)
                if done.observation.error is not None:
                    return
                previous = done.observation
                continue
            text = substitute(turn.user, bindings) if turn.user is not None else None
            payload = substitute(turn.payload, bindings) if turn.payload is not None else None
            if turn.click is not None:
                spec = substitute(turn.click, bindings)
                payload = find_button(spec, previous)
                if payload is None:
                    offered = [f"{b.get('title')} → {b.get('payload')}" for b in (previous.buttons if previous else [])]
                    obs = Observation(status=0, error="click on a button that was not offered")
                    result.turns.append(TurnResult(n, turn, {"click": spec}, obs, [
                        CheckResult("click", spec, offered, False, turn.where)]))
                    return
            message_id = f"{sender}-{n}"
            if text is not None:
                typed.append(text)
            sent = {k: v for k, v in (("text", text), ("payload", payload), ("language", turn.language)) if v is not None}
            obs = await driver.send(sender, text=text, payload=payload, language=turn.language, message_id=message_id)
            if obs.error is not None:
                result.turns.append(TurnResult(n, turn, sent, obs, [CheckResult("reply", "HTTP 200", obs.error, False, turn.where)]))
                return
            token = token or obs.conversation_token
            obs.customer_texts = list(typed)
            obs.understood = await asyncio.to_thread(db.understood, sender, message_id)
            rows = await asyncio.to_thread(db.kb_rows, sender)
            obs.kb_rows = [r for r in rows if int(r["id"]) not in seen_kb]
            seen_kb.update(int(r["id"]) for r in rows)
            result.turns.append(TurnResult(n, turn, sent, obs, [self._check(c, obs, bindings) for c in turn.checks]))
            previous = obs

    async def _agent_turn(
        self, n: int, turn: Turn, console: AgentConsole, sender: str, token: str | None,
        bindings: dict[str, dict[str, str]], typed: list[str],
    ) -> TurnResult:
        """A person's action on this conversation's ticket; observed as the customer sees it."""
        db = self.target.database
        sent = {"agent": turn.agent, **({"text": turn.text} if turn.text else {})}
        ticket = await asyncio.to_thread(db.open_ticket, sender)
        if ticket is None:
            obs = Observation(status=0, error="no open handoff ticket for this conversation")
            return TurnResult(n, turn, sent, obs, [CheckResult("agent", "an open ticket", "none", False, turn.where)])
        after = await asyncio.to_thread(db.last_message_id, sender)
        text = substitute(turn.text, bindings) if turn.text else None
        failed = await console.act(str(turn.agent), ticket[0], ticket[1], text)
        if failed:
            obs = Observation(status=0, error=failed)
            return TurnResult(n, turn, sent, obs, [CheckResult("agent", f"{turn.agent} done", failed, False, turn.where)])
        obs = await console.customer_view(sender, token, after)
        obs.by_agent, obs.customer_texts = True, list(typed)
        if obs.error is not None:
            return TurnResult(n, turn, sent, obs, [CheckResult("reply", "the customer's view", obs.error, False, turn.where)])
        return TurnResult(n, turn, sent, obs, [self._check(c, obs, bindings) for c in turn.checks])

    @staticmethod
    def _bound(check: Check, bindings: dict[str, dict[str, str]]) -> Check:
        return Check(check.key, substitute(check.expected, bindings, escape=check.key == "text_matches"), check.where)

    @classmethod
    def _check(cls, check: Check, obs: Observation, bindings: dict[str, dict[str, str]]) -> CheckResult:
        bound = cls._bound(check, bindings)
        verdict = CHECKS[check.key].evaluate(bound.expected, obs)
        return CheckResult(check.key, bound.expected, verdict.got, verdict.ok, check.where)

    async def _snapshot(self, s: Scenario, bindings: dict[str, dict[str, str]]) -> dict[str, Any] | None:
        """Before the first turn, for ``other_orders_unchanged``: the orders no scenario may change."""
        if not any(sc.field == "other_orders_unchanged" for sc in s.store):
            return None
        db = self.target.database
        watched = await asyncio.to_thread(db.watched_orders, [b["order_id"] for b in bindings.values()])
        return await asyncio.to_thread(db.order_snapshot, watched)

    async def _conclude(self, s: Scenario, sender: str, bindings: dict[str, dict[str, str]], result: ScenarioResult,
                        before: dict[str, Any] | None = None) -> None:
        db = self.target.database
        kb_rows = await asyncio.to_thread(db.kb_rows, sender)
        tickets = await asyncio.to_thread(db.tickets, sender)
        resolution = resolve([t.observation for t in result.turns], kb_rows, tickets)
        result.resolution = resolution
        where = s.outcome.where or s.where
        if s.outcome.resolved_by is not None:
            result.outcome_checks.append(CheckResult(
                "resolved_by", s.outcome.resolved_by, f"{resolution.resolved_by} ({resolution.evidence})",
                resolution.resolved_by == s.outcome.resolved_by, where))
        if s.outcome.handoff_reason is not None:
            if tickets is None:
                got: Any = "this system records no handoff tickets (table handoff_tickets is absent)"
                ok = False
            else:
                got, ok = resolution.handoff_reasons, s.outcome.handoff_reason in resolution.handoff_reasons
            result.outcome_checks.append(CheckResult("handoff_reason", s.outcome.handoff_reason, got, ok, where))
        for cc in s.conversation:
            verdict = await self._conversation_check(cc, sender, bindings, result, tickets)
            shown = substitute(_plain_check(cc.expected), bindings)
            result.conversation_checks.append(CheckResult(cc.key, shown, verdict.got, verdict.ok, cc.where))
        reserved = [b["order_id"] for b in bindings.values()]
        for sc in s.store:
            expected = substitute(sc.expected, bindings)
            if sc.field == "other_orders_unchanged":
                after = await asyncio.to_thread(db.order_snapshot, list(before or {}))
                verdict = effects.other_orders_verdict(before or {}, after, await self._writes(sender, result), reserved)
            else:
                facts = await asyncio.to_thread(db.order_facts, bindings[sc.order]["order_id"])
                verdict = effects.store_verdict(sc.field, expected, facts)
            result.store_checks.append(CheckResult(f"store.{sc.order}.{sc.field}", expected, verdict.got, verdict.ok, sc.where))

    async def _conversation_check(self, cc: ScenarioCheck, sender: str, bindings: dict[str, dict[str, str]],
                                  result: ScenarioResult, tickets: list[dict[str, Any]] | None) -> Verdict:
        observations = [t.observation for t in result.turns]
        if cc.key in EVALUATE:
            return EVALUATE[cc.key]([self._bound(c, bindings) for c in cc.expected], observations)
        if cc.key == "ticket":
            return effects.ticket_verdict(substitute(cc.expected, bindings), tickets)
        if cc.key == "side_effects.rating_stored":
            got = effects.rating_stored(tickets)
            scores = [t.get("csat_score") for t in tickets or []]
            return Verdict(got == cc.expected, f"ratings {scores}" if tickets else "no handoff ticket")
        # side_effects.password_reset_email
        db = self.target.database
        ids = effects.identifiers([t.sent.get("text") or "" for t in result.turns if t.turn.agent is None],
                                  [o.understood.slots for o in observations if o.understood])
        since = await asyncio.to_thread(db.first_message_at, sender)
        sent = await asyncio.to_thread(db.password_reset_emails, ids, since)
        got = f"{len(sent)} written ({', '.join(sent)})" if sent else f"none written for {sorted(ids) or 'no account named'}"
        return Verdict(bool(sent) == cc.expected, got)

    async def _writes(self, sender: str, result: ScenarioResult) -> list[tuple[str, list[str]]]:
        """Write actions of this conversation and the orders they named: ``action_runs``, and the
        order slot after each turn where one ran."""
        runs = await asyncio.to_thread(self.target.database.write_runs, sender)
        for t in result.turns:
            u = t.observation.understood
            if u is not None:
                runs += [(a, [str(u.slots.get("order_id") or "")]) for a in u.actions if a in effects.WRITE_ACTIONS]
        return runs


def _plain_check(expected: Any) -> Any:
    """A whole-conversation check's expectation as plain data (eventually/never: key → value)."""
    if isinstance(expected, tuple) and all(isinstance(c, Check) for c in expected):
        return {c.key: _plain(c.expected) for c in expected}
    return expected
