"""The cleanup module documents the shared selection options once, through the panzoto_selection fragment."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import yaml
from ansible.module_utils.panzoto.selection import SELECTION_ARGUMENT_SPEC

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = REPO_ROOT / "library" / "processing_jobs_cleanup.py"
FRAGMENT = REPO_ROOT / "plugins" / "doc_fragments" / "panzoto_selection.py"
ANSIBLE_DOC = str(Path(sys.executable).parent / "ansible-doc")


def documentation(path: Path) -> dict:
    """The DOCUMENTATION string of a module (or of a fragment's class) as YAML, without importing it."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            return yaml.safe_load(node.value.value)
    raise AssertionError(f"no DOCUMENTATION in {path}")


def test_the_cleanup_extends_the_selection_fragment_and_repeats_no_type_or_default() -> None:
    doc = documentation(MODULE)
    assert "panzoto_selection" in doc["extends_documentation_fragment"]
    own = {name: option for name, option in doc["options"].items() if name in SELECTION_ARGUMENT_SPEC}
    # Only a cleanup-specific description may be given for a shared option; its type and default are the fragment's.
    assert {name: sorted(option) for name, option in own.items() if set(option) != {"description"}} == {}
    assert set(own) <= {"table", "categories", "user_index", "job_ids"}


def test_the_fragment_documents_every_selection_option_as_its_spec_says() -> None:
    options = documentation(FRAGMENT)["options"]
    assert set(options) == set(SELECTION_ARGUMENT_SPEC)
    for name, spec in SELECTION_ARGUMENT_SPEC.items():
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("default") == spec.get("default"), name


def test_ansible_doc_shows_the_selection_options_with_the_cleanups_own_descriptions() -> None:
    rendered = subprocess.run(
        [ANSIBLE_DOC, "-M", str(REPO_ROOT / "library"), "--json", "processing_jobs_cleanup"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    options = json.loads(rendered.stdout)["processing_jobs_cleanup"]["doc"]["options"]
    for name, spec in SELECTION_ARGUMENT_SPEC.items():
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("default") == spec.get("default"), name
    # From the fragment, unchanged.
    assert options["segments"]["description"] == "Parallel scan segments."
    # The cleanup's own word where it differs: other tables, restore.
    assert "panzoto-transcripts" in " ".join(options["table"]["description"])
    assert any("state=restored" in line for line in options["job_ids"]["description"])
