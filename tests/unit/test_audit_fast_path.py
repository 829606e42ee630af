"""JobAudit.add_items (the audit's fast fold) against add(inspect_job(item)) (the exact path), item for item.

The fast path tallies the usual well-formed job straight from its item and hands anything else
to the exact path; these tests feed both the synthetic generator's items (every status, category
and malformed kind) and the same items with odd values mutated in, and require equal reports.
"""

from __future__ import annotations

import copy
import heapq
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import seed_jobs
from ansible.module_utils.panzoto.audit import tally as tally_module
from ansible.module_utils.panzoto.audit.tally import JobAudit, OldestJobs, ProcessorPage
from ansible.module_utils.panzoto.classification import build_rules, rules_by_category
from ansible.module_utils.panzoto.jobs import inspect_job, isoformat

NOW = seed_jobs.DEFAULT_NOW  # 2025-10-19T18:00:00Z
LATER_NOW = datetime(2025, 11, 5, 9, 30, tzinfo=UTC)  # after TODAY_SINCE: today's messages too
RULES = build_rules()
USER_RULES = build_rules(
    [
        {"category": "quota", "match": "quota|rate limit", "regex": True, "solution": "Wait.", "deletable": False},
        {"category": "timeout", "remove": True},
    ]
)


class Text(str):
    """A str subclass: never what the reader gives, so the fast path must leave it to the exact path."""


def generator_items(count: int, seed: int, now: datetime) -> list[dict]:
    rng = random.Random(seed)
    users = [seed_jobs.make_uuid(rng) for _ in range(5)]
    categories = seed_jobs.ALL_CATEGORIES if now > seed_jobs.TODAY_SINCE else seed_jobs.CATEGORIES
    expected = seed_jobs.Expected(keep_ids=False, categories=categories)
    generator = seed_jobs.Generator(rng=rng, now=now, users=users, expected=expected)
    return list(generator.items(count))


def stamp(moment: datetime, form: str = "z") -> str:
    return seed_jobs.render_timestamp(moment, form)


def odd_timestamps(now: datetime) -> list[object]:
    """Every form the exact path treats specially, and the boundaries the thresholds compare against."""
    hour, minute = timedelta(hours=1), timedelta(minutes=1)
    values: list[object] = [
        stamp(now - hour),  # exactly stuck_after: not stuck
        stamp(now - hour - timedelta(microseconds=1), "naive"),
        stamp(now - 20 * minute, "offset"),  # exactly processing_stuck_after
        stamp(now - 20 * minute - timedelta(microseconds=1)),
        stamp(now - timedelta(hours=24), "naive"),  # exactly the recent window
        stamp(now - timedelta(hours=24, microseconds=1), "offset"),
        stamp(now),
        stamp(now + timedelta(microseconds=1), "naive"),
        stamp(now + timedelta(days=3), "offset"),
        now.replace(tzinfo=None, microsecond=0).isoformat(),  # no fraction
        (now - hour).replace(tzinfo=None).isoformat(timespec="milliseconds"),
        (now - 2 * hour).astimezone(UTC).isoformat().replace("+00:00", "-00:00"),
        (now - 2 * hour).astimezone(UTC).isoformat().replace("+00:00", "+0000"),
        (now - 2 * hour).astimezone(UTC).isoformat().replace("+00:00", "z"),
        (now - 3 * hour).astimezone(UTC).isoformat().replace("+00:00", "+02:00"),
        (now - 3 * hour).astimezone(UTC).isoformat().replace("+00:00", "-05:30"),
        # Offsets that put the local date on another day than the UTC one (failures are counted by UTC day).
        (now - timedelta(days=1)).replace(hour=23, minute=30, tzinfo=None).isoformat() + "-05:30",
        (now - timedelta(days=1)).replace(hour=0, minute=30, tzinfo=None).isoformat() + "+09:00",
        " " + stamp(now - 5 * hour) + " ",
        # Naive forms the fast path reads again with "+00:00" appended ("T" at 10) or converts by replace.
        (now - 6 * hour).replace(tzinfo=None).isoformat(timespec="hours"),
        (now - 6 * hour).replace(tzinfo=None).isoformat(timespec="minutes"),
        (now - 6 * hour).replace(tzinfo=None, microsecond=500000).isoformat().replace(".", ","),
        (now - 6 * hour).replace(tzinfo=None).isoformat()[:21],  # one digit of fraction
        (now - 30 * minute).strftime("%G-W%V-%uT%H:%M:%S"),  # week date: "T" at 10 too
        (now - 30 * minute).strftime("%Y-%jT%H:%M:%S"),  # ordinal date: "T" at 8
        (now - 30 * minute).strftime("%Y%m%dT%H%M%S.%f"),
        stamp(now - hour - timedelta(microseconds=1), "naive").replace("T", "t"),
        stamp(now - 5 * hour, "naive").replace("T", " "),
        (now - timedelta(days=2)).date().isoformat(),
        (now - timedelta(days=2)).strftime("%Y%m%dT%H%M%SZ"),
        "0001-01-01T00:00:00+14:00",
        "0100-12-31T23:59:59",
        "0101-06-01T00:00:00Z",
        "0102-01-01T00:00:00",
        "0137-02-03T04:05:06+00:00",
        "9897-12-31T23:59:59",
        "9898-01-01T00:00:00+00:00",
        "9899-06-01T00:00:00Z",
        "9999-12-31T23:59:59.999999",
        "9999-12-31T23:59:59-14:00",
        "2025-13-45T10:00:00",
        "2025-02-29T10:00:00",
        "",
        " ",
        "not-a-date",
        "1760000000",
        Text(stamp(now - 4 * hour)),
        Decimal(1760000000),
        1760000000,
        True,
        None,
        {"S": "2025-10-19T10:00:00Z"},
    ]
    return values


