"""The fast fold's state, not only its rounded report, against the exact path's, value for value.

test_audit_fast_path.py compares reports, which round the average processing time and count
processing times in tenths: an error of a microsecond in a completed job's duration, or float
additions made in another order, would mostly round away there. Here the sum of processing
times must be the same float, and every counter, heap and tally the same.
"""

from __future__ import annotations

import random
from datetime import UTC, timedelta

import pytest
from ansible.module_utils.panzoto.audit.tally import JobAudit
from ansible.module_utils.panzoto.classification import build_rules
from ansible.module_utils.panzoto.jobs import inspect_job
from test_audit_fast_path import NOW, generator_items, mutated, naive_shapes

RULES = build_rules()


def audit() -> JobAudit:
    return JobAudit(
        now=NOW,
        stuck_after=timedelta(hours=1),
        recent_window=timedelta(hours=24),
        examples=5,
        processing_stuck_after=timedelta(minutes=20),
    )


def state(tally: JobAudit) -> dict:
    try:
        return {
            "processing_sum": tally.processing_sum.hex(),  # the same float, bit for bit
            "processing_tenths": dict(tally.processing_tenths),
            "total_items": tally.total_items,
            "by_status": dict(tally.by_status),
            "by_job_type": dict(tally.by_job_type),
            "categories": {name: vars(entry) for name, entry in tally.categories.items()},
            "stuck": [[*sorted(heap._heap), heap.count] for heap in (tally.stuck_pending, tally.stuck_processing)],
            "malformed": dict(tally.malformed_by_reason),
            "failed_recent": tally.failed_recent,
            "future": (tally.future_count, tally.future_examples),
            "failures_by_day": dict(tally.failures_by_day),
            "repeated": tally.repeated_failures.summary(50),
        }
    finally:
        tally.close()


def both_ways(items: list[dict]) -> tuple[dict, dict]:
    exact = audit()
    for item in items:
        exact.add(inspect_job(item, RULES))
    fast = audit()
    fast.add_items(iter(items), RULES)
    return state(fast), state(exact)


def completed_pairs(seed: int) -> list[dict]:
    """Completed jobs whose created and completed times are naive or UTC in every pairing, to the microsecond."""
    rng = random.Random(seed)
    items = []
    for number in range(3000):
        created = NOW - timedelta(days=rng.randint(0, 40), microseconds=rng.randint(0, 86_400 * 10**6))
        completed = created + timedelta(microseconds=rng.randint(-(10**6), 4 * 3600 * 10**6))
        forms = []
        for moment in (created, completed):
            naive = moment.replace(tzinfo=None)
            forms.append(
                rng.choice(
                    [
                        naive.isoformat(),
                        naive.isoformat(timespec="milliseconds"),
                        naive.isoformat(sep=" "),
                        naive.date().isoformat(),
                        moment.astimezone(UTC).isoformat(),
                        moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                        moment.astimezone(UTC).isoformat().replace("+00:00", "+02:00"),
                    ]
                )
            )
        items.append({"job_id": f"c{number}", "status": "completed", "created_at": forms[0], "completed_at": forms[1]})
    return items


@pytest.mark.parametrize("seed", range(3))
def test_completed_durations_sum_to_the_same_float_both_ways(seed: int) -> None:
    fast, exact = both_ways(completed_pairs(seed))
    assert fast == exact


@pytest.mark.parametrize("seed", range(3))
def test_the_synthetic_table_and_odd_values_leave_the_same_state_both_ways(seed: int) -> None:
    items = generator_items(2000, seed=seed, now=NOW)
    fast, exact = both_ways(items + mutated(items, NOW, seed, share=0.4))
    assert fast == exact


def test_naive_shapes_leave_the_same_state_both_ways() -> None:
    items = []
    for number, text in enumerate(naive_shapes()):
        items += [
            {"job_id": f"r{number}", "status": "processing", "created_at": text, "last_attempt_at": text},
            {"job_id": f"c{number}", "status": "completed", "created_at": text, "completed_at": "2025-10-19T18:30:00"},
            {"job_id": f"d{number}", "status": "completed", "created_at": "2025-10-19T09:00:00.25",
             "completed_at": text},
            {"job_id": f"e{number}", "status": "completed", "created_at": text, "completed_at": text},
        ]  # fmt: skip
    fast, exact = both_ways(items)
    assert fast == exact
