"""Fixtures that run the fake backend (tests/app) under uvicorn against the local AWS endpoint."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import local_aws
import pytest
from support import backend_jobs

# Distinctive, so a test can prove it never reaches the app's output.
OPENAI_API_KEY = "sk-h2a-fake-openai-key-never-logged-7c1f"


@dataclass
class RunningApp:
    process: subprocess.Popen
    port: int
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> tuple[int, dict]:
        return backend_jobs.health(self.port)

    def wait_healthy(self) -> dict:
        try:
            return backend_jobs.wait_for_health(self.port, 200, timeout=60, process=self.process)
        except (RuntimeError, TimeoutError) as error:
            raise AssertionError(f"{error}\n--- app output ---\n{self.output()}") from None


@pytest.fixture(scope="session")
def openai_api_key() -> str:
    return OPENAI_API_KEY


@pytest.fixture(scope="session")
def app_venv(repo_root: Path) -> Path:
    """The app's locked dependencies, installed once per lock under .cache/ (not into .venv)."""
    return backend_jobs.ensure_app_venv(repo_root / ".cache")


@pytest.fixture
def start_backend(app_venv: Path, tmp_path: Path) -> Iterator[Callable[..., RunningApp]]:
    """Start the app against an endpoint; by default returns once /api/health is 200. Stopped after the test."""
    started: list[RunningApp] = []

    def start(endpoint_url: str, wait: bool = True, **env: str) -> RunningApp:
        port = backend_jobs.free_port()
        log_path = tmp_path / f"app-{port}.log"
        environment = backend_jobs.app_environment(endpoint_url, OPENAI_API_KEY, **env)
        app = RunningApp(backend_jobs.start_app(app_venv, port, environment, log_path), port, log_path)
        started.append(app)
        if wait:
            app.wait_healthy()
        return app

    yield start
    for app in started:
        backend_jobs.stop_app(app.process)


@pytest.fixture
def backend_aws(aws: local_aws.LocalAws) -> local_aws.LocalAws:
    """The `aws` endpoint with the backend's tables, bucket and one user's key."""
    backend_jobs.create_backend_resources(aws.endpoint_url)
    backend_jobs.put_user_key(aws.endpoint_url, "user-1")
    return aws
