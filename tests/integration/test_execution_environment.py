"""execution-environment.yml: ansible-builder accepts it (it writes the build context, offline) and it names
the runtime at the versions the project pins."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import ansible_collections
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def pinned(name: str) -> str:
    match = re.search(rf"^{re.escape(name)}==(\S+)", (REPO_ROOT / "requirements" / "runtime.txt").read_text(), re.M)
    return match.group(1)


def test_ansible_builder_creates_the_context_with_the_runtime(tmp_path: Path) -> None:
    builder = str(Path(sys.executable).parent / "ansible-builder")
    result = subprocess.run(
        [builder, "create", "-f", str(REPO_ROOT / "execution-environment.yml"), "-c", str(tmp_path / "context")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert f"ansible-core=={pinned('ansible-core')}" in containerfile
    assert f"boto3=={pinned('boto3')}" in (tmp_path / "context" / "_build" / "requirements.txt").read_text()
    collections = yaml.safe_load((tmp_path / "context" / "_build" / "requirements.yml").read_text())["collections"]
    installed = Path(ansible_collections.__path__[0])
    for entry in collections:
        namespace, name = entry["name"].split(".")
        manifest = json.loads((installed / namespace / name / "MANIFEST.json").read_text())
        assert entry["version"] == manifest["collection_info"]["version"], entry
    runtime = yaml.safe_load((REPO_ROOT / "collections" / "requirements.yml").read_text())["collections"]
    assert collections == runtime
