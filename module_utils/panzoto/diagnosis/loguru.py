"""The backend's log line formats, shared by the host-side reader and the classifier.

A loguru record starts with `2025-10-09 14:03:27 | ERROR | audio_processor.py:process_job:254 - message`
(loguru may add milliseconds and pad the level); `exc_info=True` adds traceback lines after it,
which do not start that way. The stdout sink forces ANSI colours on, so the journal holds them.
The backend's processor also logs through Python's `logging` with its default format
(`INFO:decision_data.backend.services.audio_processor:[AUDIO] ...`, no time: the journal has it),
which is what its journal holds at its latest commit; both start a record.
"""

from __future__ import annotations

import re

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
RECORD_START = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?)\s*\|\s*(?P<level>[A-Z]+)\s*\|\s*"
    r"(?P<where>[^|]*?)\s+-\s(?P<message>.*)$"
)
STDLIB_RECORD_START = re.compile(
    r"^(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL):(?P<where>[A-Za-z_][\w.]*):(?P<message>.*)$"
)
# A job named by the processor: `Job <id> ...`, `transcription job <id> ...`, `for job <id>, ...`
# (an id has a digit, so `job processor` names no job), or as a field: `job_id=<id>`, `"job_id": "<id>"`.
NAMED_JOB = re.compile(
    r"\b[Jj]ob\s+(?P<id>(?=[A-Za-z_-]*[0-9])[A-Za-z0-9][A-Za-z0-9_-]*)"
    r"|\bjob_id[\"']?\s*[=:]\s*[\"']?(?P<field>[A-Za-z0-9][A-Za-z0-9_-]*)"
)
# Tokens that may be ids; a record is tied to a job when one of them is its job or audio file id.
ID_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
FAILURE_LEVELS = frozenset({"WARNING", "WARN", "ERROR", "CRITICAL"})
# What may not reach a report as it is: C0 controls but tab and newline, DEL and C1 controls (ESC and CSI
# start terminal sequences), and what XML 1.0 cannot hold at all.
UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def strip_ansi(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)


def printable(text: str) -> str:
    """`text` with every control character written as a visible escape (`\\x1b`), tab and newline kept.

    Evidence goes into XML (where most controls are invalid) and onto terminals (where ESC sequences act).
    """

    def escape(match: re.Match) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return UNPRINTABLE.sub(escape, text)


def named_jobs(line: str) -> list[str]:
    """The job ids a line names as `Job <id>` or `job_id=<id>`, in order."""
    return [match["id"] or match["field"] for match in NAMED_JOB.finditer(line)]


def record_head(line: str) -> re.Match | None:
    """The match of a record's first line in either format (groups level, where, message; loguru's also stamp)."""
    return RECORD_START.match(line) or STDLIB_RECORD_START.match(line)


def message_of(text: str) -> str:
    """A record's message and traceback, without its format's `time | level | where - ` or `LEVEL:name:` prefix."""
    first, newline, rest = text.partition("\n")
    match = record_head(first)
    return (match["message"] if match else first) + newline + rest
