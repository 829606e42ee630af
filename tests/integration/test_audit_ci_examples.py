"""The ready-to-copy scheduled CI definitions (examples/ci/): valid for their CI, hourly, red on breach,
publishing the audit's reports and keeping its history.

Validated offline with check-jsonschema's vendored schemas (GitHub workflows, GitLab CI).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.panzoto.audit.alerts import STATE_FILE
from ansible.module_utils.panzoto.audit.history import HISTORY_FILE
from ansible.module_utils.panzoto.audit.reports import REPORT_FILES

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "ci"
GITHUB = EXAMPLES / "github-actions-audit.yml"
GITLAB = EXAMPLES / "gitlab-ci-audit.yml"
CHECK_JSONSCHEMA = str(Path(sys.executable).parent / "check-jsonschema")


def validate(path: Path, schema: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", schema, str(path)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(("path", "schema"), [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")])
def test_the_definitions_pass_their_schema(path: Path, schema: str, tmp_path: Path) -> None:
    result = validate(path, schema)
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator does reject a broken definition (a misspelt key, a script that is not a command).
    broken = yaml.safe_load(path.read_text())
    if "jobs" in broken:
        broken["jobs"]["audit"]["step"] = broken["jobs"]["audit"].pop("steps")
    else:
        broken["job-audit"]["script"] = 42
    (tmp_path / path.name).write_text(yaml.safe_dump(broken))
    assert validate(tmp_path / path.name, schema).returncode != 0


def test_github_runs_hourly_keeps_history_publishes_and_goes_red() -> None:
    workflow = yaml.safe_load(GITHUB.read_text())
    assert workflow["on"]["schedule"] == [{"cron": "7 * * * *"}]
    steps = workflow["jobs"]["audit"]["steps"]
    text = GITHUB.read_text()
    audit = next(step for step in steps if step.get("id") == "audit")
    assert "ansible-playbook -i inventory/production playbooks/audit_jobs.yml" in audit["run"]
    cached = [step for step in steps if step.get("uses", "").startswith("actions/cache/")]
    assert {step["uses"].split("@")[0] for step in cached} == {"actions/cache/restore", "actions/cache/save"}
    for step in cached:
        assert f"reports/{HISTORY_FILE}" in step["with"]["path"] and f"reports/{STATE_FILE}" in step["with"]["path"]
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact"))
    for name in REPORT_FILES.values():
        assert f"reports/{name}" in upload["with"]["path"]
    assert f'reports/{REPORT_FILES["markdown"]} >> "$GITHUB_STEP_SUMMARY"' in text
    # Publishing runs whatever the audit found; the last step turns any non-zero exit red.
    assert all(step.get("if") == "always()" for step in steps[steps.index(audit) + 1 : -1])
    assert steps[-1]["if"] == "steps.audit.outputs.rc != '0'" and "exit 1" in steps[-1]["run"]


def test_gitlab_runs_on_schedule_keeps_history_publishes_and_goes_red() -> None:
    job = yaml.safe_load(GITLAB.read_text())["job-audit"]
    assert {"if": '$CI_PIPELINE_SOURCE == "schedule"'} in job["rules"]
    # The script's exit code is the job's: a breach (2) or an audit that could not run (4) is red.
    assert job["script"] == ["ansible-playbook -i inventory/production playbooks/audit_jobs.yml"]
    history = next(cache for cache in job["cache"] if cache["key"] == "job-audit-history")
    assert history["when"] == "always"
    assert set(history["paths"]) == {f"reports/{HISTORY_FILE}", f"reports/{STATE_FILE}"}
    assert job["artifacts"]["when"] == "always"
    assert {f"reports/{name}" for name in REPORT_FILES.values()} <= set(job["artifacts"]["paths"])
    assert job["artifacts"]["reports"]["junit"] == f"reports/{REPORT_FILES['junit']}"
    assert "CI_PIPELINE_SOURCE" in GITLAB.read_text() and '"7 * * * *"' in GITLAB.read_text()
