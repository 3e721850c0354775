"""The API's contract: every JSON route declares its body (so ``/docs`` is the contract), and every
refusal is one error type answered by one handler (``api_errors.py``), registered once in ``server.py``.

No lifespan runs: the app is built and its routes are read (and a few probe routes called) without
Rasa, storage or the knowledge base.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi import routing as fastapi_routing
from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

import api_errors
from api_errors import ApiError
from handoff.errors import HandoffError
from handoff.lifecycle import Event, IllegalTransition, StaleState, State
from ops.annotations import AnnotationError
from ops.drafts import DraftError
from ops.inbox import InboxError
from ops.kb_versions import KbVersionError
from ops.registry import RegistryError
from ops.training import JobError
from server import create_app
from settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ROUTE_MODULES = [
    "server.py", "api_docs.py", "deps.py", "ops/page.py", "ops/api.py", "kb_index/admin_routes.py", "channels/channel.py",
    "channels/telegram.py", "channels/rest.py", "channels/registry.py", "channels/webhook.py", "channels/wechat.py",
    "channels/widget/routes.py", "bot/actions/webhook.py", "handoff/console_routes.py", "handoff/api.py",
    "handoff/customer_api.py",
]  # fmt: skip
SERVICE_ERRORS = [HandoffError, InboxError, AnnotationError, DraftError, RegistryError, JobError, KbVersionError]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("data")))


def _http_routes(app: FastAPI) -> list[Any]:
    return [
        ctx
        for ctx in fastapi_routing.iter_route_contexts(app.routes)
        if isinstance(ctx.original_route, fastapi_routing.APIRoute)
    ]


def _loose(tp: Any) -> bool:
    """True for a body type that says nothing: missing, ``Any``, or a bare/Any-valued dict or list."""
    if tp is None or tp is Any or tp in (dict, list, object):
        return True
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return False
    return any(_loose(arg) for arg in typing.get_args(tp) if arg is not type(None))


def _response_class(ctx: Any) -> tuple[type, bool]:
    """(the route's response class, whether the route declared it)."""
    declared = ctx.response_class
    if isinstance(declared, DefaultPlaceholder):
        return declared.value, False
    return declared, True


def test_every_json_route_declares_its_response_model(app: FastAPI) -> None:
    routes = _http_routes(app)
    assert len(routes) > 60  # every router is mounted (the walk is not looking at an empty app)
    untyped, undeclared = [], []
    for ctx in routes:
        where = f"{','.join(sorted(ctx.original_route.methods))} {ctx.path}"
        cls, declared = _response_class(ctx)
        if issubclass(cls, JSONResponse):
            if _loose(ctx.response_model):
                untyped.append(f"{where} -> {ctx.response_model}")
        elif not declared:
            undeclared.append(where)
    assert not untyped, (
        "JSON routes without a response model (add response_model= or a model annotation):\n" + "\n".join(untyped)
    )
    assert not undeclared, "non-JSON routes must declare their response_class:\n" + "\n".join(undeclared)


def test_the_openapi_document_names_the_bodies(app: FastAPI) -> None:
    schemas = app.openapi()["components"]["schemas"]
    for name in (
        "ChatResponse",
        "TicketDocument",
        "MessageView",
        "Inbox",
        "Job",
        "Hit",
        "Stats",
        "ReplyFrame",
        "ErrorBody",
        "Ready",
    ):
        assert name in schemas, name
    ticket = app.openapi()["paths"]["/api/v1/agent/tickets/{ticket_id}"]["get"]["responses"]
    assert ticket["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TicketDocument"}
    assert ticket["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


def test_one_handler_registered_once(app: FastAPI) -> None:
    assert app.exception_handlers[ApiError] is api_errors.handle
    source = (ROOT / "server.py").read_text(encoding="utf-8")
    assert source.count("add_exception_handler(api_errors.ApiError") == 1
    # No route module raises FastAPI's HTTPException or maps errors itself any more.
    for name in ROUTE_MODULES:
        text = (ROOT / name).read_text(encoding="utf-8")
        assert "HTTPException(" not in text, name
        assert "exception_handler" not in text or name == "server.py", name


@pytest.mark.parametrize("error", SERVICE_ERRORS, ids=lambda e: e.__name__)
def test_every_service_error_is_an_api_error(error: type[Exception]) -> None:
    assert issubclass(error, ApiError)
    err = error(409, "already done")  # type: ignore[call-arg]
    assert err.status == 409 and str(err) == "already done" and err.args == ("already done",)


def _raising(err: Exception) -> Any:
    async def route() -> dict[str, str]:
        raise err

    return route


CASES: list[tuple[str, Exception, int, str, dict[str, str]]] = [
    *[
        (e.__name__, e(409, f"{e.__name__} refused"), 409, f"{e.__name__} refused", {})  # type: ignore[call-arg]
        for e in SERVICE_ERRORS
    ],
    ("IllegalTransition", IllegalTransition(State.BOT, Event.RESOLVE), 409, "", {}),
    ("StaleState", StaleState(State.HUMAN, Event.ASSIGN, "changed meanwhile"), 409, "changed meanwhile", {}),
    ("ApiError", ApiError(429, "slow down", headers={"Retry-After": "7"}), 429, "slow down", {"retry-after": "7"}),
    ("ApiError-structured", ApiError(422, "no article", detail={"message": "no article", "errors": []}), 422, "", {}),
]


@pytest.mark.parametrize(("name", "err", "status", "message", "headers"), CASES, ids=[c[0] for c in CASES])
def test_every_error_class_maps_through_the_one_handler(
    app: FastAPI,
    name: str,
    err: Exception,
    status: int,
    message: str,
    headers: dict[str, str],
) -> None:
    seen: list[Exception] = []

    async def spy(request: Any, exc: Exception) -> Any:
        seen.append(exc)
        return await api_errors.handle(request, exc)

    probe = create_app(app.state.settings)
    assert probe.exception_handlers[ApiError] is api_errors.handle
    probe.exception_handlers[ApiError] = spy  # the same handler, watched
    probe.add_api_route(f"/probe/{name}", _raising(err), methods=["GET"])
    resp = TestClient(probe).get(f"/probe/{name}")
    assert seen == [err]
    assert resp.status_code == status
    body = resp.json()
    assert list(body) == ["detail"]  # the shape every client reads: {"detail": ...}
    if message:
        assert body["detail"] == message
    if isinstance(err, ApiError) and isinstance(err.detail, dict):
        assert body["detail"] == err.detail
    for key, value in headers.items():
        assert resp.headers[key] == value
