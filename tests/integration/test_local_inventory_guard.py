"""The default inventory (inventory/local) never reaches real AWS by accident (playbooks/tasks/local_aws_guard.yml).

Without AWS_ENDPOINT_URL or panzoto_aws_endpoint_url, a playbook run through it is refused in one line before
anything runs, unless -e panzoto_allow_real_aws=true says so; inventory/production is not concerned. The runs
here have no AWS_ENDPOINT_URL, but an AWS config file whose default profile points boto3 at the local endpoint:
a run the guard let through still talks to 127.0.0.1 only, and the test sees what it did there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest
import seed_jobs
import yaml
from support.playbook import REPO_ROOT, PlaybookRun, run_playbook

GUIDE_NOW = "2025-10-19T18:00:00Z"
# The playbooks that talk to AWS from the control node, with where each would write (set to the test's directory).
PLAYBOOKS = {
    "audit_jobs.yml": lambda out: {"audit_report_dir": str(out), "audit_now": GUIDE_NOW},
    "retention_jobs.yml": lambda out: {
        "retention_jobs_report_dir": str(out),
        "retention_jobs_archive_path": str(out / "archive.jsonl"),
        "retention_jobs_completed_after": "1d",
    },
    "preflight.yml": lambda out: {
        "preflight_report_dir": str(out),
        "preflight_aws_only": True,
        # Nothing answers there: the OpenAI item fails quickly and locally.
        "preflight_openai_api_base": "http://127.0.0.1:9/v1",
        "preflight_openai_api_key": "sk-test-guard",
    },
}
REFUSAL = "is for a local AWS endpoint and none is set"


@pytest.fixture
def no_endpoint(aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment without AWS_ENDPOINT_URL whose AWS config still leads boto3 to the local endpoint."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nregion = us-east-1\nendpoint_url = {aws.endpoint_url}\n")
    seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    return {
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def job_items(endpoint_url: str) -> list[dict]:
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pages = client.get_paginator("scan").paginate(TableName="panzoto-processing-jobs", ConsistentRead=True)
    return sorted((item for page in pages for item in page["Items"]), key=lambda item: item["job_id"]["S"])


def run(playbook: str, out: Path, env: dict[str, str], **extra_vars) -> PlaybookRun:
    return run_playbook(playbook, extra_vars={**PLAYBOOKS[playbook](out), **extra_vars}, env=env)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_without_an_endpoint_the_local_inventory_refuses_in_one_line(
    playbook: str, aws, no_endpoint: dict[str, str], tmp_path: Path
) -> None:
    before = job_items(aws.endpoint_url)
    result = run(playbook, tmp_path / "out", no_endpoint)
    assert result.returncode != 0, result.output[-3000:]
    (line,) = [line for line in result.output.splitlines() if line.startswith("[ERROR]") and REFUSAL in line]
    assert "inventory/local" in line and "-e panzoto_allow_real_aws=true" in line and "nothing was run" in line
    assert "AWS_ENDPOINT_URL" in line and "-i inventory/production" in line
    # Nothing ran after the guard: no report directory, the table as it was.
    assert result.stats["localhost"] == {**result.stats["localhost"], "ok": 0, "failed": 1}, result.output[-3000:]
    assert not (tmp_path / "out").exists()
    assert job_items(aws.endpoint_url) == before


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_the_explicit_opt_in_runs_with_the_shells_aws_settings(playbook: str, no_endpoint, tmp_path: Path) -> None:
    result = run(playbook, tmp_path / "out", no_endpoint, panzoto_allow_real_aws=True)
    assert REFUSAL not in result.output, result.output[-3000:]
    # It ran (against what the AWS config names, here the local endpoint): its report is written.
    assert any((tmp_path / "out").iterdir()), result.output[-3000:]


def test_an_endpoint_given_as_a_variable_is_enough(aws, no_endpoint, tmp_path: Path) -> None:
    result = run("audit_jobs.yml", tmp_path / "out", no_endpoint, panzoto_aws_endpoint_url=aws.endpoint_url)
    assert REFUSAL not in result.output and result.returncode in (0, 2), result.output[-3000:]
    assert (tmp_path / "out" / "job-audit.json").is_file()


def test_a_false_or_misspelt_opt_in_is_no_opt_in(no_endpoint, tmp_path: Path) -> None:
    for value in (False, "ture"):
        result = run("audit_jobs.yml", tmp_path / "out", no_endpoint, panzoto_allow_real_aws=value)
        assert result.returncode != 0 and REFUSAL in result.output, value
    assert not (tmp_path / "out").exists()


def test_the_production_inventory_is_not_concerned(no_endpoint, tmp_path: Path) -> None:
    result = run_playbook(
        "audit_jobs.yml",
        inventory=REPO_ROOT / "inventory" / "production",
        extra_vars=PLAYBOOKS["audit_jobs.yml"](tmp_path / "out"),
        env=no_endpoint,
    )
    assert REFUSAL not in result.output and result.returncode in (0, 2), result.output[-3000:]
    # The commands it prints for the next steps run on the inventory it ran with.
    steps = json.loads((tmp_path / "out" / "job-audit.json").read_text())["next_steps"]
    commands = [step["command"] for step in steps]
    assert commands and all(command.startswith("ansible-playbook -i inventory/production ") for command in commands)


def test_every_playbook_that_starts_on_the_control_node_imports_the_guard_first() -> None:
    """A play on localhost is where the AWS modules run: its playbook refuses first, whatever the tags."""
    starting_on_localhost = []
    for path in sorted((REPO_ROOT / "playbooks").glob("*.yml")):
        first_play = yaml.safe_load(path.read_text())[0]
        if first_play["hosts"] != "localhost":
            continue
        starting_on_localhost.append(path.name)
        guard = (first_play.get("pre_tasks") or [{}])[0]
        assert guard.get("ansible.builtin.import_tasks") == "tasks/local_aws_guard.yml", path.name
        assert guard.get("tags") == ["always"], path.name
    assert {*PLAYBOOKS, "cleanup_jobs.yml", "diagnose_jobs.yml", "monitoring.yml"} <= set(starting_on_localhost)


@pytest.mark.parametrize("playbook", ["diagnose_jobs.yml", "monitoring.yml"])
def test_the_diagnosis_and_the_alarms_refuse_too(playbook: str, aws, no_endpoint: dict[str, str]) -> None:
    before = job_items(aws.endpoint_url)
    result = run_playbook(playbook, env=no_endpoint)
    assert result.returncode != 0 and REFUSAL in result.output, result.output[-3000:]
    assert result.stats["localhost"]["ok"] == 0
    assert job_items(aws.endpoint_url) == before
