"""The audit's tally: one pass over the jobs folded into counts, capped examples and thresholds.

Memory stays flat whatever the table's size: counters are per status, job type, category and
day, examples are capped, and the repeated-failure tally (one row per failed job) lives in a
private temporary SQLite database that spills to disk past a small page cache.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import chain

from ansible.module_utils.panzoto.classification import CATCH_ALL, Rule, categorizer
from ansible.module_utils.panzoto.jobs import (
    JOB_ATTRIBUTES,
    JOB_STATUSES,
    SAFE_YEARS,
    Job,
    inspect_job,
    isoformat,
    parse_timestamp,
)

# The guide's monitoring numbers, plus none stuck in processing and none the processor cannot see.
DEFAULT_THRESHOLDS = {
    "failed": 20,
    "legacy_encryption": 10,
    "pending_stuck": 0,
    "failed_recent": 5,
    "processing_stuck": 0,
    "pending_invisible": 0,
}
AGGREGATE_THRESHOLDS = (
    "pending_stuck",
    "processing_stuck",
    "pending_invisible",
    "malformed",
    "failed_recent",
    "future_dated",
    "repeated_failure_audio_files",
)
P95_RESOLUTION = 10  # processing times are tallied in tenths of a second
# What the audit's scan projects: every attribute inspect_job and JobAudit read. user_id is none of
# them, and each attribute fewer is less for DynamoDB to send and for the client to parse.
AUDIT_ATTRIBUTES = tuple(name for name in JOB_ATTRIBUTES if name != "user_id")
_STATUSES = frozenset(JOB_STATUSES)


class _Absent:
    """The value of an attribute an item does not have (its own class: no item value is one)."""


_ABSENT = _Absent()
# The retry_count classes a well-formed job may have as the reader gives them (bool and other int
# subclasses are for the exact path), or none at all.
_RETRY_CLASSES = frozenset({Decimal, int, _Absent})
# A naive timestamp with a time part ("T" at 10) read again with this appended is replace(tzinfo=UTC) of
# its naive reading: a valid naive time holds no "+", "-" or "Z", so the suffix can only be read as its
# offset, and fromisoformat gives the UTC singleton for a zero offset. Without a "T" at 10 (a date
# alone, the basic format) the suffix may be read otherwise: those are converted by replace.
_AS_UTC = "+00:00"


@dataclass
class CategoryTally:
    count: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    examples: list[str] = field(default_factory=list)


class OldestJobs:
    """A count of jobs and the `limit` oldest of them, kept in a min-heap on age (the youngest is evicted)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._heap: list[tuple[float, str, str | None]] = []  # (age seconds, job id, dated)

    def add(self, age: timedelta, job_id: str | None, dated: datetime | None) -> None:
        self.count += 1
        seconds = age.total_seconds()
        job_id = job_id or ""
        heap = self._heap
        if len(heap) < self.limit:
            heapq.heappush(heap, (seconds, job_id, isoformat(dated)))
        elif self.limit:
            least = heap[0]
            # Most jobs are younger than every one kept: the tuple order is decided before the date is spelled.
            if seconds < least[0] or (seconds == least[0] and job_id < least[1]):
                return
            entry = (seconds, job_id, isoformat(dated))
            if entry > least:
                heapq.heapreplace(heap, entry)

    def report(self, dated_as: str) -> dict:
        oldest = sorted(self._heap, reverse=True)
        return {
            "count": self.count,
            "oldest_age_seconds": oldest[0][0] if oldest else None,
            "jobs": [{"job_id": job_id, dated_as: dated, "age_seconds": age} for age, job_id, dated in oldest],
        }


@dataclass(frozen=True)
class ProcessorPage:
    """What the backend's processor sees: the first page of a Scan filtered on status = pending."""

    visible_ids: frozenset[str]  # the pending jobs that page returned
    scanned_count: int  # items DynamoDB read for it (a page ends at 1 MB)
    more_pages: bool  # LastEvaluatedKey was set: the processor never reads further