def odd_values(now: datetime) -> dict[str, list[object]]:
    stamps = odd_timestamps(now)
    return {
        "status": ["failed", "pending", "processing", "completed", Text("failed"), "FAILED", " pending", None,
                   1, True, Decimal("3.5")],
        "created_at": stamps,
        "last_attempt_at": stamps,
        "completed_at": stamps,
        "retry_count": [0, 3, Decimal(2), Decimal("1E+2"), True, False, 2.0, "3", None, Decimal("NaN")],
        "job_type": ["transcription", "daily_summary", "", None, Text("transcription"), 5, Decimal(1)],
        "job_id": ["", "dup-1", "dup-1", None, Decimal(7), Text("text-id"), "zz-last"],
        "error_message": [None, "", "MAC check failed", "rate LIMIT hit", Text("Processing timeout"), 500,
                          {"code": "E42"}, ["MAC check failed"], Decimal(1)],
        "audio_file_id": ["", "shared-audio", "shared-audio", None, Decimal(5), Text("text-audio")],
    }  # fmt: skip


_MISSING = object()


def mutated(items: list[dict], now: datetime, seed: int, share: float) -> list[dict]:
    """The items with, on a `share` of them, one to three attributes replaced by odd values or removed."""
    rng = random.Random(seed)
    values = odd_values(now)
    names = sorted(values)
    out = []
    for item in items:
        item = copy.deepcopy(item)
        if rng.random() < share:
            for name in rng.sample(names, rng.randint(1, 3)):
                value = rng.choice([*values[name], _MISSING])
                if value is _MISSING:
                    item.pop(name, None)
                else:
                    item[name] = copy.deepcopy(value)
        out.append(item)
    return out


def audit_for(now: datetime, examples: int, page: ProcessorPage | None) -> JobAudit:
    return JobAudit(
        now=now,
        stuck_after=timedelta(hours=1),
        recent_window=timedelta(hours=24),
        examples=examples,
        processing_stuck_after=timedelta(minutes=20),
        processor_page=page,
    )


def exact_report(items, rules, now, examples=5, page=None) -> dict:
    audit = audit_for(now, examples, page)
    try:
        for item in items:
            audit.add(inspect_job(item, rules))
        return audit.report(rules_by_category(rules))
    finally:
        audit.close()


def fast_report(items, rules, now, examples=5, page=None) -> dict:
    audit = audit_for(now, examples, page)
    try:
        audit.add_items(iter(items), rules)
        return audit.report(rules_by_category(rules))
    finally:
        audit.close()


