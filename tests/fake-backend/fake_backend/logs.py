"""Logging set up at import, as the real backend's does, in its two kinds.

The loguru modules (transcription, audio, encryption): the same line format, ANSI colours forced on stdout (so
they reach the journal), and a file sink `./logs/app_<YYYYmmdd_HHMMSS>.log` in the working directory.

    2025-10-09 14:03:27 | ERROR | audio_processor.py:process_job:254 - [ERROR] Job 1f0c... processing failed ...

A log call with exc_info=True adds the traceback after its line. Creating `./logs` is what fails with
`PermissionError: [Errno 13] Permission denied: 'logs'` when the working directory is read-only.

The processor, the scheduler and the root `logging` lines: plain Python logging on stderr at INFO
(`WARNING:decision_data.backend.services.audio_processor:[FAIL] Job j1 marked as failed: ...`), so only in
the journal, without a timestamp of their own; botocore's INFO lines come along, as in the real one.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

LINE_FORMAT = "%(asctime)s | %(levelname)s | %(filename)s:%(funcName)s:%(lineno)d - %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
LOGS_DIR = Path("logs")
# loguru's default colours: green time, the level's colour for level and message, cyan location.
GREEN, CYAN, BOLD, RESET = "\x1b[32m", "\x1b[36m", "\x1b[1m", "\x1b[0m"
LEVEL_COLOURS = {"DEBUG": "\x1b[34m", "INFO": BOLD, "WARNING": "\x1b[33m\x1b[1m", "ERROR": "\x1b[31m\x1b[1m"}


class ColourFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = LEVEL_COLOURS.get(record.levelname, BOLD)
        line = (
            f"{GREEN}{self.formatTime(record, DATE_FORMAT)}{RESET} | {level}{record.levelname}{RESET} | "
            f"{CYAN}{record.filename}{RESET}:{CYAN}{record.funcName}{RESET}:{CYAN}{record.lineno}{RESET} - "
            f"{level}{record.getMessage()}{RESET}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


PLAIN_FORMAT = "%(levelname)s:%(name)s:%(message)s"


def configure_plain_logging() -> None:
    """The real backend's `logging.basicConfig(level=logging.INFO)`: stderr, Python's default line format."""
    logging.basicConfig(level=logging.INFO, format=PLAIN_FORMAT, stream=sys.stderr)


def configure_logging(logger_name: str = "fake_backend") -> logging.Logger:
    LOGS_DIR.mkdir(exist_ok=True)
    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(ColourFormatter())
    logfile = logging.FileHandler(LOGS_DIR / f"app_{time.strftime('%Y%m%d_%H%M%S')}.log", encoding="utf-8")
    logfile.setFormatter(logging.Formatter(LINE_FORMAT, DATE_FORMAT))
    logger = logging.getLogger(logger_name)
    logger.handlers[:] = [stdout, logfile]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
