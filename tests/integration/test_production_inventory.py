"""The production example (inventory/production) as an operator of the real backend writes it: the backend's own
setting names, secrets vaulted or from Secrets Manager, and the settings it must not run without declared
required, so deploy.yml refuses before any host is touched."""

from __future__ import annotations

import shutil
from pathlib import Path

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


def test_deploy_refuses_before_touching_a_host_when_a_required_setting_is_unset(tmp_path: Path) -> None:
    inventory = tmp_path / "production"
    shutil.copytree(PRODUCTION, inventory)
    # One host no connection can reach: touching it would fail "unreachable", not with the settings' message.
    (inventory / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "api_servers": {
                            "hosts": {
                                "api-1.example.invalid": {
                                    "ansible_connection": "containers.podman.podman",
                                    "ansible_host": "panzoto-ops-no-such-container",
                                }
                            }
                        }
                    }
                }
            }
        )
    )
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
