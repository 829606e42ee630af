"""The audit's history: one compact JSON line per run, kept with the reports.

Read defensively: a torn or hand-edited line is skipped, never a crash, so a
broken history costs a trend point, not the audit.
"""

from __future__ import annotations

import json
import os

from ansible.module_utils.panzoto.files import write_atomic

HISTORY_FILE = "job-audit-history.jsonl"
# What the alerts (audit/alerts.py) remember sending, beside the history: named here, so that every
# run can check its state files without importing the alerts.
STATE_FILE = "job-audit-alert-state.json"


def read_history(path: str, last: int) -> list[dict]:
    """The last `last` readable entries, oldest first ([] when there is no history)."""
    try:
        with open(path, encoding="utf-8") as stream:
            lines = stream.readlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("at"), str):
            entries.append(entry)
    return entries[-last:] if last else []


def append_history(path: str, entry: dict, keep: int) -> None:
    """Append one entry, keeping the file to its last `keep` lines (rewritten atomically when trimmed)."""
    line = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    entries = read_history(path, keep)
    if len(entries) < keep:
        # Torn last line from a killed run: start the new entry on a line of its own.
        prefix = ""
        if os.path.exists(path) and os.path.getsize(path):
            with open(path, "rb") as stream:
                stream.seek(-1, os.SEEK_END)
                prefix = "" if stream.read(1) == b"\n" else "\n"
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(prefix + line)
            stream.flush()
            os.fsync(stream.fileno())
        return
    kept = (
        [json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in entries[-(keep - 1) :]]
        if keep > 1
        else []
    )
    write_atomic(path, "".join([*kept, line]))
