"""Knowledge-base index versions: list them, keep them, roll back to any of them.

``kb_index.KnowledgeBase`` writes every change as a new immutable version directory under
``<kb>/versions/``, keeps the newest ``keep_versions`` on disk, lists them (``versions()``) and
rolls back to any of them (``rollback()``: under its writers' lock, checked to be complete and of
the same embedder, the live snapshot swapped; searches in flight finish on the one they hold).
Ops adds what outlives the KB's clean-up:

- ``archive()`` keeps every version it sees (hard links, since version files are never modified
  after their commit) under ``<data_dir>/ops/kb_archive/``, so any version stays restorable;
- ``rollback()`` puts an archived directory back under ``versions/`` when the KB removed it (under
  the KB's ``flock`` on ``<kb>/.lock``), then calls the live ``KnowledgeBase.rollback``. Without a
  live KB in this process (a CLI), it points ``CURRENT`` through ``kb_index.versions`` with the
  same checks, and other processes pick the change up on their next search.

Caveat: at start-up the gateway upserts the help-centre folder into the index, so after a restart
articles that differ from the folder are brought back up to date.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from api_errors import ApiError
from kb_index import versions as kb_versions
from kb_index.models import KBError
from kb_index.storage import current_version, file_lock


class KbVersionError(ApiError):
    """A refused knowledge-base version operation; its ``status`` is the HTTP status the API answers."""


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
        """Make ``version`` live again (restored from the archive if the KB removed it); ``kb`` is
        the live ``KnowledgeBase`` (None: CURRENT is pointed here, other processes follow)."""
        if "/" in version or version.startswith(".") or not version:
            raise KbVersionError(422, f"not a version name: {version!r}")
        self.archive()
        source = self.archive_dir / version
        live = self.kb_dir / "versions" / version
        if not source.exists() and not live.exists():
            raise KbVersionError(404, f"no knowledge-base version {version!r}")
        with file_lock(self.kb_dir / ".lock"):  # the KB writers' lock
            if current_version(self.kb_dir) == version:
                raise KbVersionError(409, f"version {version} is already current")
            if not live.exists():
                _link_copy(source, live)
        try:
            if kb is not None:
                return dict(kb.rollback(version))
            return self._point_current(version)
        except KBError as err:
            raise KbVersionError(409, str(err)) from err

    def _point_current(self, version: str) -> dict[str, Any]:
        manifest = self._manifest(version)
        with file_lock(self.kb_dir / ".lock"):  # the KB writers' lock
            previous = current_version(self.kb_dir)
            embedder, dim = str(manifest.get("embedder")), int(manifest.get("dim") or 0)
            kb_versions.check_rollback_target(self.kb_dir, version, embedder, dim)
            kb_versions.point_current(self.kb_dir, version)
        return {"current": version, "previous": previous}
