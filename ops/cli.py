"""``python -m ops``: the ops API from a terminal, for teams that script their operations.

Every command but ``redact`` talks to a running gateway (``--url``, env ``OPS_URL``, default
http://127.0.0.1:8000) with the admin token (``--token``, env ``ADMIN_API_TOKEN``), because
promotion, rollback and publishing act on the live Rasa server and knowledge base. Errors print the
API's reason and exit non-zero (1: refused by the API, 2: the gateway cannot be reached; ``train``
exits 3 when the gate refuses the candidate).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0].replace("``", ""))
console = Console()
err_console = Console(stderr=True)

_state: dict[str, Any] = {}
API = "/api/v1/ops"
# A promotion or rollback rolls the model over every Rasa replica of a cluster, one at a time
# (ops/rollout.py): minutes on busy cores. The gateway's balancer allows it 30 minutes.
MODEL_SWAP_TIMEOUT_S = 1800.0


def make_client(url: str, token: str) -> httpx.Client:
    """The HTTP client every command uses (tests substitute an in-process one)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


@app.callback()
def main(
    url: Annotated[str, typer.Option(envvar="OPS_URL", help="the gateway")] = "http://127.0.0.1:8000",
    token: Annotated[str, typer.Option(envvar="ADMIN_API_TOKEN", help="the admin API token")] = "",
) -> None:
    _state["url"], _state["token"] = url, token


def _client() -> httpx.Client:
    if "client" not in _state:
        _state["client"] = make_client(_state.get("url", "http://127.0.0.1:8000"), _state.get("token", ""))
    return _state["client"]


def _call(method: str, path: str, **kwargs: Any) -> Any:
    try:
        client = _client()
        r = client.send(client.build_request(method, path, **kwargs))
    except httpx.HTTPError as err:
        err_console.print(f"[red]cannot reach the gateway at {_state.get('url')}: {err}[/red]")
        raise typer.Exit(2) from None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        err_console.print(f"[red]{r.status_code}: {json.dumps(detail, ensure_ascii=False) if not isinstance(detail, str) else detail}[/red]")
        raise typer.Exit(1)
    ctype = r.headers.get("content-type", "")
    return r.json() if ctype.startswith("application/json") else r.text


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, ensure_ascii=False, default=str))


