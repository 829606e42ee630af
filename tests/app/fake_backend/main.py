"""ASGI entry point: `uvicorn fake_backend.main:app`.

The settings are read when the module is imported, so a missing variable stops uvicorn
before it binds its port, with one line on stderr and exit code 2 (what systemd records).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from fake_backend.config import ConfigError, Settings, load_settings
from fake_backend.processor import Processor


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        print(f"panzoto fake backend: configuration error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)  # journald takes stdout; one line per record
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("fake_backend")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def create_app(settings: Settings) -> FastAPI:
    processor = Processor(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        processor.start()
        yield
        processor.stop()

    app = FastAPI(title="Panzoto fake backend", lifespan=lifespan)

    @app.get("/api/health")
    def health() -> JSONResponse:
        healthy, reason, stats = processor.health()
        body = {"status": "healthy" if healthy else "unhealthy", "processor": stats}
        if reason:
            body["reason"] = reason
        return JSONResponse(body, status_code=200 if healthy else 503)

    return app


configure_logging()
app = create_app(settings_or_exit())
