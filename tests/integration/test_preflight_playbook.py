"""playbooks/preflight.yml, control-node items, against moto and a local OpenAI stand-in: the table,
the JSON and JUnit reports made from the same results, and a run under ansible-runner (AWX's engine)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import ansible_runner
import boto3
import local_aws
import pytest
import seed_jobs
import yaml
from junitparser import Failure, JUnitXml
from support.local_http import fake_openai
from support.playbook import REPO_ROOT, VENV_BIN, PlaybookRun, checklist_verdicts, run_playbook

GOOD_KEY = "sk-test-preflight-good-0123456789"


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    return tmp_path / "reports"


@pytest.fixture
def preflight(report_dir: Path):
    """Runs preflight.yml (check mode unless told) with the reports in the test's own directory."""

    def run(endpoint_url: str, api_base: str, key: str, check: bool = True, **extra_vars) -> PlaybookRun:
        return run_playbook(
            "preflight.yml",
            extra_vars={
                "preflight_openai_api_base": api_base,
                "preflight_openai_api_key": key,
                "preflight_report_dir": str(report_dir),
                # The local inventory has no API servers: these runs check the AWS side, and say so.
                "preflight_aws_only": True,
                **extra_vars,
            },
            env={"AWS_ENDPOINT_URL": endpoint_url},
            check=check,
        )

    return run


@pytest.fixture
def seeded(aws):
    seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    return aws


def junit_verdicts(path: Path) -> dict[str, str]:
    """{item: "PASS" | "FAIL"} from the JUnit report, read by a JUnit library; items on the control node only."""
    verdicts = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            host = case.classname.removeprefix("preflight.")
            title = case.name if host == "localhost" else f"{host}: {case.name}"
            verdicts[title] = "FAIL" if any(isinstance(result, Failure) for result in case.result) else "PASS"
    return verdicts


def test_a_healthy_account_passes_every_item_and_changes_nothing(seeded, preflight, report_dir) -> None:
    with fake_openai(GOOD_KEY) as api_base:
        run = preflight(seeded.endpoint_url, api_base, GOOD_KEY)

    assert run.returncode == 0, run.output
    items = checklist_verdicts(run.stdout)
    assert items == {
        "DynamoDB table panzoto-processing-jobs": "PASS",
        "DynamoDB table panzoto-audio-files": "PASS",
        "DynamoDB table panzoto-transcripts": "PASS",
        "DynamoDB table panzoto-users": "PASS",
        "DynamoDB table panzoto-user-preferences": "PASS",
        "DynamoDB table panzoto-daily-summaries": "PASS",
        "DynamoDB table panzoto-daily-summary-tracking": "PASS",
        "DynamoDB table panzoto-usage-records in us-east-1": "PASS",
        "DynamoDB table panzoto-cost-summaries in us-east-1": "PASS",
        "DynamoDB table panzoto-user-credits in us-east-1": "PASS",
        "S3 bucket panzoto": "PASS",
        "Encryption keys in Secrets Manager": "PASS",
        "Encryption keys are well formed": "PASS",
        "OpenAI API key": "PASS",
    }
    assert "5 of 5 users have a key" in run.stdout
    assert run.stats["localhost"]["changed"] == 0
    assert GOOD_KEY not in run.output
    report = json.loads((report_dir / "preflight.json").read_text())
    assert report["status"] == "passed"
    assert {check["name"]: check["ok"] for check in report["checks"]} == {name: True for name in items}
    assert junit_verdicts(report_dir / "preflight-junit.xml") == items
    assert (
        GOOD_KEY not in (report_dir / "preflight.json").read_text() + (report_dir / "preflight-junit.xml").read_text()
    )


