"""The ops page: ``GET /ops`` and its two files, plain static files from ``ops/static/``.

No build step and no third-party script: the page talks only to ``/api/v1/ops`` on the same origin
(admin token in the page's session storage, or the agent console's admin session cookie), and every
response carries a strict Content-Security-Policy (same-origin scripts, styles and connections).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from api_errors import ApiError

router = APIRouter(tags=["support ops"])

STATIC = Path(__file__).resolve().parent / "static"
FILES = {"index.html": "text/html; charset=utf-8", "ops.js": "text/javascript; charset=utf-8",
         "ops.css": "text/css; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _file(name: str) -> Response:
    path = STATIC / name
    if name not in FILES or not path.is_file():
        raise ApiError(404, "no such ops page file")
    return Response(path.read_bytes(), media_type=FILES[name], headers=HEADERS)


@router.get("/ops", include_in_schema=False, response_class=HTMLResponse)
async def page() -> Response:
    return _file("index.html")


@router.get("/ops/", include_in_schema=False, response_class=RedirectResponse)
async def page_slash() -> RedirectResponse:
    return RedirectResponse("/ops", status_code=308)


@router.get("/ops/{name}", include_in_schema=False, response_class=Response)
async def asset(name: str) -> Response:
    return _file(name)
