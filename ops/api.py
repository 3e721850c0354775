"""Ops HTTP API under ``/api/v1/ops`` (admin only) and Prometheus metrics at ``/metrics``.

Authentication is ``deps.require_admin``: the ADMIN_API_TOKEN bearer token, or a signed-in agent
console session with the admin role. Routes are thin: validate, call the service (in a worker
thread: they touch SQLite, YAML files, the embedder) and return what it returns, as the models of
``ops/api_models.py``; a service's refusal is an ``ApiError`` subclass, answered by the app's handler.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from api_errors import ERROR_RESPONSES, ApiError
from deps import Admin, ops_app, require_admin
from ops import api_models as out
from ops import audit, csv_export
from ops.inbox import Filters
from storage.ids import RowId

router = APIRouter(prefix="/api/v1/ops", tags=["support ops"], dependencies=[Depends(require_admin)],
                   responses=ERROR_RESPONSES)
metrics_router = APIRouter(tags=["support ops"], responses=ERROR_RESPONSES)

Language = Literal["en", "zh", "ru"]
CSV = {200: {"content": {"text/csv": {}}, "description": "CSV, one row per line (an attachment)"}}


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A service call in a worker thread (SQLite, YAML files, the embedder)."""
    return await to_thread.run_sync(lambda: fn(*args, **kwargs))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntitySpan(Strict):
    start: int = Field(ge=0)
    end: int = Field(ge=1)
    entity: str = Field(min_length=1, max_length=64)


class AssignBody(Strict):
    item_ids: list[int] = Field(min_length=1, max_length=500)
    intent: str = Field(min_length=2, max_length=64)
    new_intent: bool = False
    # Entity spans per item id, on the item's ``text`` (the redacted text that will be written).
    entities: dict[int, list[EntitySpan]] = {}


class MarkBody(Strict):
    item_ids: list[int] = Field(min_length=1, max_length=500)
    note: str = Field(default="", max_length=2000)


class RedactBody(Strict):
    text: str = Field(min_length=1, max_length=20_000)
    language: Language | None = None
    style: Literal["mask", "surrogate"] = "mask"


class DraftPatch(Strict):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    question: str | None = Field(default=None, max_length=10_000)
    answer: str | None = Field(default=None, min_length=1, max_length=20_000)
    article_id: str | None = Field(default=None, max_length=101)
    language: Language | None = None


class TrainBody(Strict):
    auto_promote: bool = False


class PromoteBody(Strict):
    force: bool = False


class RollbackBody(Strict):
    model_id: str | None = Field(default=None, max_length=64)


def _filters(language: Language | None, channel: str | None, intent: str | None, source: str | None, status: str,
             since: date | None, until: date | None) -> Filters:
    if status not in ("open", "annotated", "knowledge_gap", "dismissed", "all"):
        raise ApiError(422, "status must be open, annotated, knowledge_gap, dismissed or all")
    if since and until and since > until:
        raise ApiError(422, "since is after until")
    return Filters(language, channel, intent, source, status, since, until)


FilterArgs = dict[str, Any]


async def filter_args(
    language: Language | None = None,
    channel: Annotated[str | None, Query(max_length=32)] = None,
    intent: Annotated[str | None, Query(max_length=64)] = None,
    source: Literal["fallback", "low_confidence", "kb_declined", "kb_unhelpful", "handoff", "rephrased"] | None = None,
    status: str = "open",
    since: date | None = None,
    until: date | None = None,
) -> Filters:
    return _filters(language, channel, intent, source, status, since, until)


Filtered = Annotated[Filters, Depends(filter_args)]


# --- review inbox -----------------------------------------------------------------------------------
@router.get("/inbox", response_model=out.Inbox)
async def inbox_clusters(request: Request, filters: Filtered, collect: bool = True) -> dict[str, Any]:
    """Open items in groups to act on: per language and kind (what the bot did), by meaning, each with
    the bot's top intent guesses and the closest KB article; biggest group first (new items are
    collected first)."""
    ops = ops_app(request)
    if collect:
        await _run(ops.inbox.collect)
    kb = getattr(request.app.state, "knowledge", None)  # each group's closest article, once the KB is loaded
    clusters = await _run(ops.inbox.clusters, filters, 5000, kb)
    return {"clusters": clusters, "items": sum(c["size"] for c in clusters)}


