"""The audit's tally: boundaries, percentiles, caps and thresholds, without AWS."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from ansible.module_utils.panzoto.audit.tally import (
    JobAudit,
    ProcessorPage,
    RepeatedFailures,
    breached_thresholds,
    threshold_values,
    validate_thresholds,
)
from ansible.module_utils.panzoto.classification import build_rules, rules_by_category
from ansible.module_utils.panzoto.jobs import inspect_job

NOW = datetime(2025, 10, 19, 18, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def tally(items: list[dict], examples: int = 5) -> dict:
    audit = JobAudit(now=NOW, stuck_after=timedelta(hours=1), recent_window=timedelta(hours=24), examples=examples)
    for item in items:
        audit.add(inspect_job(item))
    return audit.report(rules_by_category(build_rules()))


def pending(job_id: str, age: timedelta) -> dict:
    return {"job_id": job_id, "status": "pending", "created_at": iso(NOW - age)}


def completed(job_id: str, seconds: float) -> dict:
    start = NOW - timedelta(days=1)
    return {
        "job_id": job_id,
        "status": "completed",
        "created_at": iso(start),
        "completed_at": iso(start + timedelta(seconds=seconds)),
    }


def failed(job_id: str, message: object, audio: str = "", at: datetime | None = None) -> dict:
    item = {
        "job_id": job_id,
        "status": "failed",
        "created_at": iso(at or NOW - timedelta(days=2)),
        "error_message": message,
    }
    if audio:
        item["audio_file_id"] = audio
    return item


def test_pending_is_stuck_only_when_strictly_older_than_the_limit() -> None:
    report = tally(
        [
            pending("exactly", timedelta(hours=1)),
            pending("just-over", timedelta(hours=1, seconds=1)),
            pending("fresh", timedelta(minutes=5)),
            pending("ancient", timedelta(days=3)),
        ]
    )
    assert report["pending_stuck"]["count"] == 2
    assert [job["job_id"] for job in report["pending_stuck"]["jobs"]] == ["ancient", "just-over"]
    assert report["pending_stuck"]["oldest_age_seconds"] == 3 * 86400


def test_stuck_examples_keep_the_oldest_when_capped() -> None:
    report = tally([pending(f"p{hours}", timedelta(hours=hours)) for hours in range(2, 12)], examples=3)
    assert report["pending_stuck"]["count"] == 10
    assert [job["job_id"] for job in report["pending_stuck"]["jobs"]] == ["p11", "p10", "p9"]


def test_processing_time_average_and_nearest_rank_p95() -> None:
    seconds = [float(n) for n in range(1, 101)]  # p95 by nearest rank of 1..100 is 95
    report = tally([completed(f"c{n}", s) for n, s in enumerate(seconds)])
    assert report["completed"]["processing_seconds_count"] == 100
    assert report["completed"]["processing_seconds_average"] == pytest.approx(50.5)
    assert report["completed"]["processing_seconds_p95"] == 95.0
    assert report["completed"]["success_rate"] == 1.0


def test_p95_of_a_single_job_and_no_jobs() -> None:
    assert tally([completed("c", 12.34)])["completed"]["processing_seconds_p95"] == pytest.approx(12.3)
    empty = tally([])
    assert empty["completed"]["processing_seconds_p95"] is None and empty["completed"]["success_rate"] is None


def test_categories_examples_and_failure_window() -> None:
    oldest = NOW - timedelta(days=10)
    items = [
        failed(f"l{n}", "Automatic decryption not yet implemented", at=oldest + timedelta(hours=n)) for n in range(7)
    ]
    items.append(failed("t1", "Processing timeout (5 minutes)", at=NOW - timedelta(hours=2)))
    report = tally(items, examples=2)
    legacy, timeout = report["categories"]
    assert (legacy["category"], legacy["count"], len(legacy["example_job_ids"])) == ("legacy_encryption", 7, 2)
    assert legacy["oldest_failure"] == "2025-10-09T18:00:00Z"
    assert legacy["newest_failure"] == "2025-10-10T00:00:00Z"
    assert timeout["category"] == "timeout" and timeout["deletable"] is False
    assert report["failed_recent"] == 1


def test_last_attempt_is_the_failure_time_when_present() -> None:
    item = failed("f", "MAC check failed", at=NOW - timedelta(days=5))
    item["last_attempt_at"] = iso(NOW - timedelta(hours=1))
    report = tally([item])
    assert report["failed_recent"] == 1
    assert report["categories"][0]["newest_failure"] == "2025-10-19T17:00:00Z"


def test_audio_files_failing_more_than_once_are_circuit_breaker_candidates() -> None:
    items = [failed("a1", "MAC check failed", audio="A"), failed("a2", "MAC check failed", audio="A")]
    items += [
        failed("b1", "x", audio="B"),
        failed("c1", "x", audio="C"),
        failed("c2", "y", audio="C"),
        failed("c3", "z", audio="C"),
    ]
    report = tally(items)
    assert report["repeated_failures"]["count"] == 2
    assert report["repeated_failures"]["audio_files"][0] == {
        "audio_file_id": "C",
        "failures": 3,
        "job_ids": ["c1", "c2", "c3"],
    }


def test_malformed_items_count_only_as_malformed() -> None:
    items = [
        {"job_id": "m1"},
        {"job_id": "m2", "status": "failed", "created_at": "bad"},
        {"job_id": "m3", "status": "failed", "created_at": iso(NOW), "error_message": Decimal(3)},
        failed("ok", "MAC check failed"),
    ]
    report = tally(items)
    assert report["total_items"] == 4
    assert report["by_status"]["failed"] == 1
    assert report["malformed"]["count"] == 3
    assert report["malformed"]["by_reason"] == {
        "created_at_unparseable": 1,
        "error_message_not_string": 1,
        "status_missing": 1,
    }


def test_thresholds_breach_only_when_strictly_above() -> None:
    report = tally([failed(f"f{n}", "MAC check failed") for n in range(3)])
    values = threshold_values(report)
    assert breached_thresholds({"failed": 3}, values) == []
    assert breached_thresholds({"failed": 2, "decryption_error": 5, "legacy_encryption": 0}, values) == [
        {"name": "failed", "value": 3, "threshold": 2, "message": "failed: 3 > 2"}
    ]


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"nope": 1}, "unknown threshold 'nope'"),
        ({"failed": "x"}, "must be a whole number"),
        ({"failed": -1}, "negative"),
        # Refused, never truncated to 1.
        ({"failed": 1.9}, r"thresholds: 'failed' must be a whole number, got 1\.9"),
        ({"failed": True}, "thresholds: 'failed' must be a whole number, got True"),
        ({"failed": "2.0"}, "must be a whole number"),
        ({}, "thresholds is empty: the audit would check no limit"),
    ],
)
def test_invalid_thresholds(thresholds: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_thresholds(thresholds, ["legacy_encryption"])


def test_whole_number_thresholds_from_strings_are_accepted() -> None:
    assert validate_thresholds({"failed": "20", "pending_stuck": 0}, []) == {"failed": 20, "pending_stuck": 0}


def test_future_dated_failures_are_clock_skew_never_recent() -> None:
    report = tally(
        [
            failed("future-created", "timeout", at=NOW + timedelta(hours=2)),
            {**failed("future-attempt", "timeout"), "last_attempt_at": iso(NOW + timedelta(minutes=5))},
            failed("recent", "timeout", at=NOW - timedelta(hours=1)),
            pending("future-pending", -timedelta(hours=3)),
        ]
    )
    assert report["failed_recent"] == 1
    assert report["future_dated"]["count"] == 3
    assert {job["job_id"] for job in report["future_dated"]["examples"]} == {
        "future-created",
        "future-attempt",
        "future-pending",
    }
    assert report["pending_stuck"]["count"] == 0


def reference_repeated(rows: list[tuple[str, str | None]], examples: int) -> tuple[int, list[dict]]:
    """What a dict of every failed audio file (the tally's former shape) reports."""
    failures: dict[str, int] = {}
    job_ids: dict[str, list[str]] = {}
    for audio, job_id in rows:
        failures[audio] = failures.get(audio, 0) + 1
        kept = job_ids.setdefault(audio, [])
        if job_id and len(kept) < examples:
            kept.append(job_id)
    repeated = sorted(((audio, n) for audio, n in failures.items() if n > 1), key=lambda pair: (-pair[1], pair[0]))
    top = [{"audio_file_id": audio, "failures": n, "job_ids": job_ids[audio]} for audio, n in repeated[:examples]]
    return len(repeated), top


@pytest.mark.parametrize("examples", [0, 1, 5])
def test_repeated_failures_match_a_full_dict_when_spilled_to_disk(monkeypatch, examples: int) -> None:
    # A 64 KiB page cache and small batches make 60,000 rows spill to the temporary file.
    monkeypatch.setattr(RepeatedFailures, "CACHE_KIB", 64)
    monkeypatch.setattr(RepeatedFailures, "BATCH", 97)
    rnd = random.Random(examples)
    # Ties in count, ids that sort differently by bytes and by case, non-ASCII ids, and missing job ids.
    audio_ids = [f"audio-{n:05d}" for n in range(20_000)] + ["Zeta", "alpha", "ålborg", "éa", "ea", "日本"]
    rows = [(rnd.choice(audio_ids), rnd.choice([None, "", f"job-{i}"])) for i in range(60_000)]
    tally_ = RepeatedFailures()
    for audio, job_id in rows:
        tally_.add(audio, job_id)
    try:
        assert tally_.summary(examples) == reference_repeated(rows, examples)
    finally:
        tally_.close()


def test_no_repeated_failures_when_every_audio_file_failed_once() -> None:
    tally_ = RepeatedFailures()
    for n in range(10):
        tally_.add(f"audio-{n}", f"job-{n}")
    assert tally_.summary(5) == (0, [])
    tally_.close()


def test_processing_jobs_are_stuck_past_the_timeout_plus_margin_from_their_last_attempt() -> None:
    audit = JobAudit(
        now=NOW, stuck_after=timedelta(hours=1), recent_window=timedelta(hours=24), examples=5,
        processing_stuck_after=timedelta(minutes=20),
    )  # fmt: skip
    old = NOW - timedelta(days=2)
    for job_id, attempt in (("fresh", NOW - timedelta(minutes=19)), ("gone", NOW - timedelta(minutes=21))):
        audit.add(
            inspect_job(
                {"job_id": job_id, "status": "processing", "created_at": iso(old), "last_attempt_at": iso(attempt)}
            )
        )
    audit.add(inspect_job({"job_id": "never-tried", "status": "processing", "created_at": iso(old)}))
    report = audit.report(rules_by_category(build_rules()))
    assert report["processing_stuck"]["count"] == 2
    assert [job["job_id"] for job in report["processing_stuck"]["jobs"]] == ["never-tried", "gone"]
    assert threshold_values(report)["processing_stuck"] == 2


def test_pending_jobs_outside_the_processors_page_are_invisible_whatever_their_age() -> None:
    audit = JobAudit(
        now=NOW, stuck_after=timedelta(hours=1), recent_window=timedelta(hours=24), examples=5,
        processor_page=ProcessorPage(visible_ids=frozenset({"seen"}), scanned_count=500, more_pages=True),
    )  # fmt: skip
    for item in (pending("seen", timedelta(hours=3)), pending("unseen", timedelta(minutes=1)), completed("c", 2.0)):
        audit.add(inspect_job(item))
    # A malformed pending item is still one the processor's filter (status only) would return.
    audit.add(inspect_job({"job_id": "junk", "status": "pending", "created_at": "yesterday"}))
    report = audit.report(rules_by_category(build_rules()))
    invisible = report["pending_invisible"]
    assert invisible["count"] == 2 and {job["job_id"] for job in invisible["jobs"]} == {"unseen", "junk"}
    assert invisible["processor_page"] == {"scanned_count": 500, "pending_returned": 1, "more_pages": True}
    assert report["pending_stuck"]["count"] == 1  # "seen", by age: a different question


def test_without_the_processors_page_nothing_is_invisible() -> None:
    report = tally([pending("p", timedelta(minutes=1))])
    assert report["pending_invisible"] == {
        "count": 0, "oldest_age_seconds": None, "jobs": [], "checked": False, "processor_page": None,
    }  # fmt: skip


# The multi-row INSERTs: every row kept, in scan order, whatever the batch cuts.
@pytest.mark.parametrize(
    ("batch", "rows_per_insert"),
    [
        (4096, 256),  # the defaults: whole statements, the rest at summary()
        (97, 7),  # batches that are no multiple of a statement: whole statements then one-row inserts
        (10, 10),  # batches of exactly one statement
        (5, 256),  # batches smaller than a statement: one-row inserts only
        (1000, 1),  # statements of one row
    ],
)
def test_multi_row_inserts_keep_every_row_in_scan_order(monkeypatch, batch: int, rows_per_insert: int) -> None:
    monkeypatch.setattr(RepeatedFailures, "CACHE_KIB", 64)
    monkeypatch.setattr(RepeatedFailures, "BATCH", batch)
    monkeypatch.setattr(RepeatedFailures, "ROWS_PER_INSERT", rows_per_insert)
    rnd = random.Random(batch * 1000 + rows_per_insert)
    audio_ids = [f"audio-{n:04d}" for n in range(3_000)] + ["Zeta", "alpha", "ålborg", "日本"]
    rows = [(rnd.choice(audio_ids), rnd.choice([None, "", f"job-{i}"])) for i in range(12_345)]
    tally = RepeatedFailures()
    try:
        for audio, job_id in rows:
            tally.add(audio, job_id)
        for examples in (0, 1, 5, 50):
            assert tally.summary(examples) == reference_repeated(rows, examples)
        # Every row is in the table once, and rowids follow the order the rows were added in.
        stored = list(tally._db.execute("SELECT audio_file_id, job_id FROM failures ORDER BY rowid"))
        assert stored == [(audio, job_id or None) for audio, job_id in rows]
    finally:
        tally.close()
