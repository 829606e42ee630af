"""The ready-to-copy scheduled CI definitions (examples/ci/): valid for their CI, hourly, red on breach,
publishing the audit's reports and keeping its history, and working as written.

Validated offline with check-jsonschema's vendored schemas (GitHub workflows, GitLab CI), then executed:
each job's shell lines, in order, in a fresh copy of the repository with a fresh Python 3.11 (what
actions/setup-python or the python:3.11-slim image gives), the AWS endpoint pointed at a local moto
seeded with the guide's snapshot and the secrets filled with fake values; every path they publish
(artifacts, caches, the JUnit report) must then exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import local_aws
import pytest
import seed_jobs
import yaml
from ansible.module_utils.panzoto.audit.history import HISTORY_FILE, STATE_FILE
from ansible.module_utils.panzoto.audit.reports import REPORT_FILES
from support.local_http import capturing_webhook

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


# --- Executing the definitions -------------------------------------------------------------------------

# The secrets and CI variables a user sets, filled for the local endpoint (moto's fake credentials);
# the webhook's is a local capturing one, so the alert state the jobs cache is written too.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
COMPARISON = re.compile(r"^(?P<left>[\w.]+) (?P<op>==|!=) '(?P<right>[^']*)'$")
# What the runner itself provides: the checkout is the fresh copy, setup-python the fresh interpreter.
PROVIDED_ACTIONS = {"actions/checkout", "actions/setup-python"}
# Actions that only move files: their paths are checked after the job instead of being run.
PUBLISHING_ACTIONS = {"actions/cache", "actions/cache/restore", "actions/cache/save", "actions/upload-artifact"}


@pytest.fixture(scope="module")
def snapshot_endpoint(module_aws: local_aws.LocalAws) -> str:
    """The guide's October 19 snapshot: 49 failed jobs, so the audit breaches (exit 2)."""
    seed_jobs.seed_guide_snapshot(module_aws.endpoint_url)
    return module_aws.endpoint_url


def fresh_checkout(tmp_path: Path) -> Path:
    """The repository's tracked files as this working tree has them: what a CI runner's clone holds."""
    clone = tmp_path / "clone"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    # The collections' source wheel as a restored cache holds it (downloaded from PyPI when absent).
    (clone / ".cache" / "wheels").mkdir(parents=True)
    for wheel in (REPO_ROOT / ".cache" / "wheels").glob("ansible-*.whl"):
        (clone / ".cache" / "wheels" / wheel.name).symlink_to(wheel.resolve())
    return clone


def runner_environment(tmp_path: Path, endpoint_url: str) -> dict[str, str]:
    """A fresh Python 3.11 first on PATH, none of this test run's AWS or Ansible settings, the endpoint set."""
    interpreter = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "venv", str(interpreter)], check=True)
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "ANSIBLE_", "PYTEST", "VIRTUAL_ENV")) and key != "PYTHONPATH"
    }
    return {
        **inherited,
        "PATH": f"{interpreter / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "AWS_ENDPOINT_URL": endpoint_url,
    }


def run_shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """As both runners do: bash, stopping at the first failing line."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def github_value(expression: str, secrets: dict[str, str], outputs: dict[str, dict[str, str]]) -> str:
    """The expressions the workflow uses; any other one fails the test, so the emulation never guesses."""
    scope, _, rest = expression.partition(".")
    if scope == "secrets" and rest in secrets:
        return secrets[rest]
    if expression == "github.run_id":
        return "1"
    match = re.fullmatch(r"steps\.([\w-]+)\.outputs\.(\w+)", expression)
    if match:
        return outputs.get(match[1], {}).get(match[2], "")
    raise AssertionError(f"the test does not know the workflow expression ${{{{ {expression} }}}}")


def github_condition(condition: str | None, failed: bool, outputs: dict[str, dict[str, str]]) -> bool:
    """A step's `if:` (none means success()); the only expressions in one are step outputs."""
    if condition is None:  # success()
        return not failed
    if condition == "always()":
        return True
    match = COMPARISON.match(condition)
    if not match:
        raise AssertionError(f"the test does not know the workflow condition {condition!r}")
    equal = github_value(match["left"], {}, outputs) == match["right"]
    return equal if match["op"] == "==" else not equal


def read_step_outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if "=" in line)


