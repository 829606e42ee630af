"""playbooks/preflight.yml, control-node items, against moto and a local OpenAI stand-in."""

from __future__ import annotations

import boto3
import pytest
import seed_jobs
import yaml
from support.local_http import fake_openai
from support.playbook import PlaybookRun, checklist_verdicts, run_playbook

GOOD_KEY = "sk-test-preflight-good-0123456789"


def preflight(endpoint_url: str, api_base: str, key: str, check: bool = True, **extra_vars) -> PlaybookRun:
    return run_playbook(
        "preflight.yml",
        extra_vars={"preflight_openai_api_base": api_base, "preflight_openai_api_key": key, **extra_vars},
        env={"AWS_ENDPOINT_URL": endpoint_url},
        check=check,
    )


@pytest.fixture
def seeded(aws):
    seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    return aws


def test_a_healthy_account_passes_every_item_and_changes_nothing(seeded) -> None:
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
        "S3 bucket panzoto": "PASS",
        "Encryption keys in Secrets Manager": "PASS",
        "Encryption keys are well formed": "PASS",
        "OpenAI API key": "PASS",
    }
    assert "5 of 5 users have a key" in run.stdout
    assert run.stats["localhost"]["changed"] == 0
    assert GOOD_KEY not in run.output


def test_each_broken_item_fails_on_its_own_line(seeded) -> None:
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


def test_a_malformed_key_and_a_missing_bucket_fail(seeded) -> None:
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


def test_write_probe_proves_write_access_and_leaves_nothing_behind(seeded) -> None:
    s3 = boto3.client("s3", endpoint_url=seeded.endpoint_url)
    before = s3.list_objects_v2(Bucket="panzoto")["KeyCount"]

    with fake_openai(GOOD_KEY) as api_base:
        run = preflight(seeded.endpoint_url, api_base, GOOD_KEY, check=False, preflight_s3_write_probe=True)

    assert run.returncode == 0, run.output
    assert checklist_verdicts(run.stdout)["S3 write access panzoto"] == "PASS"
    assert s3.list_objects_v2(Bucket="panzoto")["KeyCount"] == before


def test_no_key_and_a_dead_api_fail_clearly(seeded) -> None:
    run = preflight(seeded.endpoint_url, "http://127.0.0.1:9/v1", "")
    assert run.returncode == 2
    assert "FAIL  OpenAI API key (no key configured" in run.stdout


def test_the_key_is_read_from_secrets_manager_like_the_app_role_does(seeded, tmp_path) -> None:
    secrets = boto3.client("secretsmanager", endpoint_url=seeded.endpoint_url)
    secrets.create_secret(Name="panzoto/openai-api-key", SecretString=GOOD_KEY)
    # The app role's settings live with the API servers, as in inventory/production; the host is never contacted.
    inventory = tmp_path / "hosts.yml"
    localhost = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    app_settings = {"panzoto_app_secretsmanager_env": {"OPENAI_API_KEY": "panzoto/openai-api-key"}}
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {"localhost": localhost},
                    "children": {"api_servers": {"hosts": {"api-1.example.invalid": None}, "vars": app_settings}},
                }
            }
        )
    )

    with fake_openai(GOOD_KEY) as api_base:
        run = run_playbook(
            "preflight.yml",
            inventory=inventory,
            limit="localhost",
            extra_vars={"preflight_openai_api_base": api_base},
            env={"AWS_ENDPOINT_URL": seeded.endpoint_url},
            check=True,
        )

    assert run.returncode == 0, run.output
    assert checklist_verdicts(run.stdout)["OpenAI API key"] == "PASS"
    assert GOOD_KEY not in run.output
