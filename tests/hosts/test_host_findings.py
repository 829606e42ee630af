"""preflight.yml's host findings on a real Debian 12 host (`--tags host_findings`): what fights the systemd service.

Planted as production has them: a backend process started by hand outside any panzoto.service cgroup (what the
upstream CI deploy leaves), the backend tree's old controller.service unit, and the upstream deploy path (a checkout
in root's home with its .github/workflows/deploy.yml). Each is one failed item saying what to do; without them,
each passes. Nothing on the host changes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.playbook import checklist_verdicts, run_playbook

FINDINGS = ("No backend process outside the service", "No legacy controller.service", "No upstream deploy path")
CHECKOUT = "/root/decision-data"
LEGACY_UNIT = "[Unit]\nDescription=Decision Data controller\n[Service]\nExecStart=/bin/sleep infinity\n"

pytestmark = pytest.mark.hosts


def findings(inventory: Path, host: str):
    limit = ["--limit", f"localhost,{host}"]
    return run_playbook("preflight.yml", inventory=inventory, check=True, args=["--tags", "host_findings", *limit])


def test_a_stray_backend_the_legacy_unit_and_the_upstream_deploy_path_are_each_reported(
    target_hosts, write_inventory, tmp_path: Path
) -> None:
    (host,) = target_hosts(prefix="findings")  # Debian 12
    inventory = write_inventory(tmp_path / "hosts.yml", [host])

    clean = findings(inventory, host.name)
    assert clean.returncode == 0, clean.output[-3000:]
    # With its tag only these items run (and reachability, which every run checks first).
    assert checklist_verdicts(clean.stdout) == {f"{host.name}: {item}": "PASS" for item in ("reachable", *FINDINGS)}

    # A backend started by hand, as the upstream deploy does (`nohup uvicorn decision_data... > api.log`).
    by_hand = "exec -a 'uvicorn decision_data.api.backend.api:app' sleep 600"
    host.exec("systemd-run", "--unit", "by-hand", "bash", "-c", by_hand)
    host.exec("sh", "-c", f"printf '{LEGACY_UNIT}' > /etc/systemd/system/controller.service && systemctl daemon-reload")
    host.exec("mkdir", "-p", f"{CHECKOUT}/.github/workflows")
    workflow = f"{CHECKOUT}/.github/workflows/deploy.yml"
    host.exec("sh", "-c", f"echo 'run: pkill -9 -f \"uvicorn decision_data\"' > {workflow}")
    before = host.testinfra.check_output(f"ls -la --time-style=full-iso {CHECKOUT} /etc/systemd/system")

    red = findings(inventory, host.name)

    assert red.returncode == 2
    items = checklist_verdicts(red.stdout)
    assert items == {f"{host.name}: reachable": "PASS", **{f"{host.name}: {item}": "FAIL" for item in FINDINGS}}
    output = red.stdout.splitlines()
    lines = {item: line for item in FINDINGS for line in output if f"FAIL  {host.name}: {item} (" in line}
    stray = lines["No backend process outside the service"]
    assert "outside panzoto.service: pid " in stray and "uvicorn decision_data.api.backend.api:app" in stray
    assert "a second processor takes the same jobs (transcribed twice); stop it" in stray
    legacy = lines["No legacy controller.service"]
    assert "LoadState=loaded" in legacy and "systemctl disable --now controller.service" in legacy
    upstream = lines["No upstream deploy path"]
    assert f"upstream CI deploys into {CHECKOUT} " in upstream and "remove the CI deploy key" in upstream
    assert red.stats[host.name]["changed"] == 0
    assert host.testinfra.check_output(f"ls -la --time-style=full-iso {CHECKOUT} /etc/systemd/system") == before