@router.post("/inbox/collect", response_model=out.Collected)
async def inbox_collect(request: Request) -> dict[str, Any]:
    report = await _run(ops_app(request).inbox.collect)
    return {"added": dict(report.added), "total": report.total}


@router.get("/inbox/items", response_model=list[out.InboxItem])
async def inbox_items(request: Request, filters: Filtered, limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
    from ops.inbox import item_view

    return [item_view(i) for i in await _run(ops_app(request).inbox.items, filters, limit)]


@router.get("/inbox/items/{item_id}", response_model=out.InboxItem)
async def inbox_item(request: Request, item_id: RowId) -> dict[str, Any]:
    from ops.inbox import item_view

    return item_view(await _run(ops_app(request).inbox.item, item_id))


@router.post("/inbox/assign", response_model=out.Assigned)
async def inbox_assign(request: Request, body: AssignBody, actor: Admin) -> dict[str, Any]:
    """Write the items as examples of an intent to nlu_data/<language>/reviewed.yml."""
    entities = {k: [e.model_dump() for e in v] for k, v in body.entities.items()}
    unknown = set(entities) - set(body.item_ids)
    if unknown:
        raise ApiError(422, f"entities given for item(s) not in item_ids: {sorted(unknown)}")
    items = await _run(ops_app(request).inbox.assign, body.item_ids, body.intent, actor, new_intent=body.new_intent,
                       entities=entities)
    note = None
    if body.new_intent:
        note = (f"new intent {body.intent!r}: add it to bot/domain.yml with a rule and a response before the bot can act "
                "on it; until then a retrained model recognises it but the dialogue has nothing to say")
    return {"items": items, "note": note}


@router.post("/inbox/knowledge-gap", response_model=out.Items)
async def inbox_gap(request: Request, body: MarkBody, actor: Admin) -> dict[str, Any]:
    return {"items": await _run(ops_app(request).inbox.mark, body.item_ids, "knowledge_gap", actor, body.note)}


@router.post("/inbox/dismiss", response_model=out.Items)
async def inbox_dismiss(request: Request, body: MarkBody, actor: Admin) -> dict[str, Any]:
    return {"items": await _run(ops_app(request).inbox.mark, body.item_ids, "dismissed", actor, body.note)}


@router.post("/inbox/items/{item_id}/reopen", response_model=out.InboxItem)
async def inbox_reopen(request: Request, item_id: RowId, actor: Admin) -> dict[str, Any]:
    return await _run(ops_app(request).inbox.reopen, item_id, actor)


@router.get("/inbox/export.csv", response_class=PlainTextResponse, responses=CSV)
async def inbox_export(request: Request, filters: Filtered, actor: Admin) -> Response:
    """Masked text only ([EMAIL], [PHONE]...): safe to share. Cells a spreadsheet would run as a formula
    (customers write the text) start with ``'``. Every export is audited."""
    ops = ops_app(request)
    rows = await _run(ops.inbox.export_rows, filters)
    columns = ["id", "source", "status", "language", "channel", "intent", "confidence", "text", "pii", "occurred_at",
               "resolution_intent", "resolved_by"]
    body = csv_export.csv_text(columns, ([r[c] for c in columns] for r in rows))
    await _run(audit.record, ops.sessions, actor, "export_inbox", "inbox", {"rows": len(rows), **_filter_detail(filters)})
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="review-inbox.csv"'})


def _filter_detail(filters: Filters) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in vars(filters).items() if v is not None}


@router.get("/intents", response_model=out.Intents)
async def intents(request: Request) -> dict[str, Any]:
    writer = ops_app(request).inbox.writer
    intents_, entities = await _run(writer.domain_names)
    return {"intents": sorted(await _run(writer.known_intents)), "domain_intents": sorted(intents_),
            "entities": sorted(entities)}


