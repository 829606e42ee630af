"""iam/*.json: each playbook passes with exactly its policy and fails in one clear line without one permission.

moto's server enforces IAM once its request budget is spent (`/moto-api/reset-auth`, what the
INITIAL_NO_AUTH_ACTION_COUNT setting sets at start): the test seeds the guide's snapshot and creates one
IAM user per policy while it is open, then closes it, so every request the playbook sends is signed by
that user's key and checked against its policy. Where moto checks less than AWS (docs/iam.md), the
policy is narrowed to what moto checks, never widened: for DynamoDB, Secrets Manager and CloudWatch moto
matches the action only (it asks every statement about resource "*"), and it does not evaluate service
condition keys, so those statements are tested with Resource "*" and no condition; S3 is checked on its
real bucket and object ARNs.
"""

from __future__ import annotations

import copy
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import local_aws
import pytest
import seed_jobs
from support.local_http import fake_openai
from support.playbook import REPO_ROOT, PlaybookRun, run_playbook

POLICIES = REPO_ROOT / "iam"
GOOD_KEY = "sk-test-iam-good-0123456789"


def load(name: str) -> dict:
    return json.loads((POLICIES / f"{name}.json").read_text())


def as_moto_checks(policy: dict) -> dict:
    """The policy as moto can enforce it: resources and conditions of the services it matches by action only."""
    narrowed = copy.deepcopy(policy)
    for statement in narrowed["Statement"]:
        if not all(action.startswith("s3:") for action in statement["Action"]):
            statement["Resource"] = "*"
            statement.pop("Condition", None)
        # moto names CloudWatch's actions by its endpoint prefix.
        statement["Action"] = [action.replace("cloudwatch:", "monitoring:") for action in statement["Action"]]
        # moto asks for s3:HeadBucket where AWS asks for s3:ListBucket, and checks DeleteObjects (a batch)
        # against the bucket where AWS checks s3:DeleteObject on each key.
        if "s3:ListBucket" in statement["Action"]:
            statement["Action"].append("s3:HeadBucket")
        if "s3:DeleteObject" in statement["Action"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            statement["Resource"] = resources + sorted({resource.split("/")[0] for resource in resources})
    return narrowed


def actions(policy: dict) -> list[str]:
    return [action for statement in policy["Statement"] for action in statement["Action"]]


def without(policy: dict, action: str) -> dict:
    reduced = copy.deepcopy(policy)
    for statement in reduced["Statement"]:
        statement["Action"] = [each for each in statement["Action"] if each != action]
    reduced["Statement"] = [statement for statement in reduced["Statement"] if statement["Action"]]
    return reduced


class EnforcingAws:
    """A moto server of this module's own whose IAM enforcement the test switches on and off."""

    def __init__(self, server: local_aws.LocalAws) -> None:
        self.server = server
        self.endpoint_url = server.endpoint_url

    def enforce(self, on: bool) -> None:
        data = b"0" if on else b"inf"
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth", data=data, method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(request, timeout=10).close()

    def fresh_snapshot(self) -> None:
        self.enforce(False)
        self.server.reset()
        seed_jobs.seed_guide_snapshot(self.endpoint_url)

    def user_with(self, policy: dict) -> dict[str, str]:
        """A new IAM user holding exactly `policy`; its key as environment variables. Enforcement is on after."""
        self.enforce(False)
        iam = boto3.client("iam", endpoint_url=self.endpoint_url, region_name="us-east-1")
        name = f"panzoto-ops-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="under-test", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        self.enforce(True)
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@pytest.fixture(scope="module")
def enforcing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnforcingAws]:
    with local_aws.running_server(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield EnforcingAws(server)


def run_audit(env: dict[str, str], tmp_path: Path) -> PlaybookRun:
    return run_playbook(
        "audit_jobs.yml",
        env=env,
        extra_vars={
            "audit_report_dir": str(tmp_path),
            "audit_fail_on_breach": False,
            "audit_cloudwatch_namespace": "Panzoto",
        },
    )


def run_cleanup(env: dict[str, str], tmp_path: Path) -> PlaybookRun:
    """The guide's procedure 1 for real (jobs and audio), then restore: every write the cleanup makes."""
    common = {
        "cleanup_jobs_archive_path": str(tmp_path / "archive.jsonl"),
        "cleanup_jobs_report_path": str(tmp_path / "cleanup.json"),
    }
    first = run_playbook(
        "cleanup_jobs.yml",
        env=env,
        extra_vars={**common, "cleanup_jobs_categories": ["legacy_encryption"], "cleanup_jobs_delete_audio": True},
    )
    if first.returncode != 0:
        return first
    return run_playbook("cleanup_jobs.yml", env=env, extra_vars={**common, "cleanup_jobs_state": "restored"})


def run_requeue(env: dict[str, str], tmp_path: Path) -> PlaybookRun:
    return run_playbook(
        "cleanup_jobs.yml",
        env=env,
        extra_vars={
            "cleanup_jobs_archive_path": str(tmp_path / "archive.jsonl"),
            "cleanup_jobs_report_path": str(tmp_path / "cleanup.json"),
            "cleanup_jobs_state": "requeued",
            "cleanup_jobs_categories": ["max_retries"],
            "cleanup_jobs_requeue_fresh": True,  # the snapshot's jobs are older than the backend's 24 h
        },
    )


def run_preflight(env: dict[str, str], tmp_path: Path) -> PlaybookRun:
    with fake_openai(GOOD_KEY) as api_base:
        return run_playbook(
            "preflight.yml",
            env=env,
            check=True,
            extra_vars={
                "preflight_openai_api_base": api_base,
                "preflight_openai_api_key": GOOD_KEY,
                "preflight_report_dir": str(tmp_path),
                "preflight_aws_only": True,  # no API server in the local inventory
            },
        )


def run_monitoring(env: dict[str, str], tmp_path: Path) -> PlaybookRun:
    topic = "arn:aws:sns:us-east-1:123456789012:panzoto-ops"
    return run_playbook("monitoring.yml", env=env, extra_vars={"monitoring_alarm_actions": [topic]})


def run_diagnosis(env: dict[str, str], tmp_path: Path) -> PlaybookRun:
    """The selection and the classification; the control node stands in for the API servers (no logs there)."""
    return run_playbook(
        "diagnose_jobs.yml",
        env=env,
        extra_vars={
            "diagnose_jobs_report_dir": str(tmp_path),
            "diagnose_jobs_servers": "all",
            "diagnose_jobs_fail_on_unread_hosts": False,
            "diagnose_jobs_become": False,
        },
    )


# Each policy with the runs that must pass with it: every request those playbooks send.
RUNS = {
    "audit": [run_audit],
    "cleanup": [run_cleanup, run_requeue],
    "diagnosis": [run_diagnosis],
    "preflight": [run_preflight],
    "monitoring": [run_monitoring],
}

# The permission each playbook's second run goes without, and what its output must then name:
# the read every run starts with, or the write the playbook exists for.
WITHHELD = {
    "audit": ("dynamodb:Scan", "dynamodb:Scan"),
    "cleanup": ("s3:DeleteObject", "AccessDenied"),
    "diagnosis": ("dynamodb:Scan", "dynamodb:Scan"),
    "preflight": ("secretsmanager:ListSecrets", "secretsmanager:ListSecrets"),
    "monitoring": ("cloudwatch:PutMetricAlarm", "PutMetricAlarm"),
}


def test_every_playbook_has_a_policy_and_every_policy_is_well_formed() -> None:
    assert {path.stem for path in POLICIES.glob("*.json")} == {*RUNS, "backend"}
    for path in POLICIES.glob("*.json"):
        policy = json.loads(path.read_text())
        assert policy["Version"] == "2012-10-17", path.name
        sids = [statement["Sid"] for statement in policy["Statement"]]
        assert len(sids) == len(set(sids)), path.name
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow" and statement["Resource"], (path.name, statement["Sid"])
            # Least privilege: named actions of the services the project uses, never a wildcard.
            for action in statement["Action"]:
                service, _, name = action.partition(":")
                assert service in {"dynamodb", "s3", "secretsmanager", "cloudwatch"} and "*" not in name, action


@pytest.mark.parametrize("name", RUNS)
def test_the_playbook_passes_with_exactly_its_policy(name: str, enforcing: EnforcingAws, tmp_path: Path) -> None:
    enforcing.fresh_snapshot()
    env = enforcing.user_with(as_moto_checks(load(name)))
    for number, run in enumerate(RUNS[name]):
        result = run(env, tmp_path / str(number))
        assert result.returncode == 0, result.output[-4000:]
    # The endpoint did enforce: the same run with a key that holds an unrelated permission only is refused.
    unrelated = {"Effect": "Allow", "Action": ["sqs:ListQueues"], "Resource": "*"}
    env = enforcing.user_with({"Version": "2012-10-17", "Statement": [unrelated]})
    assert RUNS[name][0](env, tmp_path / "none").returncode != 0


@pytest.mark.parametrize("name", WITHHELD)
def test_without_one_permission_it_fails_naming_it(name: str, enforcing: EnforcingAws, tmp_path: Path) -> None:
    withheld, named = WITHHELD[name]
    enforcing.fresh_snapshot()
    policy = as_moto_checks(load(name))
    env = enforcing.user_with(without(policy, withheld.replace("cloudwatch:", "monitoring:")))
    results = [run(env, tmp_path / str(number)) for number, run in enumerate(RUNS[name])]
    failed = next((result for result in results if result.returncode != 0), None)
    assert failed is not None, f"{name} ran without {withheld}"
    # One line says it, on the terminal or in the audit's JSON report ("error"), which CI and AWX publish.
    report = tmp_path / "0" / "job-audit.json"
    lines = failed.output.splitlines() + ([json.loads(report.read_text())["error"]] if report.exists() else [])
    assert any(named in line for line in lines), failed.output[-4000:]
