"""The repeated-failure tally's multi-row INSERTs: every row kept, in scan order, whatever the batch cuts."""

from __future__ import annotations

import random

import pytest
from ansible.module_utils.panzoto.audit.tally import RepeatedFailures


def reference_repeated(rows: list[tuple[str, str | None]], examples: int) -> tuple[int, list[dict]]:
    """What a dict of every failed audio file reports (as in test_audit_tally.py)."""
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