@router.post("/redact", response_model=out.Redacted)
async def redact(request: Request, body: RedactBody) -> dict[str, Any]:
    red = await _run(ops_app(request).inbox.redactor.redact, body.text, body.language, body.style)
    return {"text": red.text, "spans": [{"start": s.start, "end": s.end, "type": s.type} for s in red.spans]}


# --- KB drafts ----------------------------------------------------------------------------------------
@router.get("/drafts", response_model=list[out.Draft])
async def drafts(request: Request, status: Literal["draft", "published", "discarded", "all"] = "draft") -> list[dict[str, Any]]:
    return await _run(ops_app(request).drafts.list, status)


@router.post("/drafts/propose", response_model=out.Proposed)
async def drafts_propose(request: Request) -> dict[str, Any]:
    return {"created": await _run(ops_app(request).drafts.propose)}


@router.get("/drafts/{draft_id}", response_model=out.Draft)
async def draft(request: Request, draft_id: RowId) -> dict[str, Any]:
    return await _run(ops_app(request).drafts.get, draft_id)


@router.patch("/drafts/{draft_id}", response_model=out.Draft)
async def draft_edit(request: Request, draft_id: RowId, body: DraftPatch, actor: Admin) -> dict[str, Any]:
    return await _run(ops_app(request).drafts.update, draft_id, actor, **body.model_dump(exclude_none=True))


@router.post("/drafts/{draft_id}/publish", response_model=out.Draft)
async def draft_publish(request: Request, draft_id: RowId, actor: Admin) -> dict[str, Any]:
    kb = getattr(request.app.state, "knowledge", None)
    if kb is None:
        raise ApiError(503, "The knowledge base is still loading; retry shortly.")
    ops = ops_app(request)
    published = await _run(ops.drafts.publish, draft_id, actor, kb)
    await _run(ops.kb_versions.archive)
    return published


@router.post("/drafts/{draft_id}/discard", response_model=out.Draft)
async def draft_discard(request: Request, draft_id: RowId, actor: Admin) -> dict[str, Any]:
    return await _run(ops_app(request).drafts.discard, draft_id, actor)


# --- training, models, KB versions ---------------------------------------------------------------------
@router.post("/training/jobs", status_code=202, response_model=out.Job)
async def train(request: Request, body: TrainBody, actor: Admin) -> dict[str, Any]:
    """Queue a retrain on the current training data; the runner starts it within seconds."""
    return await _run(ops_app(request).training.submit, actor, auto_promote=body.auto_promote)


@router.get("/training/jobs", response_model=list[out.Job])
async def jobs(request: Request) -> list[dict[str, Any]]:
    return await _run(ops_app(request).training.jobs)


@router.get("/training/jobs/{job_id}", response_model=out.Job)
async def job(request: Request, job_id: RowId) -> dict[str, Any]:
    return await _run(ops_app(request).training.job, job_id)


@router.get("/models", response_model=list[out.Model])
async def models(request: Request) -> list[dict[str, Any]]:
    return await _run(ops_app(request).registry.list)


@router.get("/models/{model_id}", response_model=out.ModelDetail)
async def model(request: Request, model_id: str) -> dict[str, Any]:
    from ops.registry import model_view

    m = await _run(ops_app(request).registry.get, model_id)
    return {**model_view(m), "config": m.config, "metrics": m.metrics}


@router.post("/models/{model_id}/promote", response_model=out.Promoted)
async def promote(request: Request, model_id: str, body: PromoteBody, actor: Admin) -> dict[str, Any]:
    return await _run(ops_app(request).registry.promote, model_id, actor, force=body.force)


@router.post("/models/rollback", response_model=out.Promoted)
async def rollback(request: Request, body: RollbackBody, actor: Admin) -> dict[str, Any]:
    """Back to the previously active model, or to any kept model named by ``model_id``."""
    return await _run(ops_app(request).registry.rollback, actor, body.model_id)


