"""The versions kept on disk: listing, rollback, clean-up.

Every write leaves the previous version intact, so rolling back is pointing CURRENT at an older
complete version (under the writers' lock, like a write). Clean-up keeps the newest
``keep_versions`` and the live one, and removes half-written leftovers of a crashed writer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from kb_index.models import KBError
from kb_index.storage import FORMAT_VERSION, current_version, write_atomic


def complete(vdir: Path) -> bool:
    """A version whose writer finished: the manifest is written after every other file."""
    return (vdir / "manifest.json").is_file()


def list_versions(data_dir: Path) -> list[dict[str, Any]]:
    """Complete versions on disk, newest first, with what each holds."""
    versions = Path(data_dir) / "versions"
    if not versions.exists():
        return []
    live = current_version(data_dir)
    out = []
    for vdir in sorted((p for p in versions.iterdir() if p.is_dir() and complete(p)), key=lambda p: p.name, reverse=True):
        try:
            m = json.loads((vdir / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out.append({
            "version": vdir.name, "current": vdir.name == live, "format": m.get("format"), "embedder": m.get("embedder"),
            "articles": m.get("articles"), "chunks": m.get("chunks"), "questions": m.get("questions"),
            "content_hash": m.get("content_hash"), "updated_at": m.get("updated_at"),
        })  # fmt: skip
    return out


def check_rollback_target(data_dir: Path, version: str, embedder_name: str, dim: int) -> None:
    """Refuse a rollback to something that is not a complete, loadable version of this embedder."""
    if not version or "/" in version or version.startswith("."):
        raise KBError(f"not a version name: {version!r}")
    vdir = Path(data_dir) / "versions" / version
    if not vdir.is_dir():
        known = ", ".join(v["version"] for v in list_versions(data_dir)) or "none"
        raise KBError(f"no index version {version!r} on disk (kept versions: {known})")
    if not complete(vdir):
        raise KBError(f"index version {version!r} is incomplete (its writer did not finish); it cannot be restored")
    m = json.loads((vdir / "manifest.json").read_text(encoding="utf-8"))
    if m.get("format") != FORMAT_VERSION:
        raise KBError(f"index version {version!r} has format {m.get('format')}, this code reads {FORMAT_VERSION}; it cannot be restored")
    if m.get("embedder") != embedder_name or m.get("dim") != dim:
        raise KBError(f"index version {version!r} was built with embedder {m.get('embedder')!r}, the index uses {embedder_name!r}")
    if current_version(data_dir) == version:
        raise KBError(f"version {version!r} is already the live version")


def point_current(data_dir: Path, version: str) -> None:
    write_atomic(Path(data_dir) / "CURRENT", version + "\n")


def collect_garbage(data_dir: Path, keep_versions: int, protect: set[str]) -> None:
    """Remove versions other than the newest ``keep_versions`` and ``protect`` (the live one).
    A search of this process still on an old snapshot keeps working: its indexes are in memory
    and its SQLite file stays open."""
    versions = Path(data_dir) / "versions"
    if not versions.exists():
        return
    names = sorted((p.name for p in versions.iterdir() if p.is_dir()), reverse=True)
    keep = set(names[: max(1, keep_versions)]) | protect
    for name in names:
        if name not in keep:
            shutil.rmtree(versions / name, ignore_errors=True)
