"""The model cache key (bot/training.py): same inputs, same model; any change, a new one."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.training import ROOT, model_hash


def copy_project(tmp: Path) -> tuple[Path, Path, list[Path]]:
    shutil.copy(ROOT / "bot" / "domain.yml", tmp / "domain.yml")
    (tmp / "config.yml").write_text("recipe: default.v1\nlanguage: en\n")
    shutil.copytree(ROOT / "bot" / "data", tmp / "data")
    shutil.copytree(ROOT / "nlu_data", tmp / "nlu")
    return tmp / "config.yml", tmp / "domain.yml", [tmp / "data", tmp / "nlu"]


def test_hash_is_stable(tmp_path: Path) -> None:
    config, domain, data = copy_project(tmp_path)
    assert model_hash(config, domain, data) == model_hash(config, domain, data)


def test_hash_changes_with_each_input(tmp_path: Path) -> None:
    config, domain, data = copy_project(tmp_path)
    seen = {model_hash(config, domain, data)}
    config.write_text(config.read_text() + "# tweak\n")
    seen.add(model_hash(config, domain, data))
    domain.write_text(domain.read_text() + "\n# tweak\n")
    seen.add(model_hash(config, domain, data))
    nlu = next((tmp_path / "nlu").rglob("*.yml"))
    nlu.write_text(nlu.read_text() + "\n# tweak\n")
    seen.add(model_hash(config, domain, data))
    (tmp_path / "nlu" / "extra.yml").write_text('version: "3.1"\n')
    seen.add(model_hash(config, domain, data))
    assert len(seen) == 5
