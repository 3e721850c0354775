"""Knowledge-base index versions: list them, keep them, roll back to any of them.

``kb_index.KnowledgeBase`` writes every change as a new immutable version directory under
``<kb>/versions/`` and points ``<kb>/CURRENT`` at it, but keeps only the newest two on disk and has
no public "roll back" call. Ops therefore:

- archives every version it sees (``archive()``: hard links, since version files are never modified
  after their commit) under ``<data_dir>/ops/kb_archive/``, so any version stays restorable;
- rolls back by putting the archived directory back under ``versions/`` (if the KB removed it) and
  replacing ``CURRENT`` atomically while holding the KB's writer lock (the same ``flock`` on
  ``<kb>/.lock`` that its writers take), then asking the live ``KnowledgeBase`` to ``refresh()``.
  Searches in flight finish on the snapshot they hold; the next search sees the old version; the
  next write starts from it (the KB's writers always re-read CURRENT under that lock first).

Caveat (reported to the KB owner): at start-up the gateway upserts the help-centre folder into the
index, so after a restart articles that differ from the folder are brought back up to date.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class KbVersionError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@contextlib.contextmanager
def _kb_lock(kb_dir: Path) -> Iterator[None]:
    kb_dir.mkdir(parents=True, exist_ok=True)
    with open(kb_dir / ".lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def current_version(kb_dir: Path) -> str | None:
    path = kb_dir / "CURRENT"
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def _complete(vdir: Path) -> bool:
    """A version whose writer finished: manifest written last, after every other file."""
    return (vdir / "manifest.json").exists()


def _link_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    shutil.copytree(src, tmp, copy_function=_link_or_copy)
    os.replace(tmp, dst)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class KbVersions:
    def __init__(self, kb_dir: Path, archive_dir: Path) -> None:
        self.kb_dir = Path(kb_dir)
        self.archive_dir = Path(archive_dir)

    def archive(self) -> list[str]:
        """Copy (hard-link) every complete version not archived yet; returns the new ones."""
        versions = self.kb_dir / "versions"
        if not versions.exists():
            return []
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        added = []
        for vdir in sorted(versions.iterdir()):
            target = self.archive_dir / vdir.name
            if vdir.is_dir() and not vdir.name.startswith(".") and _complete(vdir) and not target.exists():
                try:
                    _link_copy(vdir, target)
                except FileNotFoundError:  # removed by the KB's clean-up while we copied
                    continue
                added.append(vdir.name)
        return added

    def list(self) -> list[dict[str, Any]]:
        self.archive()
        current = current_version(self.kb_dir)
        names = {p.name for p in self.archive_dir.iterdir() if p.is_dir() and not p.name.startswith(".")} if self.archive_dir.exists() else set()
        out = []
        for name in sorted(names, reverse=True):
            manifest = self._manifest(name)
            out.append({
                "version": name, "current": name == current, "articles": manifest.get("articles"),
                "chunks": manifest.get("chunks"), "languages": manifest.get("languages"),
                "embedder": manifest.get("embedder"), "content_hash": manifest.get("content_hash"),
                "updated_at": manifest.get("updated_at"), "on_disk": (self.kb_dir / "versions" / name).exists(),
            })  # fmt: skip
        return out

    def _manifest(self, name: str) -> dict[str, Any]:
        for base in (self.archive_dir / name, self.kb_dir / "versions" / name):
            try:
                return json.loads((base / "manifest.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
        return {}

    def rollback(self, version: str, kb: Any = None) -> dict[str, Any]:
        """Point CURRENT at ``version`` (restored from the archive if needed); ``kb`` is the live
        ``KnowledgeBase`` to refresh (None: other processes pick the change up on their own)."""
        if "/" in version or version.startswith(".") or not version:
            raise KbVersionError(422, f"not a version name: {version!r}")
        self.archive()
        source = self.archive_dir / version
        live = self.kb_dir / "versions" / version
        if not source.exists() and not live.exists():
            raise KbVersionError(404, f"no knowledge-base version {version!r}")
        manifest = self._manifest(version)
        if kb is not None and getattr(kb, "embedder", None) is not None and manifest.get("embedder") not in (None, kb.embedder.name):
            raise KbVersionError(409, f"version {version} was built with embedder {manifest.get('embedder')!r}, "
                                      f"the live index uses {kb.embedder.name!r}")
        with _kb_lock(self.kb_dir):
            previous = current_version(self.kb_dir)
            if previous == version:
                raise KbVersionError(409, f"version {version} is already current")
            if not live.exists():
                _link_copy(source, live)
            tmp = self.kb_dir / f".CURRENT.{uuid.uuid4().hex[:8]}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(version + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.kb_dir / "CURRENT")
        if kb is not None:
            kb.refresh()
        return {"current": version, "previous": previous}
