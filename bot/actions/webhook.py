"""The action server, mounted in the gateway: rasa-sdk's executor behind POST /actions/webhook.

Running it in-process saves a third process and lets the actions share the gateway's database
pool. The wire protocol is rasa-sdk's own (the same JSON Rasa sends to `rasa run actions`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionMissingDomainException, ActionNotFoundException

router = APIRouter()
_executor: ActionExecutor | None = None


def executor() -> ActionExecutor:
    global _executor
    if _executor is None:
        _executor = ActionExecutor()
        _executor.register_package("bot.actions")
    return _executor


@router.post("/actions/webhook", include_in_schema=False)
async def run_action(action_call: dict[str, Any] = Body(...)) -> JSONResponse:  # noqa: B008
    try:
        result = await executor().run(action_call)
    except ActionExecutionRejection as err:
        return JSONResponse({"error": err.message, "action_name": err.action_name}, status_code=400)
    except ActionNotFoundException as err:
        return JSONResponse({"error": err.message, "action_name": err.action_name}, status_code=404)
    except ActionMissingDomainException as err:
        return JSONResponse({"error": err.message, "action_name": err.action_name}, status_code=449)
    return JSONResponse(result.model_dump() if result else None)


@router.get("/actions", include_in_schema=False)
async def list_actions() -> list[dict[str, str]]:
    return [{"name": name} for name in executor().actions]
