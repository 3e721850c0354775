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

import hmac
import json
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionMissingDomainException, ActionNotFoundException

from bot.actions import runtime
from bot.actions.runs import ActionRuns, run_key

router = APIRouter()
TOKEN_HEADER = "x-action-token"
# A call carries the whole tracker and domain: far more than a chat message, still bounded.
MAX_CALL_BYTES = 8 * 1024 * 1024
_executor: ActionExecutor | None = None


def executor() -> ActionExecutor:
    global _executor
    if _executor is None:
        _executor = ActionExecutor()
        _executor.register_package("bot.actions")
    return _executor


def check_token(request: Request) -> None:
    expected = getattr(request.app.state, "action_server_token", "") or ""
    given = request.headers.get(TOKEN_HEADER, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "the action server answers only the bot's Rasa server (X-Action-Token)")


async def _read_call(request: Request) -> dict[str, Any]:
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_CALL_BYTES):
        raise HTTPException(413, f"an action call is limited to {MAX_CALL_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CALL_BYTES:
            raise HTTPException(413, f"an action call is limited to {MAX_CALL_BYTES} bytes")
    try:
        call = json.loads(body)
    except ValueError as err:
        raise HTTPException(400, "the action call must be JSON") from err
    if not isinstance(call, dict):
        raise HTTPException(400, "the action call must be a JSON object")
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


@router.post("/actions/webhook", include_in_schema=False)
async def run_action(request: Request) -> JSONResponse:
    check_token(request)
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


@router.get("/actions", include_in_schema=False)
async def list_actions(request: Request) -> list[dict[str, str]]:
    check_token(request)
    return [{"name": name} for name in executor().actions]