def published_paths(paths: str | list[str]) -> list[str]:
    return [line.strip() for line in (paths.splitlines() if isinstance(paths, str) else paths) if line.strip()]


@pytest.fixture
def checkout(tmp_path: Path, snapshot_endpoint: str) -> Iterator[tuple[Path, dict[str, str], dict[str, str], list]]:
    """(the clone, the runner's environment, the secrets filled in, the alerts the webhook received)."""
    with capturing_webhook() as (webhook_url, posts):
        secrets = {**FAKE_CREDENTIALS, "PANZOTO_AUDIT_WEBHOOK_URL": webhook_url}
        yield fresh_checkout(tmp_path), runner_environment(tmp_path, snapshot_endpoint), secrets, posts


def test_github_workflow_runs_as_written(checkout: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    clone, environment, secrets, alerts = checkout
    job = yaml.safe_load(GITHUB.read_text())["jobs"]["audit"]
    summary, outputs, failed, transcript = tmp_path / "summary.md", {}, False, []
    for step in job["steps"]:
        action = step.get("uses", "").split("@")[0]
        if action:
            assert action in PROVIDED_ACTIONS | PUBLISHING_ACTIONS | {"mikepenz/action-junit-report"}, action
            continue
        if not github_condition(step.get("if"), failed, outputs):
            transcript.append(f"skipped: {step.get('name')}")
            continue
        output_file = tmp_path / f"output-{len(transcript)}"
        env = {
            **environment,
            **job.get("env", {}),
            "GITHUB_OUTPUT": str(output_file),
            "GITHUB_STEP_SUMMARY": str(summary),
        }
        env |= {
            key: EXPRESSION.sub(lambda m: github_value(m[1], secrets, outputs), value)
            for key, value in step.get("env", {}).items()
        }
        script = EXPRESSION.sub(lambda m: github_value(m[1], secrets, outputs), step["run"])
        result = run_shell(script, clone, env)
        transcript.append(
            f"{step.get('name')}: exit {result.returncode}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
        if "id" in step:
            outputs[step["id"]] = read_step_outputs(output_file)
        failed = failed or result.returncode != 0
    log = "\n".join(transcript)
    # The snapshot breaches the guide's thresholds: the audit exits 2, the reports are published, the job is red.
    assert outputs["audit"] == {"rc": "2"}, log
    assert len(alerts) == 1, log
    assert failed and "job audit exit code 2" in log, log
    assert "job audit" in summary.read_text().lower() and "legacy_encryption" in summary.read_text(), log
    for step in job["steps"]:
        paths = step.get("with", {}).get("path") or step.get("with", {}).get("report_paths")
        for path in published_paths(paths or []):
            assert (clone / path).is_file() or (clone / path).is_dir(), (
                f"{step.get('name') or step['uses']}: {path}\n{log}"
            )


def test_gitlab_job_runs_as_written(checkout: tuple[Path, dict[str, str]]) -> None:
    clone, environment, secrets, alerts = checkout
    job = yaml.safe_load(GITLAB.read_text())["job-audit"]
    env = {**environment, **secrets, "CI_PROJECT_DIR": str(clone), "CI_PIPELINE_SOURCE": "schedule"}
    for key, value in job["variables"].items():
        env[key] = (
            os.path.expandvars(value)
            if "$CI_PROJECT_DIR" not in value
            else value.replace("$CI_PROJECT_DIR", str(clone))
        )
    before = run_shell("\n".join(job["before_script"]), clone, env)
    assert before.returncode == 0, before.stdout[-3000:] + before.stderr[-3000:]
    script = run_shell("\n".join(job["script"]), clone, env)
    after = run_shell("\n".join(job["after_script"]), clone, env)
    log = script.stdout[-3000:] + script.stderr[-3000:]
    # The script's exit code is the job's: the snapshot breaches, so the job is red, and the reports are kept.
    assert script.returncode == 2, log
    assert len(alerts) == 1, log
    assert after.returncode == 0 and "legacy_encryption" in after.stdout, after.stdout + after.stderr
    published = job["artifacts"]["paths"] + [job["artifacts"]["reports"]["junit"]]
    # pip's own cache is left out: pip fills it only with what it downloads, and here wheels may come from disk.
    published += [path for cache in job["cache"] if cache["key"] != "pip" for path in cache["paths"]]
    for path in published:
        assert (clone / path).exists(), f"{path} is published but the job did not write it\n{log}"
