"""Admin HTTP routes over the live knowledge base: upload, replace, delete, list, search, stats.

Thin routes over ``KnowledgeBase``: it swaps in a new immutable snapshot per write, so searches in
flight (the bot answering customers) never see half an update and nothing needs a restart.
Uploaded files go through the same loaders as the CLI; a file that cannot be read is a 422 with
the loader's reason, and the index is left as it was.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kb_index import KBError, KnowledgeBase, SearchHit, load_path

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ALLOWED_SUFFIXES = {".md", ".markdown", ".html", ".htm", ".txt", ".pdf", ".csv", ".json"}

_bearer = HTTPBearer(auto_error=False)


async def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """Admin access: the configured ADMIN_API_TOKEN as a bearer token, or an admin agent session."""
    configured = request.app.state.settings.admin_api_token.get_secret_value()
    if credentials and configured and secrets.compare_digest(credentials.credentials, configured):
        return "admin-token"
    # Agent console sessions with the admin role (wired by the handoff module when present).
    session_check = getattr(request.app.state, "admin_session_check", None)
    who = await session_check(request) if session_check is not None else None
    if who:
        return str(who)
    if credentials is None:
        raise HTTPException(401, "Admin authentication required: send 'Authorization: Bearer <ADMIN_API_TOKEN>'.")
    raise HTTPException(403, "This token does not grant admin access.")


router = APIRouter(prefix="/api/v1/admin/kb", tags=["knowledge base admin"], dependencies=[Depends(require_admin)])


def _kb(request: Request) -> KnowledgeBase:
    kb: KnowledgeBase | None = getattr(request.app.state, "knowledge", None)
    if kb is None:
        raise HTTPException(503, "The knowledge base is still loading; retry shortly.")
    return kb


async def _load_uploads(files: list[UploadFile]) -> tuple[list[Any], list[dict[str, str]]]:
    """Save uploads to a temporary folder and run the loaders; returns (articles, errors)."""
    with tempfile.TemporaryDirectory(prefix="kb-upload-") as tmp:
        for upload in files:
            name = Path(upload.filename or "").name
            if not name or Path(name).suffix.lower() not in ALLOWED_SUFFIXES:
                raise HTTPException(
                    422, f"Unsupported file {name or '(no name)'!r}: use one of {', '.join(sorted(ALLOWED_SUFFIXES))}."
                )
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
            if len(data) > MAX_UPLOAD_BYTES:
                raise HTTPException(413, f"{name} is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB.")
            (Path(tmp) / name).write_bytes(data)
        report = await to_thread.run_sync(load_path, Path(tmp))
    errors = [{"file": Path(str(path)).name, "reason": str(reason)} for path, reason in report.errors]
    return list(report.articles), errors


def _info(article: Any) -> dict[str, Any]:
    return {"id": article.id, "language": article.language, "title": article.title, "url": article.url}


def _hit(hit: SearchHit) -> dict[str, Any]:
    c = hit.chunk
    return {
        "rank": hit.rank, "article_id": c.article_id, "language": c.language, "title": c.title, "url": c.url,
        "heading_path": list(c.heading_path), "text": c.text, "score": hit.score, "dense_score": hit.dense_score,
        "lexical_score": hit.lexical_score,
    }


@router.get("/articles")
async def list_articles(request: Request) -> list[dict[str, Any]]:
    kb = _kb(request)
    return [
        {"id": a.id, "language": a.language, "title": a.title, "url": a.url, "chunks": a.chunk_count}
        for a in await to_thread.run_sync(kb.articles)
    ]


@router.post("/articles", status_code=201)
async def upload_articles(request: Request, files: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
    """Add (or replace, by id and language) every article in the uploaded files."""
    kb = _kb(request)
    articles, errors = await _load_uploads(files)
    if not articles:
        raise HTTPException(422, {"message": "No article could be read from the upload.", "errors": errors})
    await to_thread.run_sync(kb.upsert, articles)
    return {"indexed": [_info(a) for a in articles], "errors": errors}


@router.put("/articles/{article_id}")
async def replace_article(
    request: Request, article_id: str, files: Annotated[list[UploadFile], File()]
) -> dict[str, Any]:
    """Replace one article's versions; the upload must contain that id and nothing else."""
    kb = _kb(request)
    articles, errors = await _load_uploads(files)
    if errors:
        raise HTTPException(422, {"message": "The upload could not be read; nothing was changed.", "errors": errors})
    other = sorted({a.id for a in articles if a.id != article_id})
    if not articles or other:
        raise HTTPException(
            422, f"The upload must hold article {article_id!r} only (found: {', '.join(other) or 'no article'})."
        )
    known = {a.id for a in await to_thread.run_sync(kb.articles)}
    if article_id not in known:
        raise HTTPException(404, f"No article {article_id!r}; use POST /api/v1/admin/kb/articles to add it.")
    await to_thread.run_sync(kb.upsert, articles)
    return {"indexed": [_info(a) for a in articles]}


@router.delete("/articles/{article_id}")
async def delete_article(
    request: Request, article_id: str, language: Annotated[str | None, Query(pattern="^(en|zh|ru)$")] = None
) -> dict[str, Any]:
    kb = _kb(request)
    try:
        removed = await to_thread.run_sync(lambda: kb.delete(article_id, language))
    except KBError as err:
        raise HTTPException(404, str(err)) from err
    return {"deleted": article_id, "language": language, "chunks_removed": removed}


@router.get("/search")
async def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=1000)],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid",
    language: Annotated[str | None, Query(pattern="^(en|zh|ru)$")] = None,
) -> list[dict[str, Any]]:
    kb = _kb(request)
    languages = [language] if language else None
    hits = await to_thread.run_sync(lambda: kb.search(q, k, mode=mode, languages=languages))
    return [_hit(h) for h in hits]


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    return await to_thread.run_sync(_kb(request).stats)
