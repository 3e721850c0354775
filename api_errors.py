"""The API's one error type and its one handler.

Every refusal a route, a dependency or a service makes is an ``ApiError(status, message)``: the
services' own errors (``handoff.errors.HandoffError``, the ops errors in ``ops/``) are subclasses,
so a route calls a service and lets its error through; nothing maps errors route by route.
``handle`` turns any of them into ``{"detail": message}`` with the status (and headers, e.g.
``Retry-After``); ``server.create_app`` registers it once.

``ApiError`` is a FastAPI ``HTTPException``, so a router mounted on a bare ``FastAPI()`` (tests,
tools) answers the same body through FastAPI's own handler. ``str(err)`` is the message alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

__all__ = ["ERROR_RESPONSES", "ApiError", "ErrorBody", "handle"]

log = logging.getLogger(__name__)


class ApiError(HTTPException):
    """A request the API refuses: ``status`` is the HTTP status, ``message`` the body's ``detail``.

    ``detail`` may be structured (``{"message": ..., "errors": [...]}``) where a client needs the
    parts, e.g. the files of an upload that could not be read.
    """

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None, detail: Any = None
    ) -> None:
        super().__init__(status, message if detail is None else detail, dict(headers) if headers else None)
        self.args = (message,)
        self.message = message

    @property
    def status(self) -> int:
        return self.status_code

    def __str__(self) -> str:
        return self.message


class ErrorBody(BaseModel):
    """The body of every refusal (4xx/5xx) the routes make."""

    detail: str | dict[str, Any]


# For ``responses=`` of routers: the error statuses their routes answer, with the body above.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "not authenticated"},
    403: {"model": ErrorBody, "description": "not allowed"},
    404: {"model": ErrorBody, "description": "not found"},
    409: {"model": ErrorBody, "description": "conflicts with the current state"},
    503: {"model": ErrorBody, "description": "not ready yet; retry shortly"},
}


async def handle(request: Request, err: Exception) -> JSONResponse:
    """The one mapping of ``ApiError`` (and every subclass) to a response."""
    assert isinstance(err, ApiError)
    if err.status_code >= 500:
        log.warning(
            "request refused", extra={"path": request.url.path, "status": err.status_code, "detail": err.message}
        )
    return JSONResponse({"detail": err.detail}, status_code=err.status_code, headers=err.headers)