def test_each_broken_item_fails_on_its_own_line(seeded, preflight, report_dir) -> None:
    client = boto3.client("dynamodb", endpoint_url=seeded.endpoint_url)
    client.delete_table(TableName="panzoto-transcripts")
    secrets = boto3.client("secretsmanager", endpoint_url=seeded.endpoint_url)
    victim = sorted(s["Name"] for s in secrets.list_secrets()["SecretList"])[0]
    secrets.delete_secret(SecretId=victim, ForceDeleteWithoutRecovery=True)

    with fake_openai(GOOD_KEY) as api_base:
        run = preflight(seeded.endpoint_url, api_base, "sk-wrong-key")

    assert run.returncode == 2
    items = checklist_verdicts(run.stdout)
    assert items["DynamoDB table panzoto-transcripts"] == "FAIL"
    assert items["DynamoDB table panzoto-processing-jobs"] == "PASS"
    assert items["Encryption keys in Secrets Manager"] == "FAIL"
    assert items["OpenAI API key"] == "FAIL"
    assert "4 of 5 users have a key" in run.stdout and victim.rsplit("/", 1)[1] in run.stdout
    assert "rejected by" in run.stdout and "(HTTP 401)" in run.stdout
    failed = "DynamoDB table panzoto-transcripts; Encryption keys in Secrets Manager; OpenAI API key"
    assert f"Deployment checklist failed: {failed}" in run.output
    assert "sk-wrong-key" not in run.output
    # The reports say the same, item by item, with each failure's detail.
    assert junit_verdicts(report_dir / "preflight-junit.xml") == items
    report = json.loads((report_dir / "preflight.json").read_text())
    assert report["status"] == "failed"
    (transcripts,) = [check for check in report["checks"] if check["name"] == "DynamoDB table panzoto-transcripts"]
    assert transcripts == {
        "host": "localhost",
        "name": "DynamoDB table panzoto-transcripts",
        "title": "DynamoDB table panzoto-transcripts",
        "ok": False,
        "verdict": "FAIL",
        "detail": transcripts["detail"],
    }
    assert "ResourceNotFoundException" in transcripts["detail"]


def test_a_malformed_key_and_a_missing_bucket_fail(seeded, preflight) -> None:
    secrets = boto3.client("secretsmanager", endpoint_url=seeded.endpoint_url)
    name = sorted(s["Name"] for s in secrets.list_secrets()["SecretList"])[0]
    secrets.put_secret_value(SecretId=name, SecretString='{"encryption_key": "c2hvcnQ="}')

    with fake_openai(GOOD_KEY) as api_base:
        run = preflight(seeded.endpoint_url, api_base, GOOD_KEY, preflight_bucket="no-such-bucket")

    assert run.returncode == 2
    items = checklist_verdicts(run.stdout)
    assert items["Encryption keys are well formed"] == "FAIL"
    assert items["S3 bucket no-such-bucket"] == "FAIL"
    assert "malformed: " + name in run.stdout


def test_write_probe_proves_write_access_and_leaves_nothing_behind(seeded, preflight) -> None:
    s3 = boto3.client("s3", endpoint_url=seeded.endpoint_url)
    before = s3.list_objects_v2(Bucket="panzoto")["KeyCount"]

    with fake_openai(GOOD_KEY) as api_base:
        run = preflight(seeded.endpoint_url, api_base, GOOD_KEY, check=False, preflight_s3_write_probe=True)

    assert run.returncode == 0, run.output
    assert checklist_verdicts(run.stdout)["S3 write access panzoto"] == "PASS"
    assert s3.list_objects_v2(Bucket="panzoto")["KeyCount"] == before


def test_no_key_and_a_dead_api_fail_clearly(seeded, preflight) -> None:
    run = preflight(seeded.endpoint_url, "http://127.0.0.1:9/v1", "")
    assert run.returncode == 2
    assert "FAIL  OpenAI API key (no key configured" in run.stdout