class RepeatedFailures:
    """Audio files that failed in more than one job, counted exactly in bounded memory.

    Nearly every failed job has its own audio file, so a dict of them grows with the table
    (about 300 bytes per failed audio file). Instead each failure is a row in a private temporary
    SQLite database: SQLite keeps it in a page cache of CACHE_KIB, spills the rest to a file in
    TMPDIR that is deleted when the connection closes, and does the grouping in C.
    """

    CACHE_KIB = 4096
    BATCH = 4096  # rows handed to SQLite at once: per-row Python work stays an append
    # Rows per INSERT statement. One statement of many VALUES rows costs SQLite less than half of an
    # executemany of one-row statements (the statement runs once, not once per row), and it inserts
    # them in the order listed, so rowids stay in scan order. 512 parameters: under 999, the oldest
    # SQLite's limit, and 256 rows under the 500 VALUES rows older SQLites allowed in one statement.
    ROWS_PER_INSERT = 256

    def __init__(self) -> None:
        self._pending: list[tuple[str, str | None]] = []
        # "" names a private temporary on-disk database, removed on close.
        self._db = sqlite3.connect("")
        self._db.execute(f"PRAGMA cache_size = -{self.CACHE_KIB}")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE failures (audio_file_id TEXT NOT NULL, job_id TEXT)")
        self._insert_rows = "INSERT INTO failures VALUES " + ", ".join(["(?, ?)"] * self.ROWS_PER_INSERT)

    def add(self, audio_file_id: str, job_id: str | None) -> None:
        self._pending.append((audio_file_id, job_id or None))
        if len(self._pending) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        pending = self._pending
        size = self.ROWS_PER_INSERT
        whole = len(pending) - len(pending) % size
        execute = self._db.execute
        for start in range(0, whole, size):
            execute(self._insert_rows, list(chain.from_iterable(pending[start : start + size])))
        if whole < len(pending):
            self._db.executemany("INSERT INTO failures VALUES (?, ?)", pending[whole:])
        pending.clear()

    def summary(self, examples: int) -> tuple[int, list[dict]]:
        """(how many audio files failed more than once, the `examples` most failed with their first job ids)."""
        self._flush()
        count = 0
        top: list[tuple[str, int]] = []
        # Ties by id in code-point order: SQLite's BINARY collation compares UTF-8 bytes, which sorts alike.
        for audio, failures in self._db.execute(
            "SELECT audio_file_id, n FROM (SELECT audio_file_id, count(*) AS n FROM failures GROUP BY audio_file_id)"
            " WHERE n > 1 ORDER BY n DESC, audio_file_id"
        ):
            count += 1
            if len(top) < examples:
                top.append((audio, failures))
        job_ids: dict[str, list[str]] = {audio: [] for audio, _ in top}
        if top:
            # The first job ids in scan order, as a dict of lists kept while scanning would have.
            marks = ", ".join("?" * len(top))
            for audio, job_id in self._db.execute(
                f"SELECT audio_file_id, job_id FROM failures WHERE job_id IS NOT NULL AND audio_file_id IN ({marks})"
                " ORDER BY rowid",
                list(job_ids),
            ):
                if len(job_ids[audio]) < examples:
                    job_ids[audio].append(job_id)
        return count, [{"audio_file_id": audio, "failures": n, "job_ids": job_ids[audio]} for audio, n in top]

    def close(self) -> None:
        self._db.close()


