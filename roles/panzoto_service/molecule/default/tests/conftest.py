"""What the scenario's tests share: its state directory and the OpenAI key prepare.yml stored."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

STATE_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "."))


@pytest.fixture(scope="module")
def openai_key() -> str:
    """The value prepare stored in the scenario's local Secrets Manager."""
    port = json.loads((STATE_DIR / "local-aws" / "server.json").read_text())["port"]
    client = boto3.client(
        "secretsmanager",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return client.get_secret_value(SecretId="panzoto/openai")["SecretString"]


@pytest.fixture
def app_port(host) -> int:
    """The port the shared create step reserved for this host (the hosts share the machine's network)."""
    return json.loads((STATE_DIR / "app_ports.json").read_text())[host.backend.name]
