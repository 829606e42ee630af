"""Filters for the deploy history (history.jsonl, written by the panzoto_release module).

{{ entry | panzoto_history_line }}
  -> "2026-12-06T21:40:00Z 3f2a9c1d0b7e healthy (local archive sha1 ..., lock sha1 ...)"
"""

from __future__ import annotations

from typing import Any


def origin(entry: dict[str, Any]) -> str:
    parts = []
    if entry.get("source") == "git":
        parts.append(f"git {entry.get('repository', '?')} {entry.get('ref', '?')} at {entry.get('revision', '?')}")
    elif entry.get("source") == "local":
        parts.append(f"local archive sha1 {entry.get('archive_sha1', '?')}")
    if entry.get("lock_sha1"):
        parts.append(f"lock sha1 {entry['lock_sha1']}")
    return f" ({', '.join(parts)})" if parts else ""


def panzoto_history_line(entry: dict[str, Any]) -> str:
    """One readable line per history entry: when, which release, what happened, where it came from."""
    at, outcome = entry.get("at", "?"), entry.get("outcome", "?")
    if outcome == "pruned":
        return f"{at} pruned {', '.join(entry.get('releases', []))}"
    line = f"{at} {entry.get('release', '?')} {outcome}"
    if entry.get("from"):
        line += f" (was {entry['from']})"
    if entry.get("reason"):
        line += f": {entry['reason']}"
    return line + origin(entry)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"panzoto_history_line": panzoto_history_line}
