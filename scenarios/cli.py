"""``python -m scenarios test-conversations [PATH...]``: run conversation scenarios, report, exit.

Exit status: 0 every scenario passed; 1 some scenario failed or could not run; 2 the scenario
files are malformed, the arguments are wrong, or the system could not be reached or started.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from scenarios import report
from scenarios.agent import AdminCredentials
from scenarios.database import SystemDatabase
from scenarios.drivers import CHANNELS
from scenarios.loader import LoadError, load_paths
from scenarios.model import LANGUAGES, Scenario
from scenarios.runner import Runner, ScenarioResult, Target

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATHS = (Path(os.path.relpath(ROOT / "tests" / "scenarios")),)  # relative: shorter reports
EXIT_FAILED, EXIT_USAGE = 1, 2

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Conversation testing for the support bot.")


@app.callback()
def _root() -> None:
    """Conversation testing: scenario files run end to end against the live system."""


def select(scenarios: Sequence[Scenario], language: str | None, tags: Sequence[str]) -> list[Scenario]:
    return [s for s in scenarios if (language is None or s.language == language) and all(t in s.tags for t in tags)]


def run_scenarios(
    scenarios: Sequence[Scenario], url: str, database_url: str, *, concurrency: int = 4,
    console: Console | None = None, auto_refund_limit: Decimal = Decimal("150.00"),
    admin: AdminCredentials | None = None,
) -> list[ScenarioResult]:
    """Run against a running system; prints a progress bar and one line per finished scenario."""
    console = console or Console(soft_wrap=True)
    database = SystemDatabase(database_url)
    try:
        if not database.has("turns"):
            raise SQLAlchemyError(f"{database_url} has no 'turns' table: not the database of this system")
        runner = Runner(Target(url, database, auto_refund_limit, admin), concurrency=concurrency)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("scenarios", total=len(scenarios))

            def done(result: ScenarioResult) -> None:
                progress.console.print(report.result_line(result))
                progress.advance(task)

            results = asyncio.run(runner.run(scenarios, on_done=done))
    finally:
        database.close()
    if results and not any(t.observation.understood for r in results for t in r.turns):
        console.print("[yellow]warning: no turn of any scenario was found in the database: is --database-url the "
                      "system's own database?[/]")
    return results


def finish(console: Console, results: Sequence[ScenarioResult], junit: Path | None, json_path: Path | None,
           meta: dict[str, object]) -> int:
    """Failure details in file order, the summary, the report files; returns the exit status."""
    failed = [r for r in results if not r.passed]
    if failed:
        console.print()
        console.rule(f"{len(failed)} failing scenarios")
        for r in failed:
            console.print(report.result_line(r))
            for line in report.failure_details(r):
                console.print(line)
    report.print_summary(console, results)
    if junit:
        report.write_junit(junit, results)
        console.print(f"JUnit XML: {junit}")
    if json_path:
        report.write_json(json_path, results, meta)
        console.print(f"JSON: {json_path}")
    return EXIT_FAILED if failed else 0


@app.command("test-conversations")
def test_conversations(
    paths: Annotated[list[Path] | None, typer.Argument(help="scenario files or folders (default: tests/scenarios)")] = None,
    url: Annotated[str | None, typer.Option(help="base URL of a running system; default: start one here")] = None,
    database_url: Annotated[str | None, typer.Option(
        help="the system's database (read-only), with --url; default: DATABASE_URL / DATA_DIR as the server reads them")] = None,
    junit: Annotated[Path | None, typer.Option(help="write a JUnit XML report here")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write a JSON report here")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="scenarios run at the same time")] = 4,
    language: Annotated[str | None, typer.Option(help="only scenarios in this language (en, zh, ru)")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="only scenarios with this tag (repeatable)")] = None,
    keep_data: Annotated[bool, typer.Option(help="keep the started system's DATA_DIR (logs, database)")] = False,
    admin_user: Annotated[str, typer.Option(help="handoff administrator, for agent turns, with --url")] = "admin",
    admin_password: Annotated[str | None, typer.Option(
        envvar="HANDOFF_ADMIN_PASSWORD", help="its password, for agent turns, with --url")] = None,
) -> None:
    """Run conversation scenarios end to end, print pass/fail and the figures, write reports."""
    console = Console(soft_wrap=True)
    if language is not None and language not in LANGUAGES:
        console.print(f"[red]--language must be one of {', '.join(LANGUAGES)}[/]")
        raise typer.Exit(EXIT_USAGE)
    try:
        scenarios = load_paths(paths or list(DEFAULT_PATHS), channels=CHANNELS)
    except LoadError as err:
        console.print(f"[red]{len(err.errors)} problem(s) in the scenario files:[/]")
        for e in err.errors:
            console.print(f"  {escape(str(e))}")
        raise typer.Exit(EXIT_USAGE) from None
    chosen = select(scenarios, language, tag or [])
    if not chosen:
        console.print("[red]no scenario matches the selection[/]")
        raise typer.Exit(EXIT_USAGE)
    console.print(f"{len(chosen)} scenarios from {len({s.where.path for s in chosen})} files")
    meta: dict[str, object] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "paths": [str(p) for p in (paths or DEFAULT_PATHS)], "concurrency": concurrency}
    try:
        if url is not None:
            from settings import Settings

            db_url = database_url or Settings().sqlalchemy_url
            meta.update(url=url, database_url=db_url)
            admin = AdminCredentials(admin_user, admin_password) if admin_password else None
            results = run_scenarios(chosen, url, db_url, concurrency=concurrency, console=console, admin=admin)
        else:
            from scenarios.system import StartError, local_system

            try:
                with local_system(keep_data=keep_data, say=lambda m: console.print(f"[dim]{escape(m)}[/]")) as system:
                    meta.update(url=f"{system.url} (started by the runner)", database_url=system.database_url)
                    results = run_scenarios(chosen, system.url, system.database_url, concurrency=concurrency,
                                            console=console, admin=AdminCredentials("admin", system.admin_password))
            except StartError as err:
                console.print(f"[red]{escape(str(err))}[/]")
                raise typer.Exit(EXIT_USAGE) from None
    except SQLAlchemyError as err:
        console.print(f"[red]cannot read the system's database: {escape(str(err))}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    raise typer.Exit(finish(console, results, junit, json_path, meta))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point returning the exit status (for ``python -m scenarios`` and tests)."""
    try:
        status = app(args=list(argv) if argv is not None else None, standalone_mode=False)
        return int(status or 0)
    except typer.Exit as done:
        return int(done.exit_code)
    except SystemExit as done:
        return int(done.code or 0)
    except typer.Abort:
        return EXIT_USAGE
    except typer.TyperException as err:  # usage errors: bad option values, unknown options
        show = getattr(err, "show", None)
        if callable(show):
            show()
        else:
            print(err, file=sys.stderr)
        return EXIT_USAGE

if __name__ == "__main__":
    sys.exit(main())
