"""docs/architecture.md's channel section against the code: every name it draws exists, every
route it draws is mounted, and every registered push channel is drawn."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from channels import registry
from channels.rest import router as rest_router
from channels.widget.routes import router as widget_router

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
# Classes the drawings name without their module.
CLASS_MODULES = ("channels.channel", "channels.relay", "channels.outbox", "channels.telegram", "channels.wechat",
                 "channels.widget.hub", "conversations.service", "conversations.rasa_client")


def section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Channels: a turn's path per channel")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def resolve(dotted: str) -> Any:
    """``pkg.module.Name.attr`` → the object, importing the longest module prefix."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:n]))
        except ModuleNotFoundError:
            continue
        for attr in parts[n:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_module_path_in_the_section_exists() -> None:
    names = set(re.findall(r"\bchannels(?:\.[A-Za-z_]+)+", section()))
    assert len(names) > 10
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except (ModuleNotFoundError, AttributeError):
            missing.append(name)
    assert missing == []


def test_every_class_method_in_the_section_exists() -> None:
    pairs = set(re.findall(r"\b([A-Z][A-Za-z]+)\.([a-z_]+)\b", section()))
    assert ("WeChatChannel", "receive") in pairs
    classes = {}
    for module in CLASS_MODULES:
        classes.update({k: v for k, v in vars(importlib.import_module(module)).items() if isinstance(v, type)})
    missing = [f"{cls}.{attr}" for cls, attr in sorted(pairs) if cls not in classes or not hasattr(classes[cls], attr)]
    assert missing == []


def test_every_route_drawn_is_mounted() -> None:
    mounted = {(method, route.path) for r in (rest_router, widget_router, *registry.routers())
               for route in r.routes for method in (getattr(route, "methods", None) or {"GET"})}
    drawn = set(re.findall(r"^(GET|POST) (/\S+)", section(), flags=re.MULTILINE))
    assert len(drawn) >= 5
    assert drawn - mounted == set()


@pytest.mark.parametrize("channel", registry.PUSH_CHANNELS, ids=lambda c: c.name)
def test_every_push_channel_is_drawn(channel: type) -> None:
    assert f"{channel.__name__}.render" in section() and f"{channel.__name__}.deliver" in section()