def visible_page(items: list[dict], seed: int) -> ProcessorPage:
    rng = random.Random(seed)
    ids = [item.get("job_id") for item in items if item.get("status") == "pending"]
    chosen = {job_id for job_id in ids if isinstance(job_id, str) and rng.random() < 0.5}
    return ProcessorPage(visible_ids=frozenset(chosen), scanned_count=len(items), more_pages=True)


@pytest.mark.parametrize("now", [NOW, LATER_NOW], ids=["guide-era", "today-era"])
@pytest.mark.parametrize("examples", [0, 1, 5])
def test_the_synthetic_table_tallies_the_same_both_ways(now: datetime, examples: int) -> None:
    items = generator_items(3000, seed=examples, now=now)
    assert fast_report(items, RULES, now, examples) == exact_report(items, RULES, now, examples)


@pytest.mark.parametrize("seed", range(6))
def test_odd_values_tally_the_same_both_ways(seed: int) -> None:
    now = (NOW, LATER_NOW)[seed % 2]
    items = mutated(generator_items(1500, seed=seed, now=now), now, seed, share=0.6)
    rules = (RULES, USER_RULES)[seed % 3 == 2]
    page = visible_page(items, seed) if seed % 2 else None
    assert fast_report(items, rules, now, 3, page) == exact_report(items, rules, now, 3, page)


def test_hand_picked_edges_tally_the_same_both_ways() -> None:
    day_ago = NOW - timedelta(days=1)
    failed = {"status": "failed", "error_message": "MAC check failed", "retry_count": Decimal(0)}
    items = [
        # Failures without job ids on one audio file: counted, listed without ids.
        {**failed, "job_id": "", "created_at": stamp(day_ago), "audio_file_id": "A"},
        {**failed, "job_id": "", "created_at": stamp(day_ago, "naive"), "audio_file_id": "A"},
        {**failed, "job_id": "a3", "created_at": stamp(day_ago, "offset"), "audio_file_id": "A"},
        # Created in another offset, on another local day than its UTC one, no last attempt.
        {**failed, "job_id": "tz1", "created_at": "2025-10-18T23:30:00-05:30", "audio_file_id": "B"},
        {**failed, "job_id": "tz2", "created_at": "2025-10-19T00:30:00+09:00",
         "error_message": "File does not start with RIFF id"},
        # Last attempt in another offset, and one unparseable (the creation time counts instead).
        {**failed, "job_id": "tz3", "created_at": stamp(day_ago), "last_attempt_at": "2025-10-19T01:00:00+05:00"},
        {**failed, "job_id": "bad", "created_at": stamp(day_ago), "last_attempt_at": "soon"},
        # Completed before it was created: no negative processing time.
        {"status": "completed", "job_id": "c1", "created_at": stamp(day_ago),
         "completed_at": stamp(day_ago - timedelta(seconds=5))},
        {"status": "completed", "job_id": "c2", "created_at": stamp(day_ago),
         "completed_at": "2025-10-18T19:00:00.25+01:00"},
        {"status": "pending", "job_id": "p1", "created_at": "2025-10-19T10:00:00+02:00"},
        {"status": "processing", "job_id": "r1", "created_at": stamp(day_ago),
         "last_attempt_at": "2025-10-19T19:50:00+02:00"},
    ]  # fmt: skip
    fast = fast_report(items, RULES, NOW, 5)
    assert fast == exact_report(items, RULES, NOW, 5)
    assert fast["repeated_failures"]["audio_files"] == [{"audio_file_id": "A", "failures": 3, "job_ids": ["a3"]}]
    assert {day["day"] for day in fast["failures_by_day"]} == {"2025-10-18", "2025-10-19"}


def test_the_processors_page_is_checked_the_same_both_ways() -> None:
    items = generator_items(2000, seed=11, now=NOW)
    page = visible_page(items, 11)
    fast = fast_report(items, RULES, NOW, 4, page)
    assert fast == exact_report(items, RULES, NOW, 4, page)
    assert fast["pending_invisible"]["count"] > 0


def test_the_backends_usual_jobs_take_the_fast_path(monkeypatch) -> None:
    """Not a vacuous comparison: the generator's well-formed jobs never reach inspect_job."""
    items = generator_items(3000, seed=3, now=NOW)
    seen = []

    def counting(item, rules):
        seen.append(item)
        return inspect_job(item, rules)

    monkeypatch.setattr(tally_module, "inspect_job", counting)
    fast_report(items, RULES, NOW)
    malformed = exact_report(items, RULES, NOW)["malformed"]["count"]
    assert malformed > 0
    assert len(seen) == malformed


