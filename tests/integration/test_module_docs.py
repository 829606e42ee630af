"""Every custom module's documentation renders with ansible-doc, as users read it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.panzoto.aws import AWS_ARGUMENT_SPEC
from check_module_docs import ansible_doc_problems

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(path.stem for path in (REPO_ROOT / "library").glob("*.py"))
ANSIBLE_DOC = str(Path(sys.executable).parent / "ansible-doc")
# Modules that talk to no AWS endpoint (the diagnosis's log reader on the API servers, the report writers).
NO_AWS_MODULES = {"job_log_evidence", "junit_report", "report_files"}


def ansible_doc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ANSIBLE_DOC, "-M", str(REPO_ROOT / "library"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("module", MODULES)
def test_docs_render_with_options_examples_and_return_values(module: str) -> None:
    rendered = ansible_doc(module)
    assert rendered.returncode == 0, rendered.stderr
    for heading in ("OPTIONS", "EXAMPLES", "RETURN VALUES"):
        assert heading in rendered.stdout

    doc = json.loads(ansible_doc("--json", module).stdout)[module]
    options = doc["doc"]["options"]
    if module not in NO_AWS_MODULES:
        assert set(AWS_ARGUMENT_SPEC) <= set(options), "every AWS option is documented"
    assert all(option.get("description") for option in options.values())
    assert doc["examples"].strip() and doc["return"]
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"


@pytest.mark.parametrize("module", MODULES)
def test_options_and_return_values_render_whole(module: str) -> None:
    """No field ansible-doc does not know, no description cut short (tests/harness/check_module_docs.py explains)."""
    doc = json.loads(ansible_doc("--json", module).stdout).get(module)
    problems = ansible_doc_problems(doc)
    assert problems == [], "\n".join(problem["msg"] for problem in problems)
