"""What a cleanup run did, counted: outcomes per group, capped lists, and the diff.

Counts are exact whatever the size; only the lists of ids and reasons are cut
at `list_limit` (the archive holds every changed job).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

OUTCOMES = ("changed", "unchanged", "skipped", "failed", "not_attempted")


@dataclass
class Tally:
    """Counts per group and outcome, with capped lists; exact whatever the size."""

    list_limit: int
    by_group: dict[str, Counter] = field(default_factory=dict)
    changed_ids: list[str] = field(default_factory=list)  # at most 2 x list_limit + 1024: the smallest
    skipped: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)

    def select(self, group: str) -> None:
        self.by_group.setdefault(group, Counter(dict.fromkeys(("selected", *OUTCOMES), 0)))["selected"] += 1

    def outcome(self, group: str, job_id: str, outcome: str, reason: str | None = None) -> None:
        self.by_group[group][outcome] += 1
        if outcome == "changed":
            self._keep_changed_id(job_id)
        elif outcome == "skipped" and len(self.skipped) < self.list_limit:
            self.skipped.append({"job_id": job_id, "category": group, "reason": reason})
        elif outcome == "failed" and len(self.failures) < self.list_limit:
            self.failures.append({"job_id": job_id, "category": group, "error": reason})

    def _keep_changed_id(self, job_id: str) -> None:
        """Only the list_limit smallest ids are reported: the rest are cut from time to time, not held to the end."""
        self.changed_ids.append(job_id)
        if len(self.changed_ids) >= 2 * self.list_limit + 1024:  # cut rarely: a sort per list_limit + 1024 ids
            self.changed_ids.sort()
            del self.changed_ids[self.list_limit :]

    def totals(self) -> dict[str, int]:
        return {name: sum(counts[name] for counts in self.by_group.values()) for name in OUTCOMES}

    def report(self) -> dict:
        """The result keys the module returns (none of them reserved by Ansible)."""
        return {
            "selected": sum(counts["selected"] for counts in self.by_group.values()),
            "counts": self.totals(),
            "by_category": {group: dict(counts) for group, counts in sorted(self.by_group.items())},
            "job_ids": sorted(self.changed_ids)[: self.list_limit],
            "skipped_jobs": self.skipped,  # not `skipped`: Ansible reads that as "the task was skipped"
            "failures": self.failures,
        }


def diff_for(state: str, tally_report: dict, audio: list[str], limit: int) -> dict:
    """Before/after summaries: counts per category, ids and keys capped."""
    changed = {group: counts["changed"] for group, counts in tally_report["by_category"].items() if counts["changed"]}
    before = {"jobs": changed, "job_ids": tally_report["job_ids"]}
    after: dict = {"jobs": dict.fromkeys(changed, 0), "job_ids": []}
    if state == "absent":
        before["audio_objects"] = audio[:limit]
        after["audio_objects"] = []
    elif state == "requeued":
        after = {"jobs": {"pending": sum(changed.values())}, "job_ids": tally_report["job_ids"]}
    elif state == "expiring":
        after = {"jobs_expiring": changed, "job_ids": tally_report["job_ids"]}
    else:
        before = {"jobs": {}, "job_ids": []}
        after = {"jobs": changed, "job_ids": tally_report["job_ids"]}
    return {"before": before, "after": after}
