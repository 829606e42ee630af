"""One Debian 13 host deployed by playbooks/deploy.yml, shared by the host test files that read a deployed host.

Deploying is the expensive part of a host test (ffmpeg, Poetry, the locked dependencies): the session deploys
this host once (tests/hosts/conftest.py, `deployment`), and the scheduler hands every file that uses it to one
worker (tests/harness/scheduling.py, SHARED_DEPLOYMENT_FILES), which runs them one after the other. Each file
leaves the host serving as it found it. The backend's AWS side is a moto server of the session on 127.0.0.1;
the host shares the machine's network.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import local_aws

from support import backend_jobs
from support.hosts import HostPool, write_inventory
from support.playbook import PlaybookRun, run_playbook

OPENAI_SECRET_ID = "panzoto/openai"
SERVICE = "panzoto"
# On this machine HTTPS from a container only works with the host's CA bundle (tests/hosts/README.md).
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
FIRST_DEPLOY_TIMEOUT_S = 2400


@dataclass
class Backend:
    endpoint_url: str
    openai_key: str


@dataclass
class ServiceState:
    main_pid: str
    started_at: str


@dataclass
class Deployment:
    host: Any
    inventory: Path
    backend: Backend
    first: PlaybookRun
    second: PlaybookRun
    before_second: ServiceState
    after_second: ServiceState
    # How to put back the session's settings, left by a module that changed them; the next module to read the host
    # runs it (`settled`), so the last module to change the host costs no deploy.
    restore: Callable[[], None] | None = None

    def settled(self) -> Deployment:
        """This deployment with the session's settings: a pending restore runs first, once."""
        if self.restore is not None:
            restore, self.restore = self.restore, None
            restore()
        return self


def service_state(host: Any) -> ServiceState:
    show = host.check_output(f"systemctl show --property=MainPID --property=ActiveEnterTimestamp {SERVICE}")
    values = dict(line.split("=", 1) for line in show.splitlines())
    return ServiceState(values["MainPID"], values["ActiveEnterTimestamp"])


def app_env(backend: Backend, **extra: str) -> dict[str, str]:
    """The backend's plain settings, under its real names, pointed at the session's local AWS."""
    return {
        "REGION_NAME": backend_jobs.REGION,
        "AWS_ENDPOINT_URL": backend.endpoint_url,
        "AWS_S3_BUCKET_NAME": backend_jobs.BUCKET,
        # Each poll is a Scan moto answers (tens of ms of CPU): every 2 s keeps job waits short and moto quiet.
        "TRANSCRIPTION_CHECK_INTERVAL_SECONDS": "2",
        **extra,
    }


def group_vars(backend: Backend) -> dict[str, Any]:
    """What an operator sets in inventory/production/group_vars, pointed at the session's local AWS."""
    return {
        "panzoto_app_source": "local",
        "panzoto_app_local_src": str(backend_jobs.APP_DIR),
        "panzoto_app_extra_ca_bundle": HOST_CA_BUNDLE,
        "panzoto_app_env": app_env(backend),
        "panzoto_app_secret_env": {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "SECRET_KEY": "deploy-test-jwt-signing-key",
        },
        "panzoto_app_secretsmanager_env": {"OPENAI_API_KEY": OPENAI_SECRET_ID},
        "panzoto_app_secretsmanager_endpoint_url": backend.endpoint_url,
        "panzoto_app_required_env": ["REGION_NAME", "SECRET_KEY", "OPENAI_API_KEY"],
        "panzoto_service_asgi_app": backend_jobs.APP_MODULE,
        "panzoto_service_bind_address": "127.0.0.1",
    }


def vaulted_secret_env(directory: Path) -> list[str]:
    """ansible-playbook arguments that set panzoto_app_secret_env with an ansible-vault encrypted value
    (the same value the plain group_vars hold, so the environment file does not change)."""
    password = directory / "vault-password"
    password.write_text(secrets.token_hex(16))
    password.chmod(0o600)
    encrypted = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-vault")), "encrypt_string", "--vault-password-file", str(password),
         "--name", "AWS_SECRET_ACCESS_KEY", "testing"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    vars_file = directory / "vaulted.yml"
    vars_file.write_text(
        "panzoto_app_secret_env:\n  AWS_ACCESS_KEY_ID: testing\n  SECRET_KEY: deploy-test-jwt-signing-key\n"
        + textwrap.indent(encrypted, "  ")
    )
    return ["--extra-vars", f"@{vars_file}", "--vault-password-file", str(password)]


@contextmanager
def local_backend(workdir: Path) -> Iterator[Backend]:
    """A moto server with the backend's tables, bucket and OpenAI key secret."""
    server = local_aws.start_server(log_path=workdir / "moto.log", die_with_parent=True)
    try:
        backend_jobs.create_backend_resources(server.endpoint_url)
        openai_key = f"sk-deploy-test-{secrets.token_hex(16)}"
        secretsmanager = boto3.client(
            "secretsmanager", endpoint_url=server.endpoint_url, region_name=backend_jobs.REGION,
            aws_access_key_id=local_aws.FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=local_aws.FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip
        secretsmanager.create_secret(Name=OPENAI_SECRET_ID, SecretString=openai_key)
        yield Backend(server.endpoint_url, openai_key)
    finally:
        local_aws.stop_server(server)


@contextmanager
def deployed_host(
    host_image_for: Callable[[str], str], reserved_ports: set[int], workdir: Path
) -> Iterator[Deployment]:
    """The host deployed by deploy.yml, then deployed again unchanged with -v --diff, its secret now coming from an
    ansible-vault encrypted variable (same value). The control node signs its Secrets Manager look-ups with the
    fake credentials, given to these runs only."""
    credentials = dict(local_aws.FAKE_CREDENTIALS)
    pool = HostPool(host_image_for, reserved_ports)
    try:
        with local_backend(workdir) as backend:
            (host,) = pool.make(prefix="deploy", suite="trixie")
            inventory = write_inventory(workdir / "hosts.yml", [host], group_vars=group_vars(backend))
            # A first deploy installs ffmpeg, Poetry and the dependencies from the network: minutes on a loaded machine.
            first = run_playbook("deploy.yml", inventory=inventory, env=credentials, timeout=FIRST_DEPLOY_TIMEOUT_S)
            assert first.returncode == 0, first.output[-6000:]
            before = service_state(host.testinfra)
            second = run_playbook(
                "deploy.yml",
                inventory=inventory,
                verbosity=1,
                diff=True,
                env=credentials,
                args=vaulted_secret_env(workdir),
            )
            assert second.returncode == 0, second.output[-6000:]
            yield Deployment(host, inventory, backend, first, second, before, service_state(host.testinfra))
    finally:
        pool.remove()