def test_the_key_is_read_from_the_secrets_manager_secret_preflight_is_given(seeded, preflight) -> None:
    secrets = boto3.client("secretsmanager", endpoint_url=seeded.endpoint_url)
    secrets.create_secret(Name="panzoto/openai-api-key", SecretString=GOOD_KEY)

    with fake_openai(GOOD_KEY) as api_base:
        run = preflight(seeded.endpoint_url, api_base, "", preflight_openai_secret_id="panzoto/openai-api-key")

    assert run.returncode == 0, run.output
    assert checklist_verdicts(run.stdout)["OpenAI API key"] == "PASS"
    assert GOOD_KEY not in run.output


def test_a_secret_that_cannot_be_read_is_one_failed_item_and_the_rest_still_prints(seeded, preflight) -> None:
    with fake_openai(GOOD_KEY) as api_base:
        run = preflight(seeded.endpoint_url, api_base, "", preflight_openai_secret_id="panzoto/no-such-secret")

    assert run.returncode == 2
    items = checklist_verdicts(run.stdout)
    assert items["OpenAI API key"] == "FAIL"
    assert "FAIL  OpenAI API key (cannot read Secrets Manager secret panzoto/no-such-secret)" in run.stdout
    assert items["DynamoDB table panzoto-processing-jobs"] == "PASS"
    assert "Deployment checklist failed: OpenAI API key" in run.output


def test_an_unreachable_server_is_one_failed_line_and_limit_picks_the_servers(seeded, report_dir, tmp_path) -> None:
    """Two API servers on closed ports of 127.0.0.1 (nothing answers); --limit leaves one of them out."""
    closed_port = local_aws.free_port()
    unreachable = {"ansible_host": "127.0.0.1", "ansible_port": closed_port, "ansible_connection": "ssh"}
    control_node = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {"localhost": control_node},
                    "children": {"api_servers": {"hosts": {"api-1": unreachable, "api-2": unreachable}}},
                }
            }
        )
    )

    with fake_openai(GOOD_KEY) as api_base:
        run = run_playbook(
            "preflight.yml",
            inventory=inventory,
            limit="localhost,api-2",
            check=True,
            env={"AWS_ENDPOINT_URL": seeded.endpoint_url},
            extra_vars={
                "preflight_openai_api_base": api_base,
                "preflight_openai_api_key": GOOD_KEY,
                "preflight_report_dir": str(report_dir),
            },
        )

    assert run.returncode == 2, run.output
    items = checklist_verdicts(run.stdout)
    assert [item for item in items if item.startswith("api-")] == ["api-2: reachable"]
    assert items["api-2: reachable"] == "FAIL"
    assert "FAIL  api-2: reachable (" in run.stdout and str(closed_port) in run.stdout
    assert items["DynamoDB table panzoto-processing-jobs"] == "PASS" and items["OpenAI API key"] == "PASS"
    assert re.search(r"Deployment checklist failed: api-2: reachable$", run.output, re.MULTILINE), run.output
    assert junit_verdicts(report_dir / "preflight-junit.xml") == items