def _print_table(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]]) -> None:
    """A table with a title, a header and one line per row."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _filters(language: str | None, channel: str | None, intent: str | None, source: str | None, status: str,
             since: date | None, until: date | None) -> dict[str, Any]:
    params = {"language": language, "channel": channel, "intent": intent, "source": source, "status": status,
              "since": since.isoformat() if since else None, "until": until.isoformat() if until else None}
    return {k: v for k, v in params.items() if v is not None}


Lang = Annotated[str | None, typer.Option(help="en, zh or ru")]
Since = Annotated[str | None, typer.Option(help="YYYY-MM-DD (inclusive)")]


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        err_console.print(f"[red]not a date (YYYY-MM-DD): {value}[/red]")
        raise typer.Exit(1) from None


# --- inbox ----------------------------------------------------------------------------------------------
@app.command()
def inbox(
    language: Lang = None, channel: str | None = None, intent: str | None = None, source: str | None = None,
    status: str = "open", since: Since = None, until: Since = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the clusters as JSON")] = False,
) -> None:
    """Review inbox: similar messages grouped, biggest group first."""
    data = _call("GET", f"{API}/inbox", params=_filters(language, channel, intent, source, status, _date(since), _date(until)))
    if as_json:
        _print_json(data)
        return
    _print_table(
        f"review inbox: {data['items']} item(s) in {len(data['clusters'])} group(s)",
        ("size", "example", "languages", "sources", "item ids"),
        ((str(c["size"]), c["label"], " ".join(f"{k}:{v}" for k, v in c["languages"].items()),
          " ".join(f"{k}:{v}" for k, v in c["sources"].items()), " ".join(str(i["id"]) for i in c["items"]))
         for c in data["clusters"]),
    )  # fmt: skip


@app.command()
def assign(
    item_ids: Annotated[list[int], typer.Argument(help="review item ids")],
    intent: Annotated[str, typer.Option(help="the intent these messages mean")],
    new_intent: Annotated[bool, typer.Option(help="create the intent")] = False,
    entities: Annotated[str | None, typer.Option(help='JSON: {"<item id>": [{"start": 0, "end": 10, "entity": "order_id"}]}')] = None,
) -> None:
    """Write the items as training examples of INTENT (nlu_data/<language>/reviewed.yml)."""
    body: dict[str, Any] = {"item_ids": item_ids, "intent": intent, "new_intent": new_intent}
    if entities:
        try:
            body["entities"] = json.loads(entities)
        except ValueError:
            err_console.print("[red]--entities is not valid JSON[/red]")
            raise typer.Exit(1) from None
    data = _call("POST", f"{API}/inbox/assign", json=body)
    for item in data["items"]:
        console.print(f"{item['id']}: {item['resolution']['example']}  →  {item['resolution']['file']}")
    if data.get("note"):
        console.print(f"[yellow]{data['note']}[/yellow]")


@app.command()
def dismiss(item_ids: list[int], note: str = "") -> None:
    """Nothing to learn from these items."""
    _call("POST", f"{API}/inbox/dismiss", json={"item_ids": item_ids, "note": note})
    console.print(f"dismissed {len(item_ids)} item(s)")


@app.command()
def gap(item_ids: list[int], note: str = "") -> None:
    """Mark items as a knowledge gap (the help centre should answer them)."""
    _call("POST", f"{API}/inbox/knowledge-gap", json={"item_ids": item_ids, "note": note})
    console.print(f"marked {len(item_ids)} item(s) as a knowledge gap")


@app.command("export-inbox")
def export_inbox(out: Annotated[Path, typer.Option(help="CSV file to write")], status: str = "all") -> None:
    """The inbox as CSV, with personal data masked ([EMAIL], [PHONE]...)."""
    out.write_text(_call("GET", f"{API}/inbox/export.csv", params={"status": status}), encoding="utf-8")
    console.print(f"wrote {out}")


# --- training -----------------------------------------------------------------------------------------
@app.command()
def train(
    auto_promote: Annotated[bool, typer.Option(help="promote the candidate if the gate passes")] = False,
    wait: Annotated[bool, typer.Option(help="follow the job's progress until it ends")] = True,
    poll_s: float = 2.0,
) -> None:
    """Retrain on the current training data, evaluate, gate (and promote with --auto-promote)."""
    job = _call("POST", f"{API}/training/jobs", json={"auto_promote": auto_promote})
    console.print(f"training job {job['id']} queued")
    if not wait:
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("queued", total=1.0)
        while job["status"] in ("queued", "running"):
            time.sleep(poll_s)
            job = _call("GET", f"{API}/training/jobs/{job['id']}")
            progress.update(task, completed=job["progress"], description=job["stage"])
    _job_summary(job)
    if job["status"] == "failed":
        raise typer.Exit(1)
    if job["status"] == "refused":
        raise typer.Exit(3)


def _job_summary(job: dict[str, Any]) -> None:
    report = job.get("report") or {}
    colour = {"passed": "green", "refused": "red", "failed": "red"}.get(job["status"], "white")
    console.print(f"job {job['id']}: [{colour}]{job['status']}[/{colour}]  model {job.get('model_id')}  "
                  f"baseline {job.get('baseline_id') or '-'}")
    for check in report.get("checks", []):
        mark = "[green]✓[/green]" if check["passed"] else "[red]✗[/red]"
        console.print(f"  {mark} {check['name']}: {check['detail']}")
    if report.get("promotion"):
        console.print(f"  promotion: {report['promotion']}")
    if job.get("error"):
        console.print(f"[red]{job['error']}[/red]")


@app.command()
def jobs() -> None:
    """Recent training jobs."""
    _print_table(
        "training jobs",
        ("id", "status", "stage", "progress", "by", "model", "created"),
        ((str(j["id"]), j["status"], j["stage"], f"{j['progress'] * 100:.0f}%", j["started_by"], j["model_id"] or "-",
          j["created_at"][:19])
         for j in _call("GET", f"{API}/training/jobs")),
    )  # fmt: skip


@app.command()
def job(job_id: int) -> None:
    """One job with its gate report."""
    _job_summary(_call("GET", f"{API}/training/jobs/{job_id}"))


# --- models and KB versions ----------------------------------------------------------------------------
@app.command()
def models() -> None:
    """Every kept model with its metadata and held-out accuracy per language."""

    def row(m: dict[str, Any]) -> tuple[str, ...]:
        acc = " ".join(f"{k}:{v * 100:.1f}" for k, v in sorted((m["accuracy"] or {}).items()) if v is not None) or "-"
        stories = m["stories"]
        return (m["id"], m["status"], acc, "-" if not stories else str(len(stories["failed"] or [])),
                m["trained_by"], m["created_at"][:19], (m["promoted_at"] or "-")[:19])  # fmt: skip

    columns = ("id", "status", "accuracy", "stories failed", "by", "created", "promoted")
    _print_table("models", columns, map(row, _call("GET", f"{API}/models")))


@app.command()
def promote(model_id: str, force: Annotated[bool, typer.Option(help="even if the gate refused it")] = False) -> None:
    """Load MODEL_ID into the running Rasa (no conversation dropped)."""
    console.print(_call("POST", f"{API}/models/{model_id}/promote", json={"force": force}, timeout=MODEL_SWAP_TIMEOUT_S))


@app.command()
def rollback(model_id: Annotated[str | None, typer.Argument(help="default: the previously active model")] = None) -> None:
    """Back to the previous model, or to any kept one."""
    console.print(_call("POST", f"{API}/models/rollback", json={"model_id": model_id}, timeout=MODEL_SWAP_TIMEOUT_S))


@app.command("kb-versions")
def kb_versions() -> None:
    """Knowledge-base index versions (archived by ops), newest first."""
    _print_table(
        "knowledge-base versions",
        ("version", "current", "articles", "chunks", "updated"),
        ((v["version"], "*" if v["current"] else "", str(v["articles"]), str(v["chunks"]), str(v["updated_at"]))
         for v in _call("GET", f"{API}/kb/versions")),
    )  # fmt: skip


@app.command("kb-rollback")
def kb_rollback(version: str) -> None:
    """Point the live knowledge base at VERSION."""
    console.print(_call("POST", f"{API}/kb/versions/{version}/rollback"))


# --- KB drafts -----------------------------------------------------------------------------------------
@app.command()
def drafts(status: str = "draft") -> None:
    """KB article drafts proposed from handoffs."""
    _call("POST", f"{API}/drafts/propose")
    for d in _call("GET", f"{API}/drafts", params={"status": status}):
        console.print(f"[bold]#{d['id']}[/bold] ({d['language']}, ticket {d['ticket_id']}, {d['status']}) {d['title']}\n"
                      f"  Q: {d['question']}\n  A: {d['answer']}")


@app.command("draft-edit")
def draft_edit(draft_id: int, title: str | None = None, question: str | None = None, answer: str | None = None,
               article_id: str | None = None) -> None:
    """Edit a draft before publishing."""
    body = {k: v for k, v in {"title": title, "question": question, "answer": answer, "article_id": article_id}.items() if v is not None}
    _print_json(_call("PATCH", f"{API}/drafts/{draft_id}", json=body))


@app.command("draft-publish")
def draft_publish(draft_id: int) -> None:
    """Publish a draft into the live knowledge base."""
    _print_json(_call("POST", f"{API}/drafts/{draft_id}/publish"))


# --- analytics and tools -----------------------------------------------------------------------------
@app.command()
def analytics(
    since: Since = None, until: Since = None,
    group_by: Annotated[str, typer.Option(help="any of day,language,channel")] = "day,language,channel",
    csv: Annotated[Path | None, typer.Option(help="write CSV here instead of printing")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Containment, resolutions, deflection, handoffs, KB, CSAT (README: Analytics definitions)."""
    params = {k: v for k, v in {"since": since, "until": until, "group_by": group_by}.items() if v}
    if csv is not None:
        csv.write_text(_call("GET", f"{API}/analytics.csv", params=params), encoding="utf-8")
        console.print(f"wrote {csv}")
        return
    report = _call("GET", f"{API}/analytics", params=params)
    if as_json:
        _print_json(report)
        return
    dims = report["group_by"]
    cols = ["sessions", "containment_rate", "confirmed_resolution_rate", "assumed_resolution_rate", "deflection_rate",
            "durable_resolution_rate", "handoff_rate", "kb_answer_rate", "kb_helpfulness_rate", "csat_mean"]

    def fmt(v: Any) -> str:
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    rows = [*report["rows"], {**dict.fromkeys(dims, "TOTAL"), **report["total"]}]
    cells = ([*[str(row[d]) for d in dims], *[fmt(row[c]) for c in cols]] for row in rows)
    _print_table("analytics", [*dims, *cols], cells)


@app.command()
def redact(
    text: str, language: Lang = None,
    style: Annotated[str, typer.Option(help="mask ([EMAIL]) or surrogate (fake values)")] = "mask",
) -> None:
    """Redact personal data from TEXT locally (no gateway needed)."""
    from ops.redaction import Redactor

    if style not in ("mask", "surrogate"):
        err_console.print("[red]--style must be mask or surrogate[/red]")
        raise typer.Exit(1)
    console.print(Redactor().redact_text(text, language, style), markup=False)  # type: ignore[arg-type]


def run() -> None:
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    app()


if __name__ == "__main__":
    sys.exit(run())
