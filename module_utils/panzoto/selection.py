"""Which jobs a run acts on, and how the table is read to find them: the shared selection.

The selection options' argument spec (shared by every module that selects jobs), the selection model
(alternatives within an option, options narrowing each other), the one place those options become a
Selection, and the one query-or-scan decision (a parallel Scan, or a Query per user on the user index
when that sees every job the run must see). What only the cleanup does with a selection (planning
each job's change, other tables' keys, audio keys) is in cleanup/plan.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ansible.module_utils.panzoto.classification import Rule
from ansible.module_utils.panzoto.jobs import JOB_STATUSES, Job
from ansible.module_utils.panzoto.options import OptionError, age_option, duration_option
from ansible.module_utils.panzoto.scan import ScanStats, query_items, scan_items

STUCK_STATUSES = ("pending", "processing")
DELETABLE = "deletable"  # stands for every category whose rule allows deletion

# The options that say which table is read, how, and which of its jobs are selected: the same names,
# types and defaults in every module that selects jobs (processing_jobs_cleanup, processing_jobs_diagnose),
# so a selection means the same in each. Each module documents them in its DOCUMENTATION.
SELECTION_ARGUMENT_SPEC = dict(
    table=dict(type="str", default="panzoto-processing-jobs"),
    categories=dict(type="list", elements="str", default=[]),
    statuses=dict(type="list", elements="str", choices=list(JOB_STATUSES), default=[]),
    older_than=dict(type="str"),
    job_types=dict(type="list", elements="str"),
    user_ids=dict(type="list", elements="str"),
    job_ids=dict(type="list", elements="str"),
    stuck_after=dict(type="str", default="1h"),
    user_index=dict(type="str", default="user-jobs-index"),
    now=dict(type="str"),
    segments=dict(type="int", default=4),
)


# --------------------------------------------------------------------------- the selection


def expand_categories(categories: Iterable[str], rules: tuple[Rule, ...]) -> frozenset[str]:
    """The categories asked for, `deletable` replaced by the rules that allow deletion; unknown names refused."""
    wanted = set(categories)
    deletable = {rule.category for rule in rules if rule.deletable}
    known = {rule.category for rule in rules} | {DELETABLE}
    unknown = [name for name in categories if name not in known]
    if unknown:
        raise OptionError(f"unknown categories {', '.join(unknown)}: use one of {', '.join(sorted(known))}.")
    if DELETABLE in wanted:
        if not deletable:
            raise OptionError("categories contains 'deletable' but no classification rule is deletable.")
        wanted.discard(DELETABLE)
        wanted.update(deletable)
    return frozenset(wanted)


@dataclass(frozen=True)
class Selection:
    """Which jobs a run acts on: alternatives within an option, options narrowing each other."""

    now: datetime
    stuck_after: timedelta
    categories: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    older_than: timedelta | None = None
    job_types: frozenset[str] | None = None
    user_ids: frozenset[str] | None = None
    job_ids: frozenset[str] | None = None
    wipe_all: bool = False

    def is_stuck(self, job: Job) -> bool:
        age = job.age(self.now)
        return age is not None and age > self.stuck_after

    def _matches_kind(self, job: Job) -> bool:
        if not self.categories and not self.statuses:
            return True  # job_ids alone
        if job.status == "failed" and job.category in self.categories:
            return True
        if job.status in self.statuses:
            return job.status not in STUCK_STATUSES or self.is_stuck(job)
        return False

    def names(self, job_id: str | None, user_id: str | None) -> bool:
        """Whether job_ids and user_ids (when given) name this job: the narrowing a restore applies too."""
        if self.job_ids is not None and job_id not in self.job_ids:
            return False
        return self.user_ids is None or user_id in self.user_ids

    def matches(self, job: Job) -> bool:
        if self.wipe_all:
            return True
        if self.job_ids is not None and job.job_id not in self.job_ids:
            return False
        if job.malformed:
            # Junk is only touched when named explicitly.
            return self.job_ids is not None and not self.categories and not self.statuses
        if not self._matches_kind(job):
            return False
        if self.older_than is not None:
            age = job.age(self.now)
            if age is None or age <= self.older_than:
                return False
        if self.job_types is not None and job.job_type not in self.job_types:
            return False
        return self.user_ids is None or job.user_id in self.user_ids


# Narrowing options where an empty list is refused rather than read as "not given": a list emptied by
# a template or a typo in a variable must never widen a selection to every job of its category.
NARROWING_LISTS = ("job_types", "user_ids", "job_ids")


def refuse_empty_lists(params: dict) -> None:
    """OptionError when a narrowing option is [] (selects nothing); None is "not given"."""
    for name in NARROWING_LISTS:
        # [""] too: an empty string given on the command line (-e job_types=) becomes one.
        if params.get(name) is not None and not any(str(value).strip() for value in params[name]):
            raise OptionError(f"{name} is an empty list: it would select nothing; leave it out instead.")


def selection_from_params(
    params: dict, rules: tuple[Rule, ...], now: datetime, categories: Iterable[str] | None = None
) -> Selection:
    """The selection options (SELECTION_ARGUMENT_SPEC) as a Selection; OptionError (one line) for a bad value.

    `categories` replaces params["categories"] where a module has a default of its own (the diagnosis).
    """

    def optional(name: str) -> frozenset[str] | None:
        return frozenset(params[name]) if params[name] is not None else None

    refuse_empty_lists(params)
    older_than = params["older_than"]
    return Selection(
        now=now,
        stuck_after=duration_option("stuck_after", params["stuck_after"]),
        categories=expand_categories(params["categories"] if categories is None else categories, rules),
        statuses=frozenset(params["statuses"]),
        older_than=age_option("older_than", older_than) if older_than is not None else None,
        job_types=optional("job_types"),
        user_ids=optional("user_ids"),
        job_ids=optional("job_ids"),
        wipe_all=bool(params.get("wipe_all", False)),
    )


# --------------------------------------------------------------------------- the read plan


@dataclass(frozen=True)
class ReadPlan:
    """How the selection is read: a parallel Scan of the table, or a Query per user on the user index."""

    method: str  # "scan" | "query" | "archive" (restore)
    index: str | None = None
    reason: str = ""

    def report(self) -> dict:
        return {"method": self.method, "index": self.index, "reason": self.reason}


def usable_user_index(description: dict, index: str) -> str | None:
    """Why the GSI `index` cannot replace the scan (None when it can).

    It must exist, be keyed by user_id, project ALL attributes and be active.
    """
    found = next((gsi for gsi in description.get("GlobalSecondaryIndexes", []) if gsi.get("IndexName") == index), None)
    if found is None:
        return f"the table has no index {index}"
    hash_key = next((k["AttributeName"] for k in found.get("KeySchema", []) if k["KeyType"] == "HASH"), None)
    if hash_key != "user_id":
        return f"index {index} is keyed by {hash_key}, not user_id"
    if found.get("Projection", {}).get("ProjectionType") != "ALL":
        # Jobs are archived whole before they change: a partial projection would lose attributes.
        return f"index {index} does not project ALL attributes"
    if found.get("IndexStatus", "ACTIVE") != "ACTIVE":
        return f"index {index} is {found['IndexStatus']}"
    return None


def read_plan(
    user_ids: frozenset[str] | None, user_index: str, description: dict, every_user_reason: str | None = None
) -> ReadPlan:
    """Query the user index when user_ids narrow the selection and that reads everything the run must see.

    `every_user_reason` says why a run must see other users' jobs too (the cleanup's shared audio), so
    the table is scanned whatever the selection.
    """
    if user_ids is None:
        return ReadPlan("scan")
    if not user_index:
        return ReadPlan("scan", reason="user_index is empty")
    if every_user_reason:
        return ReadPlan("scan", reason=every_user_reason)
    unusable = usable_user_index(description, user_index)
    if unusable:
        return ReadPlan("scan", reason=f"{unusable}: every job is read")
    return ReadPlan("query", user_index, f"user_ids narrow the selection: Query on {user_index}")


def read_items(
    dynamodb,
    table: str,
    plan: ReadPlan,
    user_ids: Iterable[str] | None,
    segments: int,
    stats: ScanStats,
    attributes: Iterable[str] | None = None,
    page_size: int | None = None,
) -> Iterator[dict]:
    """The items the plan reads (only `attributes` when given, at most `page_size` a page), streamed."""
    if plan.method == "query":
        return query_items(
            dynamodb, table, plan.index, "user_id", sorted(user_ids or ()), attributes, segments, page_size, stats
        )
    return scan_items(dynamodb, table, attributes, segments, page_size, stats)
