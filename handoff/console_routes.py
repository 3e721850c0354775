"""The agent console's static files: ``GET /console`` (the page), its scripts (``/console/console_base.js``,
``/console/console_ticket.js``, ``/console/console.js``, loaded in that order) and ``/console/console.css``.

Plain files from ``handoff/console/`` (no build step, so ``make run`` needs no Node.js). The page
works only with the agent API on the same origin (``/api/v1/agent/...``, session cookie), so every
response carries a strict Content-Security-Policy: scripts, styles and connections from this
origin only, no inline script, no framing. That is the second guard behind the console's own rule
of rendering customer text with ``textContent`` only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from api_errors import ApiError

router = APIRouter(tags=["agent console"])

CONSOLE_DIR = Path(__file__).resolve().parent / "console"
JS = "text/javascript; charset=utf-8"
FILES = {
    "console_base.js": JS,
    "console_ticket.js": JS,
    "console.js": JS,
    "console.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self' ws: wss:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (cheap 304s): an agent always runs the console that matches the API.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    etag: str


@lru_cache(maxsize=8)
def _read(name: str, mtime_ns: int) -> StaticFile:
    body = (CONSOLE_DIR / name).read_bytes()
    return StaticFile(body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')


def _serve(request: Request, name: str, media_type: str) -> Response:
    path = CONSOLE_DIR / name
    if not path.is_file():
        raise ApiError(404, f"console file {name} is missing from this installation")
    f = _read(name, path.stat().st_mtime_ns)  # re-read only when the file changes
    headers = {**SECURITY_HEADERS, "ETag": f.etag}
    if request.headers.get("if-none-match") == f.etag:
        return Response(status_code=304, headers=headers)
    return Response(f.body, media_type=media_type, headers=headers)


@router.get("/console", include_in_schema=False, response_class=HTMLResponse)
async def console_page(request: Request) -> Response:
    """The console (sign-in, queue, chat, context); all data comes from the agent API."""
    return _serve(request, "index.html", "text/html; charset=utf-8")


@router.get("/console/", include_in_schema=False, response_class=RedirectResponse)
async def console_slash() -> RedirectResponse:
    return RedirectResponse("/console", status_code=308)


@router.get("/console/{name}", include_in_schema=False, response_class=Response)
async def console_asset(name: str, request: Request) -> Response:
    media_type = FILES.get(name)
    if media_type is None:
        raise ApiError(404, "no such console file")
    return _serve(request, name, media_type)
