"""Admin HTTP routes over the live knowledge base: upload, replace, delete, list, search, stats.

Thin routes over ``KnowledgeBase``: it swaps in a new immutable snapshot per write, so searches in
flight (the bot answering customers) never see half an update and nothing needs a restart.
Uploaded files go through the same loaders as the CLI; a file that cannot be read is a 422 with
the loader's reason (never the file's content), and the index is left as it was.

Uploads are read only after ``deps.require_admin`` has accepted the caller (the routes take the request,
not ``File()`` parameters, which FastAPI would parse before any dependency runs), and a body over
``MAX_UPLOAD_BYTES`` (settings) is refused with 413 while it streams in. Every change is audited
(``ops.audit``: actor, action, article ids). The bodies answered are ``kb_index/admin_models.py``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from api_errors import ERROR_RESPONSES, ApiError
from deps import Admin, knowledge, require_admin
from kb_index import KBError, SearchHit, load_path
from kb_index import admin_models as out

ALLOWED_SUFFIXES = {".md", ".markdown", ".html", ".htm", ".txt", ".pdf", ".csv", ".json"}
ArticleId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]  # the loaders' rule for ids
UPLOAD_FIELD = "files"
MAX_UPLOAD_FILES = 100
# OpenAPI: the routes read the multipart body themselves (after the admin check), so describe it here.
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [UPLOAD_FIELD],
    "properties": {UPLOAD_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}},
}}}}}  # fmt: skip

router = APIRouter(prefix="/api/v1/admin/kb", tags=["knowledge base admin"], dependencies=[Depends(require_admin)],
                   responses=ERROR_RESPONSES)


class _TooLarge(Exception):
    pass


def _too_large(cap: int) -> ApiError:
    return ApiError(413, f"The upload is larger than {cap} bytes (MAX_UPLOAD_BYTES); nothing was stored.")


async def _capped(request: Request, cap: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > cap:
            raise _TooLarge
        yield chunk


async def _read_form(request: Request) -> FormData:
    """The multipart body, read now (the caller is an admin), refused once it passes the cap."""
    cap = request.app.state.settings.max_upload_bytes
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise ApiError(415, f"Send the articles as multipart/form-data, one or more files in the field {UPLOAD_FIELD!r}.")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > cap):
        raise _too_large(cap) if length.isdigit() else ApiError(400, "Invalid Content-Length header.")
    stream = _capped(request, cap)
    try:
        return await MultiPartParser(request.headers, stream, max_files=MAX_UPLOAD_FILES,
                                     max_fields=MAX_UPLOAD_FILES).parse()
    except _TooLarge:
        raise _too_large(cap) from None
    except MultiPartException as err:
        raise ApiError(400, f"The upload is not valid multipart form data: {err.message}") from None
    finally:
        await stream.aclose()


def _public_reason(reason: str, folder: str) -> str:
    """A loader's reason without the server's temporary folder or quoted file content, bounded."""
    reason = reason.replace(folder + "/", "").replace(folder, "")
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "(value not shown)", reason)
    return reason[:200]


async def _load_uploads(request: Request) -> tuple[list[Any], list[dict[str, str]], list[str]]:
    """Read the upload, save its files to a private temporary folder and run the loaders.

    Returns (articles, errors, file names)."""
    form = await _read_form(request)
    try:
        files = [f for f in form.getlist(UPLOAD_FIELD) if isinstance(f, UploadFile)]
        if not files:
            raise ApiError(422, f"No file in the form field {UPLOAD_FIELD!r}.")
        with tempfile.TemporaryDirectory(prefix="kb-upload-") as tmp:
            names = []
            for upload in files:
                name = Path(upload.filename or "").name
                suffix = Path(name).suffix.lower()
                if not name or suffix not in ALLOWED_SUFFIXES:
                    shown = f"type {suffix[:16]!r}" if suffix else "without a supported extension"
                    raise ApiError(422, f"Unsupported file {shown}: use one of {', '.join(sorted(ALLOWED_SUFFIXES))}.")
                if len(name.encode()) > 200 or name.startswith(".") or any(ord(ch) < 32 for ch in name):
                    raise ApiError(422, "A file name must be printable, at most 200 bytes and not start with a dot.")
                if name in names:
                    raise ApiError(422, f"Two files are named {name!r}; each file needs its own name.")
                (Path(tmp) / name).write_bytes(await upload.read())
                names.append(name)
            report = await to_thread.run_sync(load_path, Path(tmp))
            errors = [{"file": Path(str(path)).name, "reason": _public_reason(str(reason), tmp)}
                      for path, reason in report.errors]
    finally:
        await form.close()
    return list(report.articles), errors, names


def _audit_sessions(request: Request) -> Any:
    """Where KB changes are audited (the ops audit log); refuse changes until it is there."""
    ops = getattr(request.app.state, "ops", None)
    if ops is None:
        raise ApiError(503, "The audit log is still starting; retry shortly.")
    return ops.sessions


async def _audit(request: Request, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    _audit_sessions(request)
    # The ops app (ops.service.OpsApp, on app.state.ops) writes the row; kb_index imports nothing of ops.
    await to_thread.run_sync(request.app.state.ops.audit, actor, action, target, detail)


def _info(article: Any) -> dict[str, Any]:
    return {"id": article.id, "language": article.language, "title": article.title, "url": article.url}


def _hit(hit: SearchHit) -> dict[str, Any]:
    c = hit.chunk
    return {
        "rank": hit.rank, "article_id": c.article_id, "language": c.language, "title": c.title, "url": c.url,
        "heading_path": list(c.heading_path), "text": c.text, "score": hit.score, "dense_score": hit.dense_score,
        "lexical_score": hit.lexical_score,
    }


@router.get("/articles", response_model=list[out.ArticleRow])
async def list_articles(request: Request) -> list[dict[str, Any]]:
    kb = knowledge(request)
    return [
        {"id": a.id, "language": a.language, "title": a.title, "url": a.url, "chunks": a.chunk_count}
        for a in await to_thread.run_sync(kb.articles)
    ]


@router.post("/articles", status_code=201, openapi_extra=UPLOAD_BODY, response_model=out.Uploaded)
async def upload_articles(request: Request, actor: Admin) -> dict[str, Any]:
    """Add (or replace, by id and language) every article in the uploaded files (form field ``files``)."""
    kb = knowledge(request)
    _audit_sessions(request)
    articles, errors, names = await _load_uploads(request)
    if not articles:
        message = "No article could be read from the upload."
        raise ApiError(422, message, detail={"message": message, "errors": errors})
    await to_thread.run_sync(kb.upsert, articles)
    await _audit(request, actor, "kb_upload", "kb", {"files": names, "articles": [[a.id, a.language] for a in articles]})
    return {"indexed": [_info(a) for a in articles], "errors": errors}


@router.put("/articles/{article_id}", openapi_extra=UPLOAD_BODY, response_model=out.Replaced)
async def replace_article(request: Request, article_id: ArticleId, actor: Admin) -> dict[str, Any]:
    """Replace one article's versions; the upload must contain that id and nothing else."""
    kb = knowledge(request)
    _audit_sessions(request)
    articles, errors, names = await _load_uploads(request)
    if errors:
        message = "The upload could not be read; nothing was changed."
        raise ApiError(422, message, detail={"message": message, "errors": errors})
    other = sorted({a.id for a in articles if a.id != article_id})
    if not articles or other:
        raise ApiError(
            422, f"The upload must hold article {article_id!r} only (found: {', '.join(other) or 'no article'})."
        )
    known = {a.id for a in await to_thread.run_sync(kb.articles)}
    if article_id not in known:
        raise ApiError(404, f"No article {article_id!r}; use POST /api/v1/admin/kb/articles to add it.")
    await to_thread.run_sync(kb.upsert, articles)
    await _audit(request, actor, "kb_replace", f"kb_article:{article_id}",
                 {"files": names, "languages": sorted(a.language for a in articles)})
    return {"indexed": [_info(a) for a in articles]}


@router.delete("/articles/{article_id}", response_model=out.Deleted)
async def delete_article(
    request: Request, actor: Admin, article_id: ArticleId,
    language: Annotated[str | None, Query(pattern="^(en|zh|ru)$")] = None,
) -> dict[str, Any]:
    kb = knowledge(request)
    _audit_sessions(request)
    try:
        removed = await to_thread.run_sync(lambda: kb.delete(article_id, language))
    except KBError as err:
        raise ApiError(404, str(err)) from err
    await _audit(request, actor, "kb_delete", f"kb_article:{article_id}", {"language": language, "chunks_removed": removed})
    return {"deleted": article_id, "language": language, "chunks_removed": removed}


@router.get("/search", response_model=list[out.Hit])
async def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=1000)],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid",
    language: Annotated[str | None, Query(pattern="^(en|zh|ru)$")] = None,
) -> list[dict[str, Any]]:
    kb = knowledge(request)
    languages = [language] if language else None
    hits = await to_thread.run_sync(lambda: kb.search(q, k, mode=mode, languages=languages))
    return [_hit(h) for h in hits]


@router.get("/stats", response_model=out.Stats)
async def stats(request: Request) -> dict[str, Any]:
    return await to_thread.run_sync(knowledge(request).stats)
