"""Load scenario files: YAML → ``Scenario`` objects, every problem reported with file and line.

PyYAML's composer keeps each node's position, so the loader walks the node tree itself rather
than the plain data ``yaml.safe_load`` would give: an unknown key, a duplicate key, a missing
``turns`` or an impossible check value is an error at its own line, and all errors of all files
are collected before anything runs. A scenario file never passes silently because of a typo.

The customer's words (``user``, ``payload``, ``click``) are taken exactly as written, so that
``user: yes`` is the text "yes", not YAML's boolean, and ``user: 3348917502`` stays a string.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from scenarios.agent import AGENT_ACTIONS
from scenarios.checks import CHECKS
from scenarios.effects import SIDE_EFFECTS, TICKET_FIELDS, parse_side_effect, parse_store_field, parse_ticket_field
from scenarios.model import LANGUAGES, RESOLUTIONS, Check, Location, Outcome, Scenario, ScenarioCheck, StoreCheck, Turn
from scenarios.pools import FIXTURE_FIELDS, POOLS, STORE_FIELDS

SCENARIO_KEYS = ("name", "language", "channel", "uses", "turns", "outcome", "store", "tags", "eventually", "never",
                 "ticket", "side_effects")
TURN_KEYS = ("user", "payload", "click", "agent", "text", "language", "expect")
OUTCOME_KEYS = ("resolved_by", "handoff_reason")
SUFFIXES = (".yml", ".yaml")
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


@dataclass(frozen=True)
class ScenarioError:
    where: Location
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class LoadError(Exception):
    """One or more scenario files are malformed; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[ScenarioError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = list(errors)


class _Bad(Exception):
    def __init__(self, node: Node | None, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class _FileLoader:
    """Walks one file's node tree; problems go to ``self.errors`` and the walk goes on."""

    def __init__(self, path: Path, channels: Sequence[str]) -> None:
        self.path = path
        self.channels = channels
        self.errors: list[ScenarioError] = []
        self._constructor = SafeConstructor()

    # --- helpers -------------------------------------------------------------------------------
    def at(self, node: Node | None) -> Location:
        return Location(self.path, node.start_mark.line + 1 if node is not None else 1)

    def error(self, node: Node | None, message: str) -> None:
        self.errors.append(ScenarioError(self.at(node), message))

    def value(self, node: Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def mapping(self, node: Node, what: str, allowed: Sequence[str]) -> dict[str, tuple[Node, Node]]:
        """key → (key node, value node); unknown and duplicate keys are errors at the key's line."""
        if not isinstance(node, MappingNode):
            raise _Bad(node, f"{what} must be a mapping (key: value)")
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                self.error(key_node, f"{what}: keys must be plain names")
                continue
            if key in out:
                self.error(key_node, f"{what}: duplicate key {key!r} (first at line {out[key][0].start_mark.line + 1})")
                continue
            if key not in allowed:
                self.error(key_node, f"{what}: unknown key {key!r}; allowed: {', '.join(allowed)}")
                continue
            out[key] = (key_node, value_node)
        return out

    def text(self, node: Node, what: str) -> str:
        """A scalar exactly as written (``yes`` stays "yes", ``0042`` stays "0042")."""
        if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null" and node.value in ("", "~", "null"):
            raise _Bad(node, f"{what} must be a non-empty string")
        value = str(node.value)
        if not value.strip():
            raise _Bad(node, f"{what} must be a non-empty string")
        return value

    # --- the file ------------------------------------------------------------------------------
    def load(self, source: str) -> list[Scenario]:
        try:
            root = yaml.compose(source, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = mark.line + 1 if mark is not None else 1
            self.errors.append(ScenarioError(Location(self.path, line), f"not valid YAML: {err.problem or err}"))
            return []
        if root is None:
            self.errors.append(ScenarioError(Location(self.path, 1), "empty file: expected a list of scenarios"))
            return []
        if not isinstance(root, SequenceNode):
            self.error(root, "a scenario file is a list of scenarios (each item starts with '- name: ...')")
            return []
        scenarios = []
        for item in root.value:
            try:
                scenario = self.scenario(item)
            except _Bad as bad:
                self.error(bad.node, bad.message)
                continue
            if scenario is not None:
                scenarios.append(scenario)
        return scenarios

    def scenario(self, node: Node) -> Scenario | None:
        before = len(self.errors)
        keys = self.mapping(node, "scenario", SCENARIO_KEYS)
        if "name" not in keys:
            raise _Bad(node, "scenario without a name")
        name = self.text(keys["name"][1], "name")
        uses = self.uses(keys["uses"][1]) if "uses" in keys else {}
        if "turns" not in keys:
            raise _Bad(node, f"scenario {name!r} has no turns")
        turns_node = keys["turns"][1]
        if not isinstance(turns_node, SequenceNode) or not turns_node.value:
            raise _Bad(turns_node, "turns must be a non-empty list")
        turns = []
        for t in turns_node.value:
            try:
                turns.append(self.turn(t, uses))
            except _Bad as bad:
                self.error(bad.node, bad.message)
        language, given = self.language(keys.get("language"), turns)
        channel = "rest"
        if "channel" in keys:
            channel = self.text(keys["channel"][1], "channel")
            if channel not in self.channels:
                self.error(keys["channel"][1], f"channel {channel!r} has no driver; available: {', '.join(self.channels)}")
        outcome = self.outcome(keys["outcome"][1]) if "outcome" in keys else Outcome()
        store = self.store(keys["store"][1], uses) if "store" in keys else ()
        conversation = self.conversation(keys, uses)
        tags: tuple[str, ...] = ()
        if "tags" in keys:
            raw = self.value(keys["tags"][1])
            if not isinstance(raw, list) or not all(isinstance(t, str) and t for t in raw):
                self.error(keys["tags"][1], "tags must be a list of strings")
            else:
                tags = tuple(raw)
        if len(self.errors) > before:
            return None
        return Scenario(
            name=name, where=self.at(node), language=language, language_given=given, channel=channel,
            turns=tuple(turns), outcome=outcome, uses=uses, store=store, tags=tags, conversation=conversation,
        )

    def language(self, entry: tuple[Node, Node] | None, turns: Sequence[Turn]) -> tuple[str, bool]:
        if entry is not None:
            value = self.value(entry[1])
            if value not in LANGUAGES:
                self.error(entry[1], f"language must be one of {', '.join(LANGUAGES)}")
                return "en", True
            return str(value), True
        return detect_language(t.user for t in turns if t.user), False

    def uses(self, node: Node) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, (key_node, value_node) in self.mapping(node, "uses", _AnyKeys()).items():
            if not _NAME.match(name):
                self.error(key_node, f"uses: {name!r} is not a valid placeholder name")
                continue
            pool = self.value(value_node)
            if pool not in POOLS:
                self.error(value_node, f"uses: unknown order pool {pool!r}; pools: {', '.join(POOLS)}")
                continue
            out[name] = str(pool)
        return out

    def placeholders(self, node: Node, value: Any, uses: dict[str, str]) -> None:
        """Every ${name.field} must name an order in ``uses`` and a known field."""
        for s in _strings_in(value):
            for match in PLACEHOLDER.finditer(s):
                name, _, fld = match.group(1).partition(".")
                if name not in uses:
                    self.error(node, f"placeholder ${{{match.group(1)}}}: {name!r} is not declared in 'uses'")
                elif fld not in FIXTURE_FIELDS:
                    self.error(node, f"placeholder ${{{match.group(1)}}}: unknown field {fld!r}; fields: {', '.join(FIXTURE_FIELDS)}")

    def turn(self, node: Node, uses: dict[str, str]) -> Turn:
        keys = self.mapping(node, "turn", TURN_KEYS)
        said = [k for k in ("user", "payload", "click", "agent") if k in keys]
        if len(said) != 1:
            raise _Bad(node, "a turn has exactly one of 'user' (typed text), 'payload' (a button's payload), "
                             "'click' (an offered button) or 'agent' (a person's action)")
        kind = said[0]
        what = self.text(keys[kind][1], kind)
        self.placeholders(keys[kind][1], what, uses)
        extra: dict[str, str] = {}
        if kind == "agent":
            if what not in AGENT_ACTIONS:
                raise _Bad(keys["agent"][1], f"agent: unknown action {what!r}; one of {', '.join(AGENT_ACTIONS)}")
            if (what == "reply") != ("text" in keys):
                raise _Bad(node, "'text' goes with 'agent: reply' (what the agent writes), and only there")
            if "text" in keys:
                extra["text"] = self.text(keys["text"][1], "text")
            if "language" in keys:
                raise _Bad(keys["language"][0], "'language' is for the customer's turns")
        elif "text" in keys:
            raise _Bad(keys["text"][0], "'text' goes with 'agent: reply' (a customer's words go in 'user')")
        language = None
        if "language" in keys:
            language = self.value(keys["language"][1])
            if language not in LANGUAGES:
                self.error(keys["language"][1], f"language must be one of {', '.join(LANGUAGES)}")
        checks = self.checks(keys["expect"][1], "expect", uses) if "expect" in keys else []
        return Turn(where=self.at(node), language=language, checks=tuple(checks), **{kind: what}, **extra)

    def checks(self, node: Node, what: str, uses: dict[str, str]) -> list[Check]:
        """A mapping of per-turn checks (``expect``, ``eventually``, ``never``), each parsed by its own parser."""
        checks: list[Check] = []
        for key, (key_node, value_node) in self.mapping(node, what, tuple(CHECKS)).items():
            raw = self.value(value_node)
            try:
                parsed = CHECKS[key].parse(raw)
            except ValueError as err:
                self.error(value_node, f"{what}: {err}" if what != "expect" else str(err))
                continue
            self.placeholders(value_node, parsed, uses)
            checks.append(Check(key, parsed, self.at(key_node)))
        return checks

    def conversation(self, keys: dict[str, tuple[Node, Node]], uses: dict[str, str]) -> tuple[ScenarioCheck, ...]:
        """The checks on the whole conversation: eventually, never, ticket, side_effects."""
        out: list[ScenarioCheck] = []
        for key in ("eventually", "never"):
            if key in keys:
                key_node, value_node = keys[key]
                if not isinstance(value_node, MappingNode) or not value_node.value:
                    self.error(value_node, f"{key} must be a non-empty mapping of per-turn checks")
                    continue
                checks = self.checks(value_node, key, uses)
                if checks:
                    out.append(ScenarioCheck(key, tuple(checks), self.at(key_node)))
        if "ticket" in keys:
            key_node, value_node = keys["ticket"]
            before = len(self.errors)
            fields = self.mapping(value_node, "ticket", TICKET_FIELDS)
            if not fields and len(self.errors) == before:
                self.error(value_node, "ticket must name at least one of " + ", ".join(TICKET_FIELDS))
            expected: dict[str, tuple[str, ...]] = {}
            for name, (_, fnode) in fields.items():
                try:
                    expected[name] = parse_ticket_field(name, self.value(fnode))
                except ValueError as err:
                    self.error(fnode, str(err))
                    continue
                self.placeholders(fnode, expected[name], uses)
            if expected:
                out.append(ScenarioCheck("ticket", expected, self.at(key_node)))
        if "side_effects" in keys:
            value_node = keys["side_effects"][1]
            before = len(self.errors)
            fields = self.mapping(value_node, "side_effects", SIDE_EFFECTS)
            if not fields and len(self.errors) == before:
                self.error(value_node, "side_effects must name at least one of " + ", ".join(SIDE_EFFECTS))
            for name, (fkey, fnode) in fields.items():
                try:
                    out.append(ScenarioCheck(f"side_effects.{name}", parse_side_effect(name, self.value(fnode)), self.at(fkey)))
                except ValueError as err:
                    self.error(fnode, str(err))
        return tuple(out)

    def outcome(self, node: Node) -> Outcome:
        keys = self.mapping(node, "outcome", OUTCOME_KEYS)
        resolved_by = handoff_reason = None
        if "resolved_by" in keys:
            resolved_by = self.value(keys["resolved_by"][1])
            if resolved_by not in RESOLUTIONS:
                self.error(keys["resolved_by"][1], f"resolved_by must be one of {', '.join(RESOLUTIONS)}")
        if "handoff_reason" in keys:
            handoff_reason = self.text(keys["handoff_reason"][1], "handoff_reason")
            if resolved_by not in (None, "human"):
                self.error(keys["handoff_reason"][1], "handoff_reason needs resolved_by: human")
        return Outcome(resolved_by=resolved_by, handoff_reason=handoff_reason, where=self.at(node))

    def store(self, node: Node, uses: dict[str, str]) -> tuple[StoreCheck, ...]:
        checks: list[StoreCheck] = []
        for name, (key_node, value_node) in self.mapping(node, "store", _AnyKeys()).items():
            if name not in uses:
                self.error(key_node, f"store: {name!r} is not an order declared in 'uses'")
                continue
            for fld, (fkey, fvalue) in self.mapping(value_node, f"store.{name}", STORE_FIELDS).items():
                expected = self.value(fvalue)
                if isinstance(expected, list | dict):
                    self.error(fvalue, f"store.{name}.{fld} must be a single value")
                    continue
                try:
                    expected = parse_store_field(fld, expected, any(PLACEHOLDER.search(s) for s in _strings_in(expected)))
                except ValueError as err:
                    self.error(fvalue, f"store.{name}.{fld}: {err}")
                    continue
                self.placeholders(fvalue, expected, uses)
                checks.append(StoreCheck(name, fld, expected, self.at(fkey)))
        return tuple(checks)


class _AnyKeys(tuple[str, ...]):
    """``allowed`` for mappings whose keys are the author's own names."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str)


def _strings_in(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings_in(v)


def detect_language(texts: Iterable[str]) -> str:
    """A scenario without ``language``: each message votes by its script (Han → zh, Cyrillic → ru,
    Latin words → en; emails and numbers say nothing); the majority wins, the first vote breaks ties."""
    votes: list[str] = []
    for t in texts:
        t = re.sub(r"\S+@\S+|\d+", " ", t)
        han, cyr = len(_HAN.findall(t)), len(_CYRILLIC.findall(t))
        if han and han >= cyr:
            votes.append("zh")
        elif cyr:
            votes.append("ru")
        elif re.search(r"[A-Za-z]{2,}", t):
            votes.append("en")
    if not votes:
        return "en"
    counts = Counter(votes)
    return max(dict.fromkeys(votes), key=lambda lang: counts[lang])


def load_text(source: str, path: Path, channels: Sequence[str] = ("rest",)) -> tuple[list[Scenario], list[ScenarioError]]:
    loader = _FileLoader(path, channels)
    scenarios = loader.load(source)
    return scenarios, loader.errors


def discover(paths: Iterable[Path]) -> tuple[list[Path], list[ScenarioError]]:
    """Files named on the command line, and every .yml/.yaml under the folders named there."""
    files: list[Path] = []
    errors: list[ScenarioError] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix in SUFFIXES and f.is_file())
            if not found:
                errors.append(ScenarioError(Location(p, 1), "no scenario files (.yml, .yaml) in this folder"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            errors.append(ScenarioError(Location(p, 1), "no such file or folder"))
    return list(dict.fromkeys(files)), errors


def load_paths(paths: Iterable[Path], channels: Sequence[str] = ("rest",)) -> list[Scenario]:
    """All scenarios under ``paths``; raises ``LoadError`` listing every problem in every file."""
    files, errors = discover(paths)
    scenarios: list[Scenario] = []
    for f in files:
        try:
            source = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            errors.append(ScenarioError(Location(f, 1), f"cannot read: {err}"))
            continue
        found, problems = load_text(source, f, channels)
        scenarios.extend(found)
        errors.extend(problems)
    seen: dict[str, Scenario] = {}
    for s in scenarios:
        if s.name in seen:
            errors.append(ScenarioError(s.where, f"duplicate scenario name {s.name!r} (first at {seen[s.name].where})"))
        seen.setdefault(s.name, s)
    if errors:
        raise LoadError(errors)
    return scenarios
