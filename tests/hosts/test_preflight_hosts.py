"""playbooks/preflight.yml's per-host items on real systemd hosts: an unreachable host is one failed
item, and every other item (the AWS items and the other host's) still runs, prints and is reported.

The deployed-host checks (every item passing, a stopped processor failing) are in test_deploy.py, which
deploys a host once for many tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import seed_jobs
from junitparser import Failure, JUnitXml
from support.hosts import podman
from support.local_http import fake_openai
from support.playbook import checklist_verdicts, run_playbook

GOOD_KEY = "sk-test-preflight-hosts-0123456789"
HOST_ITEMS = (
    "reachable",
    "ffmpeg installed and converting",
    "Python dependencies installed",
    "Environment file private",
    "Background processor started",
    "Health endpoint healthy",
    "Venv matches the lock",
    "OpenAI client constructs",
    "Processor heartbeat",
    "No old decrypted audio",
    "No backend process outside the service",
    "No legacy controller.service",
    "No upstream deploy path",
)
# On a bare host nothing is deployed: these fail; nothing fights a service there, and no audio was left.
NOTHING_DEPLOYED = HOST_ITEMS[1:9]

pytestmark = pytest.mark.hosts


def test_an_unreachable_host_is_one_failed_line_and_every_other_item_still_prints(
    aws, target_hosts, write_inventory, tmp_path: Path
) -> None:
    seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    answering, stopped = target_hosts(count=2, prefix="preflight")
    podman("stop", "--time", "0", stopped.name)
    inventory = write_inventory(tmp_path / "hosts.yml", [answering, stopped])
    reports = tmp_path / "reports"

    with fake_openai(GOOD_KEY) as api_base:
        run = run_playbook(
            "preflight.yml",
            inventory=inventory,
            check=True,
            env={"AWS_ENDPOINT_URL": aws.endpoint_url},
            extra_vars={
                "preflight_openai_api_base": api_base,
                "preflight_openai_api_key": GOOD_KEY,
                "preflight_report_dir": str(reports),
                "panzoto_aws_region": "us-east-1",
            },
        )

    assert run.returncode == 2, run.output[-4000:]
    items = checklist_verdicts(run.stdout)
    # The stopped host: one red line saying why, and nothing else checked there.
    stopped_items = [item for item in items if item.startswith(f"{stopped.name}: ")]
    assert stopped_items == [f"{stopped.name}: reachable"]
    assert items[f"{stopped.name}: reachable"] == "FAIL"
    assert f"FAIL  {stopped.name}: reachable (" in run.stdout
    # The answering host (a bare image: nothing deployed) gets every one of its items, each with a verdict.
    assert items[f"{answering.name}: reachable"] == "PASS"
    for item in HOST_ITEMS[1:]:
        assert items[f"{answering.name}: {item}"] == ("FAIL" if item in NOTHING_DEPLOYED else "PASS")
    assert f"FAIL  {answering.name}: Processor heartbeat ({answering.name}: panzoto.service is inactive" in run.stdout
    # The AWS items still ran and passed.
    assert items["DynamoDB table panzoto-processing-jobs"] == "PASS"
    assert items["OpenAI API key"] == "PASS"
    assert f"Deployment checklist failed: {answering.name}: ffmpeg installed and converting;" in run.output
    assert f"{stopped.name}: reachable" in run.output.split("Deployment checklist failed: ")[-1]

    # The reports hold the same verdicts: one JUnit case per item and host.
    report = json.loads((reports / "preflight.json").read_text())
    assert [check["name"] for check in report["checks"] if check["host"] == stopped.name] == ["reachable"]
    assert [check["name"] for check in report["checks"] if check["host"] == answering.name] == list(HOST_ITEMS)
    suites = {suite.name: suite for suite in JUnitXml.fromfile(str(reports / "preflight-junit.xml"))}
    assert set(suites) == {"preflight.localhost", f"preflight.{answering.name}", f"preflight.{stopped.name}"}
    (case,) = list(suites[f"preflight.{stopped.name}"])
    assert case.name == "reachable" and any(isinstance(result, Failure) for result in case.result)
    assert len(list(suites[f"preflight.{answering.name}"])) == len(HOST_ITEMS)
