"""``/docs``: FastAPI's Swagger UI served from the pinned ``fastapi-offline`` package, not a CDN.

FastAPI's own ``/docs`` loads an unpinned ``swagger-ui-dist`` script from jsdelivr: whoever controls
that CDN (or the network to it) runs script on the gateway's origin, where the console's session
cookie lives. Here the script, stylesheet and icon come from the installed package (Swagger UI 5,
which reads OpenAPI 3.1; only those three files are served, not its ReDoc bundle), and the page
carries a Content-Security-Policy that allows scripts from this origin and the page's one inline
script (by hash) only. ``/openapi.json`` stays where FastAPI puts it; ``/redoc`` is off.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from api_errors import ApiError

STATIC = "/docs/static"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def _csp(html: bytes) -> str:
    inline = re.findall(rb"<script>(.*?)</script>", html, re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in inline)
    # Swagger UI sets style attributes from script and draws its icons as data: SVGs.
    return (f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def install(app: FastAPI) -> None:
    """Add ``/docs`` to an app created with ``docs_url=None, redoc_url=None``."""
    html = bytes(get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js", swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon.png", swagger_ui_parameters={"validatorUrl": None},
    ).body)  # fmt: skip
    page_headers = {**HEADERS, "Content-Security-Policy": _csp(html)}

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers=page_headers)

    @app.get(STATIC + "/{name}", include_in_schema=False, response_class=FileResponse)
    async def docs_file(name: str) -> FileResponse:
        if name not in FILES:
            raise ApiError(404, "no such docs file")
        return FileResponse(ASSETS / name, media_type=FILES[name], headers=HEADERS)