def test_no_api_server_matched_is_a_failed_item_unless_the_run_is_aws_only(seeded, report_dir, tmp_path) -> None:
    """All PASS would say nothing of the servers when none was checked: the default inventory has none, and an
    inventory's servers can all be left out by --limit. Only --tags that ask no server item, or the explicit
    preflight_aws_only, make such a run pass."""
    control_node = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    unreachable = {"ansible_host": "127.0.0.1", "ansible_port": local_aws.free_port(), "ansible_connection": "ssh"}
    servers = {"api-1": unreachable}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"hosts": {"localhost": control_node}, "children": {"api_servers": {"hosts": servers}}}})
    )
    runs = {}
    with fake_openai(GOOD_KEY) as api_base:
        for name, options in {
            "default inventory": {},
            "limit leaves the servers out": {"inventory": inventory, "limit": "localhost"},
        }.items():
            runs[name] = run_playbook(
                "preflight.yml",
                check=True,
                env={"AWS_ENDPOINT_URL": seeded.endpoint_url},
                extra_vars={
                    "preflight_openai_api_base": api_base,
                    "preflight_openai_api_key": GOOD_KEY,
                    "preflight_report_dir": str(report_dir / name.replace(" ", "-")),
                },
                **options,
            )

    expected = {
        "default inventory": "(inventory: inventory/local; limit: none)",
        "limit leaves the servers out": "; limit: localhost)",
    }
    for name, run in runs.items():
        assert run.returncode == 2, run.output[-3000:]
        items = checklist_verdicts(run.stdout)
        assert items["API servers checked"] == "FAIL" and items["DynamoDB table panzoto-processing-jobs"] == "PASS"
        (line,) = [line for line in run.stdout.splitlines() if line.strip().startswith("FAIL  API servers checked")]
        assert "no host of the inventory group api_servers matched" in line and expected[name] in line, line
        assert "-e preflight_aws_only=true" in line
        assert re.search(r"Deployment checklist failed: API servers checked$", run.output, re.MULTILINE)
        report = json.loads((report_dir / name.replace(" ", "-") / "preflight.json").read_text())
        assert report["status"] == "failed"
        assert [check["name"] for check in report["checks"] if not check["ok"]] == ["API servers checked"]


def test_indexes_given_as_one_string_are_one_index_name(seeded, preflight) -> None:
    tables = [
        {"name": "panzoto-processing-jobs", "key": "job_id", "indexes": "user-jobs-index"},
        {"name": "panzoto-transcripts", "indexes": "no-such-index"},
    ]
    with fake_openai(GOOD_KEY) as api_base:
        run = preflight(seeded.endpoint_url, api_base, GOOD_KEY, preflight_dynamodb_tables=tables)

    items = checklist_verdicts(run.stdout)
    assert items["DynamoDB table panzoto-processing-jobs"] == "PASS"
    assert items["DynamoDB table panzoto-transcripts"] == "FAIL"
    # The whole name is missing, not its characters one by one.
    assert "(missing index no-such-index: create it" in run.stdout
    assert run.returncode == 2


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"nme": "panzoto-users"}, "missing required arguments: name found in dynamodb_tables"),
        (
            {"name": "panzoto-users", "index": "user-jobs-index"},
            "Unsupported parameters for (aws_access_check) module: dynamodb_tables.index",
        ),
        ({"name": ""}, "dynamodb_tables[0].name cannot be empty"),
        (None, "dynamodb_tables is empty: no table would be checked; leave it unset for the backend's tables."),
    ],
    ids=["no-name", "unknown-suboption", "empty-name", "no-table"],
)
def test_a_malformed_table_is_refused_with_one_line_naming_the_option(seeded, preflight, table, message) -> None:
    tables = [table] if table is not None else []
    run = preflight(seeded.endpoint_url, "http://127.0.0.1:9/v1", "", preflight_dynamodb_tables=tables)

    assert run.returncode == 2
    (failure,) = [line for line in run.output.splitlines() if "Module failed: " in line]
    assert message in failure
    assert "Traceback" not in run.output


def test_runs_unchanged_under_ansible_runner_with_reports_in_its_artifact_directory(
    seeded, tmp_path, monkeypatch
) -> None:
    # ansible-runner finds ansible-playbook on PATH, as AWX's execution environment does.
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    private_data_dir = tmp_path / "runner"
    private_data_dir.mkdir()
    with fake_openai(GOOD_KEY) as api_base:
        runner = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            project_dir=str(REPO_ROOT),
            playbook=str(REPO_ROOT / "playbooks" / "preflight.yml"),
            cmdline="--check",
            extravars={
                "preflight_openai_api_base": api_base,
                "preflight_openai_api_key": GOOD_KEY,
                "preflight_aws_only": True,
            },
            envvars={"AWS_ENDPOINT_URL": seeded.endpoint_url, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")},
            ident="preflight-run",
            quiet=True,
        )
        # ansible-runner forces colour on, as AWX shows it.
        stdout = re.sub(r"\x1b\[[0-9;]*m", "", runner.stdout.read())

    assert runner.rc == 0, stdout
    artifacts = private_data_dir / "artifacts" / "preflight-run"
    report = json.loads((artifacts / "preflight.json").read_text())
    assert report["status"] == "passed"
    assert junit_verdicts(artifacts / "preflight-junit.xml") == checklist_verdicts(stdout)
    # The counts an AWX workflow branches on (set_stats).
    (stats,) = [event for event in runner.events if event["event"] == "playbook_on_stats"]
    assert stats["event_data"]["artifact_data"] == {"preflight_passed": len(report["checks"]), "preflight_failed": 0}
    assert GOOD_KEY not in stdout


