"""The checklist items of the panzoto_app role on the converged host: service account, code, Poetry,
dependencies ("poetry install"), and the private environment file with the Secrets Manager value."""

from __future__ import annotations

import json

HOME = "/opt/panzoto"
# The service runs the current release: its code, virtualenv and environment file (docs/releases.md).
CURRENT = f"{HOME}/current"
ENV_FILE = f"{CURRENT}/panzoto.env"


def test_the_service_account_is_a_system_user_without_login(host) -> None:
    user = host.user("panzoto")
    assert user.exists
    assert 0 < user.uid < 1000
    assert user.group == "panzoto"
    assert user.shell == "/usr/sbin/nologin"


def test_root_owns_the_deployment_and_only_the_service_group_may_read_it(host) -> None:
    home = host.file(HOME)
    assert home.is_directory
    assert (home.user, home.group, home.mode) == ("root", "panzoto", 0o750)
    state = host.file(f"{HOME}/deploy-state")
    assert (state.user, state.mode) == ("root", 0o700)


def test_the_code_is_the_release_branch_of_the_repository(host) -> None:
    wanted = host.check_output("git -C /srv/panzoto-backend rev-parse release")
    assert host.check_output(f"git -C {HOME}/source rev-parse HEAD") == wanted
    release = json.loads(host.file(f"{CURRENT}/release.json").content_string)
    assert release["revision"] == wanted
    # The state file names the release in use: the directory `current` points at.
    in_use = host.check_output(f"readlink {CURRENT}").rstrip("/").rsplit("/", 1)[-1]
    assert host.file(f"{HOME}/deploy-state/release").content_string.strip() == in_use


def test_the_pinned_poetry_is_installed_in_its_own_virtualenv(host) -> None:
    assert "2.5.1" in host.check_output("/opt/poetry/bin/poetry --version")


def test_the_locked_dependencies_are_installed_in_the_application_virtualenv(host) -> None:
    assert host.file(f"{CURRENT}/venv/bin/uvicorn").is_file
    frozen = host.check_output(f"{CURRENT}/venv/bin/python -m pip freeze --all")
    for pin in ("fastapi==", "uvicorn==", "boto3=="):
        assert pin in frozen
    # The code is imported from the release's app directory, as the unit's --app-dir does: the virtualenv holds the
    # dependencies only (releases with the same lock share it), never a copy or a link of some release's code.
    assert host.run(f"cd {CURRENT}/app && {CURRENT}/venv/bin/python -c 'import fake_backend.config'").rc == 0
    assert "panzoto-fake-backend" not in frozen and "panzoto_fake_backend" not in frozen
    # Main group only by default: the dev group's package is not there.
    assert "mypy-boto3-s3==" not in frozen
    assert host.run(f"{CURRENT}/venv/bin/python -m pip check").rc == 0


def test_the_dependencies_and_the_code_are_byte_compiled_at_install(host) -> None:
    """The virtualenv and the code are root's: the service could never write their bytecode itself."""
    purelib = 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
    site = host.check_output(f"{CURRENT}/venv/bin/python -c '{purelib}'")
    assert host.file(f"{site}/fastapi/__pycache__").is_directory
    assert host.file(f"{CURRENT}/app/fake_backend/__pycache__").is_directory
    assert host.file(f"{CURRENT}/app/fake_backend/__pycache__").user == "root"


def test_the_environment_file_is_private_to_the_service_account(host) -> None:
    env_file = host.file(ENV_FILE)
    assert (env_file.user, env_file.group, env_file.mode) == ("panzoto", "panzoto", 0o600)


def test_the_environment_file_holds_the_settings_and_the_secrets(host, openai_key: str) -> None:
    lines = set(host.file(ENV_FILE).content_string.splitlines())
    assert 'REGION_NAME="us-east-1"' in lines
    assert 'AWS_SECRET_ACCESS_KEY="testing"' in lines
    # Compared without printing the value on failure.
    assert f'OPENAI_API_KEY="{openai_key}"' in lines, "OPENAI_API_KEY is not the Secrets Manager value"
    assert 'SSL_CERT_FILE="/opt/panzoto/ca-bundle.crt"' in lines
