"""panzoto_release's prune: releases share virtualenvs (venvs/<id>); one goes only when no kept release links to it."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "roles" / "panzoto_app" / "library" / "panzoto_release.py"


@pytest.fixture(scope="module")
def release_module():
    spec = importlib.util.spec_from_file_location("panzoto_release", LIBRARY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(home: Path, release: str, venv: str | None, created: str, complete: bool = True) -> None:
    directory = home / "releases" / release
    directory.mkdir(parents=True)
    if venv is not None:
        (home / "venvs" / venv).mkdir(parents=True, exist_ok=True)
        os.symlink(f"../../venvs/{venv}", directory / "venv")
    if complete:
        (directory / "release.json").write_text(json.dumps({"id": release, "created": created}))


def test_prune_removes_a_virtualenv_only_once_no_kept_release_links_to_it(release_module, tmp_path: Path) -> None:
    home, state = tmp_path / "opt", tmp_path / "state"
    state.mkdir()
    build(home, "r1", "deps-a", "2026-01-01T00:00:00Z")  # old dependencies, pruned with its release
    build(home, "r2", "deps-b", "2026-01-02T00:00:00Z")
    build(home, "r3", "deps-b", "2026-01-03T00:00:00Z")  # a settings-only change: same virtualenv as r2
    (home / "venvs" / "deps-interrupted").mkdir()  # a build that never finished, linked by nobody
    os.symlink("releases/r3", home / "current")
    module = SimpleNamespace(params={"keep": 2, "keep_failed": 0}, check_mode=False)

    found = release_module.releases(str(home))
    assert {item["id"]: item["venv"] for item in found} == {"r1": "deps-a", "r2": "deps-b", "r3": "deps-b"}
    removed, removed_venvs = release_module.prune(module, str(home), str(state), found, "r3")

    assert (removed, removed_venvs) == (["r1"], ["deps-a", "deps-interrupted"])
    assert sorted(os.listdir(home / "venvs")) == ["deps-b"]
    (line,) = [json.loads(text) for text in (state / "history.jsonl").read_text().splitlines()]
    assert (line["releases"], line["venvs"]) == (["r1"], ["deps-a", "deps-interrupted"])


def test_check_mode_names_what_prune_would_remove_and_removes_nothing(release_module, tmp_path: Path) -> None:
    home, state = tmp_path / "opt", tmp_path / "state"
    state.mkdir()
    build(home, "r1", "deps-a", "2026-01-01T00:00:00Z")
    build(home, "r2", "deps-b", "2026-01-02T00:00:00Z")
    module = SimpleNamespace(params={"keep": 1, "keep_failed": 0}, check_mode=True)

    found = release_module.releases(str(home))
    assert release_module.prune(module, str(home), str(state), found, "r2") == (["r1"], ["deps-a"])
    assert sorted(os.listdir(home / "venvs")) == ["deps-a", "deps-b"] and (home / "releases" / "r1").is_dir()
    assert not (state / "history.jsonl").exists()
