"""Filter panzoto_cleanup_progress_line: the line tasks/poll.yml prints from the cleanup's progress file.

The file is the processing_jobs_cleanup module's progress_path (module_utils/panzoto/cleanup/progress.py).
"""

from __future__ import annotations

from datetime import datetime

VERBS = {"absent": "deleted", "requeued": "requeued", "expiring": "marked to expire", "restored": "restored"}
# Outcomes named after the count of changed jobs, when there are any.
OTHER_OUTCOMES = ("skipped", "failed", "unchanged", "not_attempted")


def _number(value: object) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "?"


def _elapsed(progress: dict) -> str:
    try:
        started = datetime.fromisoformat(str(progress["started"]).replace("Z", "+00:00"))
        updated = datetime.fromisoformat(str(progress["updated"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return ""
    seconds = max(0, int((updated - started).total_seconds()))
    return f" ({seconds // 60}m {seconds % 60:02d}s in)" if seconds >= 60 else f" ({seconds}s in)"


def progress_line(progress: object) -> str:
    """ "deleted 12,000 of 40,000 jobs, 1 skipped (3m 05s in)" from the progress file's JSON (a dict)."""
    if not isinstance(progress, dict) or not progress.get("phase"):
        return "starting: no progress written yet"
    phase = progress["phase"]
    done, total = progress.get("done", 0), progress.get("total", 0)
    counts = progress.get("counts") or {}
    verb = VERBS.get(progress.get("state"), "changed")
    elapsed = _elapsed(progress)
    if phase == "reading":
        about = f" of about {_number(total)}" if total else ""
        return f"reading {progress.get('table', 'the table')}: {_number(done)}{about} items read{elapsed}"
    if phase == "audio":
        action = "copying back" if progress.get("state") == "restored" else "deleting"
        jobs = _number(counts.get("changed", 0))
        return f"{action} S3 audio: {_number(total)} objects, after {jobs} jobs {verb}{elapsed}"
    others = "".join(
        f", {_number(counts[name])} {name.replace('_', ' ')}" for name in OTHER_OUTCOMES if counts.get(name)
    )
    line = f"{verb} {_number(counts.get('changed', 0))} of {_number(total)} jobs{others}"
    if phase == "done":
        return f"{line}: finished{elapsed}"
    if phase == "failed":
        return f"{line}: stopped{elapsed}"
    return f"{line} ({_number(done)} done){elapsed}" if done != counts.get("changed", 0) else f"{line}{elapsed}"


class FilterModule:
    def filters(self) -> dict:
        return {"panzoto_cleanup_progress_line": progress_line}