@dataclass
class JobAudit:
    """Folds jobs one at a time into the report; keeps only counters and capped examples."""

    now: datetime
    stuck_after: timedelta
    recent_window: timedelta
    examples: int
    processing_stuck_after: timedelta = timedelta(minutes=20)
    processor_page: ProcessorPage | None = None  # None: the processor's view was not read
    total_items: int = 0
    by_status: Counter = field(default_factory=Counter)
    by_job_type: Counter = field(default_factory=Counter)
    categories: dict[str, CategoryTally] = field(default_factory=dict)
    stuck_pending: OldestJobs = field(init=False)
    stuck_processing: OldestJobs = field(init=False)
    invisible_pending: OldestJobs = field(init=False)
    malformed_by_reason: Counter = field(default_factory=Counter)
    malformed_examples: list[dict] = field(default_factory=list)
    failed_recent: int = 0
    future_count: int = 0
    future_examples: list[dict] = field(default_factory=list)
    failures_by_day: Counter = field(default_factory=Counter)  # (date, category) -> failures
    processing_tenths: Counter = field(default_factory=Counter)
    processing_sum: float = 0.0
    repeated_failures: RepeatedFailures = field(default_factory=RepeatedFailures)

    def __post_init__(self) -> None:
        self.stuck_pending = OldestJobs(self.examples)
        self.stuck_processing = OldestJobs(self.examples)
        self.invisible_pending = OldestJobs(self.examples)

    def add(self, job: Job) -> None:
        self.total_items += 1
        if self.processor_page is not None:
            self._check_visible(job)
        if job.malformed:
            self._add_malformed(job)
            return
        self.by_status[job.status] += 1
        self.by_job_type[job.job_type] += 1
        if job.created_at > self.now:
            self._add_future(job, job.created_at)
        if job.status == "failed":
            self._add_failed(job)
        elif job.status == "pending":
            self._add_pending(job)
        elif job.status == "processing":
            self._add_processing(job)
        elif job.status == "completed" and job.completed_at:
            seconds = max((job.completed_at - job.created_at).total_seconds(), 0.0)
            self.processing_sum += seconds
            self.processing_tenths[round(seconds * P95_RESOLUTION)] += 1

    def add_items(self, items: Iterable[dict], rules: tuple[Rule, ...]) -> None:
        """`add(inspect_job(item, rules))` for every item, in order: the same tally for a fraction of the CPU.

        A well-formed job whose values have the plain types the reader gives (str, Decimal, int) and whose
        created_at is naive or UTC in the years parse_timestamp takes without conversion (what the backend
        writes) is folded here straight from its item: no Job, and no Python call but for stuck or
        future-dated jobs. Anything else goes through inspect_job and add, the exact path.
        tests/unit/test_audit_fast_path.py compares the two on the synthetic table's items and on odd ones.
        """
        now = self.now
        try:
            # The thresholds as instants: `now - created > stuck_after` is `created < now - stuck_after`,
            # exactly (microsecond integers). A naive `now` or one at the calendar's edge: exact path only.
            fast = now.utcoffset() is not None
            stuck_before = now - self.stuck_after
            processing_before = now - self.processing_stuck_after
            recent_since = now - self.recent_window
        except (AttributeError, TypeError, OverflowError):
            fast = False
        exact = self.add
        if not fast:
            for item in items:
                exact(inspect_job(item, rules))
            return
        fromiso = datetime.fromisoformat
        as_utc = _AS_UTC
        low, high = SAFE_YEARS
        statuses = _STATUSES
        absent = _ABSENT
        retry_classes = _RETRY_CLASSES
        memo, categorize = categorizer(rules)
        page = self.processor_page
        visible = page.visible_ids if page is not None else None
        # Plain dicts while folding (a Counter's item access is the slow generic one), added to the
        # Counters when done: counts commute with the exact path's.
        by_status = dict.fromkeys(JOB_STATUSES, 0)
        by_job_type: dict[str, int] = {}
        failures_by_day: dict[tuple, int] = {}
        tenths: dict[int, int] = {}
        categories = self.categories
        repeated = self.repeated_failures
        failures = repeated._pending  # rows in scan order, as RepeatedFailures.add appends them
        batch = repeated.BATCH
        examples = self.examples
        resolution = P95_RESOLUTION
        recent = 0  # failed_recent, added when done
        # The processing times' sum in a local, as the exact path would add them: handed to and taken back
        # from `self` around each job that takes the exact path, so the float additions keep their order.
        processing_sum = self.processing_sum

        def slow(item: dict, processing_sum: float) -> float:
            self.processing_sum = processing_sum
            exact(inspect_job(item, rules))
            return self.processing_sum

        try:
            for item in items:
                get = item.get
                status = get("status")
                created = get("created_at")
                job_id = get("job_id")
                if (
                    status.__class__ is not str
                    or status not in statuses
                    or created.__class__ is not str
                    or job_id.__class__ is not str
                    or get("retry_count", absent).__class__ not in retry_classes
                ):
                    processing_sum = slow(item, processing_sum)
                    continue
                # parse_timestamp's own quick branch, inline; any other created_at takes the exact path.
                try:
                    created_at = fromiso(created)
                except ValueError:
                    processing_sum = slow(item, processing_sum)
                    continue
                if not low < created_at.year < high:
                    processing_sum = slow(item, processing_sum)
                    continue
                zone = created_at.tzinfo
                if zone is None:
                    naive_created = created_at  # a naive completed_at is subtracted from it as it is
                    # Read again as UTC (see _AS_UTC); replace(tzinfo=UTC) costs several parses.
                    created_at = fromiso(created + as_utc) if created[10:11] == "T" else created_at.replace(tzinfo=UTC)
                elif zone is UTC:
                    naive_created = None
                else:
                    processing_sum = slow(item, processing_sum)
                    continue
                job_type = get("job_type")
                if job_type.__class__ is str:
                    job_type = job_type or "unknown"
                elif job_type is None:
                    job_type = "unknown"
                else:
                    processing_sum = slow(item, processing_sum)
                    continue
                if status == "failed":
                    message = get("error_message")
                    audio = get("audio_file_id")
                    if (message is not None and message.__class__ is not str) or (
                        audio is not None and audio.__class__ is not str
                    ):
                        processing_sum = slow(item, processing_sum)
                        continue
                    category = CATCH_ALL if message is None else (memo.get(message) or categorize(message))

                # Everything below is what add() does with this job, in the same order.
                if visible is not None and status == "pending" and job_id not in visible:
                    self.invisible_pending.add(now - created_at, job_id, created_at)
                by_status[status] += 1
                try:
                    by_job_type[job_type] += 1
                except KeyError:
                    by_job_type[job_type] = 1
                if created_at > now:
                    self._future(job_id, created_at)
                if status == "failed":
                    last_attempt = get("last_attempt_at")
                    if last_attempt is None:
                        failed_at = created_at
                    else:
                        failed_at = None
                        if last_attempt.__class__ is str:
                            # parse_timestamp's quick branch inline again; it decides anything else.
                            try:
                                failed_at = fromiso(last_attempt)
                            except ValueError:
                                failed_at = None
                            if failed_at is not None:
                                zone = failed_at.tzinfo
                                if not low < failed_at.year < high or (zone is not None and zone is not UTC):
                                    failed_at = None
                                elif zone is None:
                                    failed_at = (
                                        fromiso(last_attempt + as_utc)
                                        if last_attempt[10:11] == "T"
                                        else failed_at.replace(tzinfo=UTC)
                                    )
                        if failed_at is None:
                            failed_at = parse_timestamp(last_attempt) or created_at
                    tally = categories.get(category)
                    # A tally is made with its first failure (here or in _add_failed): never without dates.
                    if tally is None:
                        tally = categories[category] = CategoryTally(0, failed_at, failed_at)
                    elif failed_at < tally.oldest:
                        tally.oldest = failed_at
                    elif failed_at > tally.newest:
                        tally.newest = failed_at
                    tally.count += 1
                    if job_id and len(tally.examples) < examples:
                        tally.examples.append(job_id)
                    day = (failed_at.date(), category)
                    try:
                        failures_by_day[day] += 1
                    except KeyError:
                        failures_by_day[day] = 1
                    if failed_at > now:
                        if created_at <= now:
                            self._future(job_id, failed_at)
                    elif failed_at >= recent_since:
                        recent += 1
                    if audio:
                        failures.append((audio, job_id or None))
                        if len(failures) >= batch:
                            repeated._flush()
                elif status == "completed":  # the most common status first
                    completed = get("completed_at")
                    if completed is not None:
                        completed_at = None
                        if completed.__class__ is str:
                            try:
                                completed_at = fromiso(completed)
                            except ValueError:
                                completed_at = None
                            if completed_at is not None:
                                zone = completed_at.tzinfo
                                if not low < completed_at.year < high or (zone is not None and zone is not UTC):
                                    completed_at = None
                                elif zone is None:
                                    if naive_created is not None:
                                        # Both naive, both UTC: the naive difference is the aware one, exactly.
                                        completed_at = created_at + (completed_at - naive_created)
                                    else:
                                        completed_at = (
                                            fromiso(completed + as_utc)
                                            if completed[10:11] == "T"
                                            else completed_at.replace(tzinfo=UTC)
                                        )
                        if completed_at is None:
                            completed_at = parse_timestamp(completed)
                        if completed_at is not None:
                            seconds = (completed_at - created_at).total_seconds()
                            if seconds < 0.0:
                                seconds = 0.0
                            processing_sum += seconds
                            tenth = round(seconds * resolution)
                            try:
                                tenths[tenth] += 1
                            except KeyError:
                                tenths[tenth] = 1
                elif status == "pending":
                    if created_at < stuck_before:
                        self.stuck_pending.add(now - created_at, job_id, created_at)
                else:  # processing: a few jobs of a table, parsed the general way
                    since = parse_timestamp(get("last_attempt_at")) or created_at
                    if since < processing_before:
                        self.stuck_processing.add(now - since, job_id, since)
        finally:
            self.processing_sum = processing_sum
            self.total_items += sum(by_status.values())  # every job folded here, and only those
            self.failed_recent += recent
            for counter, counts in (
                (self.by_status, by_status),
                (self.by_job_type, by_job_type),
                (self.failures_by_day, failures_by_day),
                (self.processing_tenths, tenths),
            ):
                for key, count in counts.items():
                    if count:
                        counter[key] += count

    def _add_malformed(self, job: Job) -> None:
        self.malformed_by_reason[job.malformed] += 1
        if len(self.malformed_examples) < self.examples:
            self.malformed_examples.append({"job_id": job.job_id, "reason": job.malformed})

    def _add_failed(self, job: Job) -> None:
        last_attempt = job.item.get("last_attempt_at")
        failed_at = (parse_timestamp(last_attempt) if last_attempt is not None else None) or job.created_at
        category = job.category
        tally = self.categories.get(category)
        if tally is None:
            tally = self.categories[category] = CategoryTally()
        tally.count += 1
        if tally.oldest is None or failed_at < tally.oldest:
            tally.oldest = failed_at
        if tally.newest is None or failed_at > tally.newest:
            tally.newest = failed_at
        if len(tally.examples) < self.examples and job.job_id:
            tally.examples.append(job.job_id)
        self.failures_by_day[(failed_at.date(), category)] += 1  # the day spelled once, in report()
        if failed_at > self.now:
            # A failure dated after the audit is clock skew, a finding of its own, never "recent".
            if job.created_at <= self.now:
                self._add_future(job, failed_at)
        elif self.now - failed_at <= self.recent_window:
            self.failed_recent += 1
        if job.audio_file_id:
            self.repeated_failures.add(job.audio_file_id, job.job_id)

    def _add_future(self, job: Job, dated: datetime) -> None:
        self._future(job.job_id, dated)

    def _future(self, job_id: str | None, dated: datetime) -> None:
        self.future_count += 1
        if len(self.future_examples) < self.examples:
            self.future_examples.append(
                {"job_id": job_id, "dated": isoformat(dated), "ahead_seconds": (dated - self.now).total_seconds()}
            )

    def _add_pending(self, job: Job) -> None:
        age = job.age(self.now)
        if age > self.stuck_after:
            self.stuck_pending.add(age, job.job_id, job.created_at)

    def _add_processing(self, job: Job) -> None:
        # Nothing resets a job left in processing (a restart mid-transcription, the manual transcribe
        # endpoint): past the processor's timeout plus a margin it will never finish.
        since = parse_timestamp(job.item.get("last_attempt_at")) or job.created_at
        age = self.now - since
        if age > self.processing_stuck_after:
            self.stuck_processing.add(age, job.job_id, since)

    def _check_visible(self, job: Job) -> None:
        """A pending item (read as the processor's filter reads it: its status only) outside its one page."""
        page = self.processor_page
        if page is None or job.item.get("status") != "pending" or job.job_id in page.visible_ids:
            return
        age = job.age(self.now) if job.created_at else timedelta(0)
        self.invisible_pending.add(age, job.job_id, job.created_at)

    def close(self) -> None:
        self.repeated_failures.close()

    def processing_p95(self) -> float | None:
        count = sum(self.processing_tenths.values())
        if not count:
            return None
        rank = -(-95 * count // 100)  # nearest rank: ceil(0.95 * n)
        seen = 0
        for tenths in sorted(self.processing_tenths):
            seen += self.processing_tenths[tenths]
            if seen >= rank:
                return tenths / P95_RESOLUTION
        return None

    def report(self, rules_by_name: dict) -> dict:
        completed = self.by_status["completed"]
        finished = completed + self.by_status["failed"]
        processing_count = sum(self.processing_tenths.values())
        repeated_count, repeated_audio = self.repeated_failures.summary(self.examples)
        return {
            "total_items": self.total_items,
            "by_status": {status: self.by_status[status] for status in JOB_STATUSES},
            "by_job_type": dict(sorted(self.by_job_type.items())),
            "categories": [
                {
                    "category": name,
                    "count": tally.count,
                    "solution": rules_by_name[name].solution,
                    "deletable": rules_by_name[name].deletable,
                    "oldest_failure": isoformat(tally.oldest),
                    "newest_failure": isoformat(tally.newest),
                    "next_step": rules_by_name[name].next_step,
                    "example_job_ids": tally.examples,
                }
                for name, tally in sorted(self.categories.items(), key=lambda pair: (-pair[1].count, pair[0]))
            ],
            "pending_stuck": {
                **self.stuck_pending.report(dated_as="created_at"),
                "stuck_after_seconds": self.stuck_after.total_seconds(),
            },
            "processing_stuck": {
                **self.stuck_processing.report(dated_as="since"),
                "stuck_after_seconds": self.processing_stuck_after.total_seconds(),
            },
            "pending_invisible": self._invisible_report(),
            "malformed": {
                "count": sum(self.malformed_by_reason.values()),
                "by_reason": dict(sorted(self.malformed_by_reason.items())),
                "examples": self.malformed_examples,
            },
            "failed_recent": self.failed_recent,
            "future_dated": {"count": self.future_count, "examples": self.future_examples},
            "failures_by_day": [
                {"day": day.isoformat(), "category": category, "count": n}
                for (day, category), n in sorted(self.failures_by_day.items())
            ],
            "completed": {
                "success_rate": round(completed / finished, 4) if finished else None,
                "processing_seconds_count": processing_count,
                "processing_seconds_average": round(self.processing_sum / processing_count, 3)
                if processing_count
                else None,
                "processing_seconds_p95": self.processing_p95(),
            },
            "repeated_failures": {"count": repeated_count, "audio_files": repeated_audio},
        }

    def _invisible_report(self) -> dict:
        page = self.processor_page
        return {
            **self.invisible_pending.report(dated_as="created_at"),
            "checked": page is not None,
            "processor_page": None
            if page is None
            else {
                "scanned_count": page.scanned_count,
                "pending_returned": len(page.visible_ids),
                "more_pages": page.more_pages,
            },
        }


def threshold_values(report: dict) -> dict[str, int]:
    """Every count a threshold may name, by that name."""
    values = dict(report["by_status"])
    values.update({entry["category"]: entry["count"] for entry in report["categories"]})
    values.update(
        pending_stuck=report["pending_stuck"]["count"],
        processing_stuck=report["processing_stuck"]["count"],
        pending_invisible=report["pending_invisible"]["count"],
        malformed=report["malformed"]["count"],
        failed_recent=report["failed_recent"],
        future_dated=report["future_dated"]["count"],
        repeated_failure_audio_files=report["repeated_failures"]["count"],
    )
    return values


def breached_thresholds(thresholds: dict[str, int], values: dict[str, int]) -> list[dict]:
    breached = []
    for name, limit in thresholds.items():
        value = values.get(name, 0)
        if value > limit:
            breached.append({"name": name, "value": value, "threshold": limit, "message": f"{name}: {value} > {limit}"})
    return breached


def validate_thresholds(thresholds: dict, categories: list[str]) -> dict[str, int]:
    """Thresholds as ints; raises ValueError (one line) on unknown names, bad values or none at all."""
    known = set(JOB_STATUSES) | set(categories) | set(AGGREGATE_THRESHOLDS)
    if not thresholds:
        # An audit with no limit would pass whatever the table holds: a check that checks nothing.
        raise ValueError("thresholds is empty: the audit would check no limit; leave it unset for the guide's")
    validated = {}
    for name, limit in thresholds.items():
        if name not in known:
            raise ValueError(f"thresholds: unknown threshold {name!r}: use one of {', '.join(sorted(known))}")
        validated[name] = whole_number(limit, f"thresholds: {name!r}")
        if validated[name] < 0:
            raise ValueError(f"thresholds: {name!r} cannot be negative, got {limit!r}")
    return validated


def whole_number(value: object, what: str) -> int:
    """An int from an int or a string of digits; 1.9, true or "5x" are refused, never truncated."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(f"{what} must be a whole number, got {value!r}")