def test_the_created_at_index_and_the_cost_tables_in_us_east_1_are_required(aws, preflight) -> None:
    """A jobs table with only its first index (the guide's), and the cost tables in the service's region instead of
    us-east-1: both fail, each naming what to do."""
    seed_jobs.seed_guide_snapshot(aws.endpoint_url, region="eu-west-1")
    boto3.client("dynamodb", endpoint_url=aws.endpoint_url, region_name="eu-west-1").update_table(
        TableName="panzoto-processing-jobs",
        GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "user-jobs-by-created-at"}}],
    )
    us_east_1 = boto3.client("dynamodb", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    us_east_1.delete_table(TableName="panzoto-user-credits")

    with fake_openai(GOOD_KEY) as api_base:
        run = preflight(aws.endpoint_url, api_base, GOOD_KEY, panzoto_aws_region="eu-west-1")

    assert run.returncode == 2
    items = checklist_verdicts(run.stdout)
    assert items["DynamoDB table panzoto-processing-jobs"] == "FAIL"
    assert "panzoto-processing-jobs (missing index user-jobs-by-created-at: create it" in run.stdout
    assert items["DynamoDB table panzoto-user-credits in us-east-1"] == "FAIL"
    assert items["DynamoDB table panzoto-usage-records in us-east-1"] == "PASS"
    assert items["DynamoDB table panzoto-daily-summaries"] == "PASS"  # in the service's region


def test_the_jobs_indexes_answer_a_query(seeded, preflight) -> None:
    with fake_openai(GOOD_KEY) as api_base:
        run = preflight(seeded.endpoint_url, api_base, GOOD_KEY, preflight_jobs_table="panzoto-processing-jobs")

    assert (
        "PASS  DynamoDB table panzoto-processing-jobs (ACTIVE, key job_id, indexes user-jobs-by-created-at, "
        "user-jobs-index, readable; user-jobs-index, user-jobs-by-created-at ACTIVE and answering a Query)"
    ) in run.stdout


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("openai", {"OpenAI API key"}), ("aws", None)],
)
def test_each_item_runs_alone_with_its_tag(seeded, preflight, report_dir, tag, expected) -> None:
    with fake_openai(GOOD_KEY) as api_base:
        run = run_playbook(
            "preflight.yml",
            extra_vars={
                "preflight_openai_api_base": api_base,
                "preflight_openai_api_key": GOOD_KEY,
                "preflight_report_dir": str(report_dir),
            },
            env={"AWS_ENDPOINT_URL": seeded.endpoint_url},
            check=True,
            args=["--tags", tag],
        )

    assert run.returncode == 0, run.output[-3000:]
    items = checklist_verdicts(run.stdout)
    if expected is None:  # the AWS items: tables, bucket, keys, and not the OpenAI key
        assert "OpenAI API key" not in items
        assert items["DynamoDB table panzoto-processing-jobs"] == "PASS" and "S3 bucket panzoto" in items
    else:
        assert set(items) == expected
    report = json.loads((report_dir / "preflight.json").read_text())
    assert {check["name"] for check in report["checks"]} == set(items)
