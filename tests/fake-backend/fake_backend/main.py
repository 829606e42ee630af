"""ASGI entry point: `uvicorn fake_backend.main:app`.

Like the real backend, importing it sets up logging (creating `./logs` in the working directory) and reads
the settings; a missing setting stops uvicorn before it binds its port (one line on stderr, exit code 2).
The FastAPI startup starts the background processor, which logs `Starting cost-safe audio processor`;
`/api/health` answers healthy whatever the processor does, as the real one does.

Test variants (environment switches the real backend does not have; tests/fake-backend/README.md):
FAKE_BACKEND_IMPORT_DEV_GROUP=1 imports a dev-group package at run time, FAKE_BACKEND_BREAK_PROCESSOR=1 makes
the processor die before its start line, FAKE_BACKEND_STOP_DELAY_SECONDS=N makes shutdown take N seconds.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from fake_backend.config import ConfigError, Settings, load_settings
from fake_backend.logs import configure_logging, configure_plain_logging
from fake_backend.processor import Processor

configure_plain_logging()
log = configure_logging()

if os.environ.get("FAKE_BACKEND_IMPORT_DEV_GROUP") == "1":
    # What the real backend does in one module, while mypy-boto3-s3 sits in its dev group.
    from mypy_boto3_s3 import S3Client  # noqa: F401


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        print(f"panzoto fake backend: configuration error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def stop_delay_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("FAKE_BACKEND_STOP_DELAY_SECONDS") or 0))
    except ValueError:
        return 0.0


def create_app(settings: Settings) -> FastAPI:
    processor = Processor(settings, broken=os.environ.get("FAKE_BACKEND_BREAK_PROCESSOR") == "1")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.secret_key_is_default:
            log.warning("SECRET_KEY is not set: JWTs are signed with the insecure default")
        if not os.path.isfile(settings.prompt_path):
            log.warning("Daily summary prompt not found: %s", settings.prompt_path)
        processor.start()
        yield
        delay = stop_delay_seconds()
        if delay:
            log.info("Finishing work in flight before shutdown (%.0fs)", delay)
            time.sleep(delay)
        processor.stop()

    app = FastAPI(title="Panzoto fake backend", lifespan=lifespan)

    @app.get("/api/health")
    def health() -> JSONResponse:
        # The real body; `processor` is the fake's own addition for tests (nothing in the roles reads it).
        body = {"status": "healthy", "service": "decision-data-backend", "database": "dynamodb"}
        return JSONResponse({**body, "processor": processor.stats_snapshot()})

    return app


app = create_app(settings_or_exit())
