"""Requeue under the backend's 24 h rule.

The processor fails every pending job whose `created_at` is older than 24 hours as `Job expired - too old`,
before trying it (hard-coded in the backend). A requeue that keeps such a job's `created_at` is therefore
failed again within one poll. By default the cleanup refuses it; with `requeue_fresh` it resets
`created_at` to the requeue time and keeps the original as `original_created_at` (the first one, over
repeated requeues), so the audit and a restore still know when the job was really created.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from ansible.module_utils.panzoto.cleanup.plan import Planned
from ansible.module_utils.panzoto.jobs import isoformat

BACKEND_PENDING_EXPIRY = timedelta(hours=24)
EXPIRED_MESSAGE = "Job expired - too old"


def too_old(changes: Iterable[Planned], now: datetime) -> list[Planned]:
    """The jobs the processor would expire at once if requeued as they are (oldest first)."""
    old = [p for p in changes if p.job.created_at is not None and now - p.job.created_at > BACKEND_PENDING_EXPIRY]
    return sorted(old, key=lambda p: p.job.created_at)


def refusal(old: list[Planned], total: int) -> str:
    oldest = old[0].job
    return (
        f"{len(old)} of the {total} jobs to requeue were created more than 24 h ago (oldest: {oldest.job_id}, "
        f"created_at {isoformat(oldest.created_at)}): the backend fails such pending jobs as '{EXPIRED_MESSAGE}' "
        f"before trying them; set requeue_fresh=true to reset their created_at (the original is kept as "
        f"original_created_at), or narrow the selection; nothing was changed."
    )


def reset_report(old: list[Planned], limit: int) -> dict:
    """What a fresh requeue does to created_at, for the result and the diff."""
    return {
        "count": len(old),
        "jobs": [{"job_id": p.job_id, "created_at": p.job.item.get("created_at")} for p in old[:limit]],
    }
