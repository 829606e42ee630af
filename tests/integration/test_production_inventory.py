"""The production example (inventory/production) as an operator of the real backend writes it: the backend's own
setting names, secrets vaulted or from Secrets Manager, and the settings it must not run without declared
required, so deploy.yml refuses before any host is touched; a pinned commit, not a branch; and one job processor
(the backend does not claim jobs), which deploy.yml enforces before any host is touched."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from support.playbook import run_playbook

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = REPO_ROOT / "inventory" / "production"


def api_servers_vars() -> dict:
    return yaml.safe_load((PRODUCTION / "group_vars" / "api_servers.yml").read_text())


def test_the_example_uses_the_real_backends_setting_names_and_requires_its_secrets() -> None:
    settings = api_servers_vars()
    names = {
        *settings["panzoto_app_env"],
        *settings["panzoto_app_secret_env"],
        *settings["panzoto_app_secretsmanager_env"],
    }
    assert {"REGION_NAME", "OPENAI_API_KEY", "SECRET_KEY", "AWS_S3_BUCKET_NAME"} <= names
    assert {"STRIPE_PUBLISHABLE_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"} <= names
    assert {"TRANSCRIPTION_CHECK_INTERVAL_SECONDS", "DAILY_SUMMAYR_PROMPT_PATH"} <= names
    assert not {"AWS_REGION"} & names and not [name for name in names if name.startswith("PANZOTO_")]
    assert settings["panzoto_app_env"]["DAILY_SUMMAYR_PROMPT_PATH"].startswith("{{ panzoto_app_home }}/")
    # No secret in plain text: vault placeholders or Secrets Manager ids.
    assert all(value.startswith("VAULT_ME_") for value in settings["panzoto_app_secret_env"].values())
    assert {"REGION_NAME", "SECRET_KEY", "OPENAI_API_KEY"} <= set(settings["panzoto_app_required_env"])
    assert set(settings["panzoto_app_required_env"]) <= names
    assert settings["panzoto_app_poetry_with"] == ["dev"]  # the backend imports mypy_boto3_s3 at run time


def hosts_vars() -> dict:
    return yaml.safe_load((PRODUCTION / "hosts.yml").read_text())["all"]["children"]["api_servers"]["hosts"]


def test_the_example_deploys_a_pinned_commit_not_a_moving_branch() -> None:
    settings = api_servers_vars()
    assert settings["panzoto_app_source"] == "git"
    assert re.fullmatch(r"[0-9a-f]{40}", settings["panzoto_app_git_version"]), settings["panzoto_app_git_version"]
    assert settings["panzoto_app_env"]["DAILY_SUMMAYR_PROMPT_PATH"].startswith("{{ panzoto_app_home }}/current/app/")


def test_the_example_runs_one_processor_and_keeps_a_warm_standby() -> None:
    hosts = hosts_vars()
    running = [name for name, host_vars in hosts.items() if (host_vars or {}).get("panzoto_service_enabled", True)]
    assert len(running) == 1 and len(hosts) == 2
    assert api_servers_vars()["panzoto_backend_claims_jobs"] is False


def production_copy(tmp_path: Path, hosts: dict) -> Path:
    """The example inventory with hosts no connection can reach: touching one would fail "unreachable"."""
    inventory = tmp_path / "production"
    shutil.copytree(PRODUCTION, inventory)
    unreachable = {"ansible_connection": "containers.podman.podman", "ansible_host": "panzoto-ops-no-such-container"}
    hosts = {name: {**unreachable, **host_vars} for name, host_vars in hosts.items()}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"api_servers": {"hosts": hosts}}}}))
    return inventory


TWO_PROCESSORS = {"api-1.example.invalid": {}, "api-2.example.invalid": {}}


def test_deploy_refuses_two_processor_hosts_naming_the_cost_before_touching_either(tmp_path: Path) -> None:
    inventory = production_copy(tmp_path, TWO_PROCESSORS)
    run = run_playbook("deploy.yml", inventory=inventory, limit="api-1.example.invalid")

    assert run.returncode != 0
    assert (
        "Refusing to deploy: 2 hosts would run the job processor (api-1.example.invalid, api-2.example.invalid),"
        " and the backend does not claim jobs, so every job would be transcribed 2 times, each at OpenAI's cost;"
        " run the service on one host (panzoto_service_enabled: false on the others), or set"
        " panzoto_backend_claims_jobs: true only if the backend you deploy claims its jobs."
    ) in " ".join(run.output.split()), run.output[-3000:]
    assert "UNREACHABLE" not in run.output
    assert "panzoto_app : " not in run.stdout  # not even the settings' checks ran
    assert all(stats["changed"] == 0 for stats in run.stats.values())


@pytest.mark.parametrize(
    ("hosts", "extra_vars"),
    [
        ({"api-1.example.invalid": {}, "api-2.example.invalid": {"panzoto_service_enabled": False}}, {}),
        (TWO_PROCESSORS, {"panzoto_backend_claims_jobs": True}),
    ],
    ids=["warm-standby", "backend-claims-jobs"],
)
def test_deploy_accepts_the_supported_shapes(tmp_path: Path, hosts: dict, extra_vars: dict) -> None:
    """Past the one-processor rule, the play reaches the next check (the unset settings, as the test below)."""
    inventory = production_copy(tmp_path, hosts)
    run = run_playbook(
        "deploy.yml", inventory=inventory, extra_vars={"panzoto_app_secretsmanager_env": {}, **extra_vars}
    )

    assert "Refusing to deploy" not in run.output
    assert "Required setting(s) unset or empty: SECRET_KEY" in run.output, run.output[-3000:]
    assert "UNREACHABLE" not in run.output


def test_deploy_refuses_before_touching_a_host_when_a_required_setting_is_unset(tmp_path: Path) -> None:
    inventory = production_copy(tmp_path, {"api-1.example.invalid": {}})
    run = run_playbook(
        "deploy.yml",
        inventory=inventory,
        # An operator who forgot the Secrets Manager part (and no AWS call from this test).
        extra_vars={"panzoto_app_secretsmanager_env": {}},
    )

    assert run.returncode != 0
    assert (
        "Required setting(s) unset or empty: SECRET_KEY, OPENAI_API_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET."
        in run.output
    ), run.output[-3000:]
    assert "UNREACHABLE" not in run.output
    assert run.stats["api-1.example.invalid"]["changed"] == 0