def test_a_naive_now_fails_the_same_both_ways() -> None:
    items = generator_items(300, seed=5, now=NOW)
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(TypeError):
        exact_report(items, RULES, naive)
    with pytest.raises(TypeError):
        fast_report(items, RULES, naive)


def test_a_now_at_the_calendars_edge_takes_the_exact_path() -> None:
    # now - recent_window would overflow: the fast path is off, the result is the exact path's.
    edge = datetime(1, 1, 1, 12, tzinfo=UTC)
    items = [{"job_id": "a", "status": "pending", "created_at": "2025-10-19T10:00:00Z"}]
    assert fast_report(items, RULES, edge) == exact_report(items, RULES, edge)


def reference_oldest(entries: list[tuple[timedelta, str | None, datetime | None]], limit: int) -> dict:
    """OldestJobs as it was: every entry's date spelled before the heap compares it."""
    heap: list[tuple] = []
    for age, job_id, dated in entries:
        entry = (age.total_seconds(), job_id or "", isoformat(dated))
        if len(heap) < limit:
            heapq.heappush(heap, entry)
        elif limit and entry > heap[0]:
            heapq.heapreplace(heap, entry)
    oldest = sorted(heap, reverse=True)
    return {
        "count": len(entries),
        "oldest_age_seconds": oldest[0][0] if oldest else None,
        "jobs": [{"job_id": job_id, "created_at": dated, "age_seconds": age} for age, job_id, dated in oldest],
    }


@pytest.mark.parametrize("limit", [0, 1, 3, 10])
def test_the_oldest_jobs_match_a_heap_of_spelled_dates(limit: int) -> None:
    rng = random.Random(limit)
    entries = []
    for _ in range(2000):
        # Few distinct ages and ids, so ties on (age, id) are common and decided by the date.
        age = timedelta(seconds=rng.randrange(0, 40), microseconds=rng.choice((0, 0, 1, 500000)))
        dated = NOW - age if rng.random() < 0.9 else NOW - age - timedelta(microseconds=rng.randrange(2))
        entries.append((age, rng.choice(("a", "b", "", None, "c")), dated))
    kept = OldestJobs(limit)
    for entry in entries:
        kept.add(*entry)
    assert kept.report(dated_as="created_at") == reference_oldest(entries, limit)


def naive_shapes() -> list[str]:
    """Every naive form fromisoformat takes around NOW's stuck boundary, with and without a "T" at 10."""
    shapes = ["2025-10-19", "20251019"]  # a date alone: midnight
    for date in ("2025-10-19", "2025-W42-7", "20251019", "2025W427"):  # the week date is the same Sunday
        for separator in ("T", "t", " "):
            for time in ("17", "1730", "17:30", "17:00:00", "17:30:00.5", "17:30:00,123", "16:59:59.999999"):
                shapes.append(date + separator + time)
    return shapes


@pytest.mark.parametrize("text", naive_shapes())
def test_naive_shapes_tally_the_same_both_ways(text: str) -> None:
    # Each shape as the created, attempted and completed time of every status, against UTC neighbours.
    items = [
        {"job_id": "p", "status": "pending", "created_at": text, "job_type": "transcription"},
        {"job_id": "r", "status": "processing", "created_at": text, "last_attempt_at": text},
        {"job_id": "f", "status": "failed", "created_at": "2025-10-19T10:00:00Z", "last_attempt_at": text,
         "error_message": "MAC check failed", "audio_file_id": "a"},
        {"job_id": "g", "status": "failed", "created_at": text, "error_message": "timeout", "audio_file_id": "a"},
        {"job_id": "c", "status": "completed", "created_at": "2025-10-19T09:00:00", "completed_at": text},
        {"job_id": "d", "status": "completed", "created_at": text, "completed_at": "2025-10-19T18:30:00Z"},
    ]  # fmt: skip
    assert fast_report(items, RULES, NOW, 5) == exact_report(items, RULES, NOW, 5)