@router.get("/kb/versions", response_model=list[out.KbVersion])
async def kb_versions(request: Request) -> list[dict[str, Any]]:
    return await _run(ops_app(request).kb_versions.list)


@router.post("/kb/versions/{version}/rollback", response_model=out.KbRolledBack)
async def kb_rollback(request: Request, version: str, actor: Admin) -> dict[str, Any]:
    """Point the live index at an older version (any version ops has archived)."""
    return await _run(ops_app(request).kb_rollback, version, actor, getattr(request.app.state, "knowledge", None))


# --- analytics ----------------------------------------------------------------------------------------
def _group_by(group_by: str) -> list[str]:
    dims = [d.strip() for d in group_by.split(",") if d.strip()]
    bad = [d for d in dims if d not in ("day", "language", "channel")]
    if bad:
        raise ApiError(422, f"group_by: unknown dimension(s) {', '.join(bad)}; use day, language, channel")
    return dims


@router.get("/analytics", response_model=out.Analytics)
async def analytics(request: Request, since: date | None = None, until: date | None = None,
                    group_by: str = "day,language,channel") -> dict[str, Any]:
    if since and until and since > until:
        raise ApiError(422, "since is after until")
    return await _run(ops_app(request).analytics.report, since, until, _group_by(group_by))


@router.get("/analytics.csv", response_class=PlainTextResponse, responses=CSV)
async def analytics_csv(request: Request, actor: Admin, since: date | None = None, until: date | None = None,
                        group_by: str = "day,language,channel") -> Response:
    from ops.analytics import csv_text

    if since and until and since > until:
        raise ApiError(422, "since is after until")
    ops = ops_app(request)
    report = await _run(ops.analytics.report, since, until, _group_by(group_by))
    detail = {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
              "group_by": report["group_by"]}
    await _run(audit.record, ops.sessions, actor, "export_analytics", "analytics", detail)
    return Response(csv_text(report), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="analytics.csv"'})


CHART_METRICS = {
    "sessions": "Sessions", "containment_rate": "Containment rate", "confirmed_resolution_rate": "Confirmed resolution rate",
    "assumed_resolution_rate": "Assumed resolution rate", "deflection_rate": "Deflection rate",
    "durable_resolution_rate": "Durable resolution rate", "handoff_rate": "Handoff rate", "kb_answer_rate": "KB answer rate",
    "kb_helpfulness_rate": "KB helpfulness rate", "kb_decline_rate": "KB decline rate", "csat_mean": "CSAT (mean)",
    "first_agent_reply_s_median": "Time to first agent reply (median s)", "resolution_s_median": "Time to resolution (median s)",
}  # fmt: skip


@router.get("/analytics/chart.svg", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}, "description": "an SVG line chart"}})
async def analytics_chart(request: Request, metric: str = "containment_rate",
                          series: Literal["language", "channel"] = "language", since: date | None = None,
                          until: date | None = None) -> Response:
    """One metric per day, a line per language (or channel), as an SVG image."""
    from ops.charts import line_chart

    if metric not in CHART_METRICS:
        raise ApiError(422, f"metric must be one of {', '.join(CHART_METRICS)}")
    report = await _run(ops_app(request).analytics.report, since, until, ["day", series])
    svg = line_chart(report, metric, series, CHART_METRICS[metric] + f" by {series}")
    return Response(svg, media_type="image/svg+xml")


@router.get("/audit", response_model=list[out.AuditRow])
async def audit_log(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return await _run(ops_app(request).audit_log, limit)


@metrics_router.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(require_admin)],
                    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def metrics(request: Request) -> Response:
    """All-time totals per language and channel, Prometheus text format (scrape with the admin token)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    from ops.analytics import prometheus_text

    report = await _run(ops_app(request).analytics.report, None, None, ["language", "channel"])
    return Response(prometheus_text(report), media_type=CONTENT_TYPE_LATEST)
