"""The action server, mounted in the gateway: rasa-sdk's executor behind POST /actions/webhook.

Running it in-process saves a third process and lets the actions share the gateway's database
pool. The wire protocol is rasa-sdk's own (the same JSON Rasa sends to `rasa run actions`).

Only our Rasa may call it: the call must carry ``X-Action-Token`` (settings.action_server_token,
derived from the master secret unless set; the embedded Rasa gets it through its environment and
bot/endpoints.yml), compared in constant time before the body is read. The body names a tracker
that the actions would otherwise believe (a forged ``verified: true``), so without the token
nothing runs. Each action runs once per customer message (bot/actions/runs.py).
"""

from __future__ import annotations

import json
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionMissingDomainException, ActionNotFoundException

from api_errors import ApiError
from bot.actions import runtime
from bot.actions.runs import ActionRuns, run_key
from deps import require_action_token

# Only our Rasa may call (``deps.require_action_token``), checked before the body is read.
router = APIRouter(dependencies=[Depends(require_action_token)])
# A call carries the whole tracker and domain: far more than a chat message, still bounded.
MAX_CALL_BYTES = 8 * 1024 * 1024
_executor: ActionExecutor | None = None


def executor() -> ActionExecutor:
    global _executor
    if _executor is None:
        _executor = ActionExecutor()
        _executor.register_package("bot.actions")
    return _executor


class ActionResult(BaseModel):
    """rasa-sdk's answer to an action call (``null`` for an action Rasa already had the answer of)."""

    events: list[dict[str, Any]]
    responses: list[dict[str, Any]]


class ActionFailed(BaseModel):
    """rasa-sdk's refusal (400 rejected, 404 unknown action, 449 the domain is needed)."""

    error: str
    action_name: str


class ActionName(BaseModel):
    name: str


async def _read_call(request: Request) -> dict[str, Any]:
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_CALL_BYTES):
        raise ApiError(413, f"an action call is limited to {MAX_CALL_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CALL_BYTES:
            raise ApiError(413, f"an action call is limited to {MAX_CALL_BYTES} bytes")
    try:
        call = json.loads(body)
    except ValueError as err:
        raise ApiError(400, "the action call must be JSON") from err
    if not isinstance(call, dict):
        raise ApiError(400, "the action call must be a JSON object")
    return call


_action_runs: ActionRuns | None = None


def _runs() -> ActionRuns | None:
    """One ActionRuns per database (its write counter paces the pruning of old rows)."""
    global _action_runs
    sessions = runtime.services().sessions
    if sessions is None:
        return None
    if _action_runs is None or _action_runs.sessions is not sessions:
        _action_runs = ActionRuns(sessions)
    return _action_runs


@router.post("/actions/webhook", include_in_schema=False, response_model=ActionResult | None,
             responses={400: {"model": ActionFailed}, 404: {"model": ActionFailed}, 449: {"model": ActionFailed}})
async def run_action(request: Request) -> JSONResponse:
    action_call = await _read_call(request)
    runs, key = _runs(), run_key(action_call)
    if runs is not None and key is not None:
        stored = await to_thread.run_sync(runs.get, key)
        if stored is not None:  # Rasa asked again for a message it already had answered: same result
            return JSONResponse(stored or None)
    try:
        result = await executor().run(action_call)
    except ActionExecutionRejection as err:
        return JSONResponse({"error": err.message, "action_name": err.action_name}, status_code=400)
    except ActionNotFoundException as err:
        return JSONResponse({"error": err.message, "action_name": err.action_name}, status_code=404)
    except ActionMissingDomainException as err:
        return JSONResponse({"error": err.message, "action_name": err.action_name}, status_code=449)
    body = result.model_dump() if result else None
    if runs is not None and key is not None:
        sender = str((action_call.get("tracker") or {}).get("sender_id") or "")
        await to_thread.run_sync(runs.put, key, sender, str(action_call.get("next_action")), body)
    return JSONResponse(body)


@router.get("/actions", include_in_schema=False, response_model=list[ActionName])
async def list_actions() -> list[dict[str, str]]:
    return [{"name": name} for name in executor().actions]
