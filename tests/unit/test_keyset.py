"""KeptKeys: the compact set of kept jobs' audio keys never lets a referenced object be deleted."""

from __future__ import annotations

import random
from datetime import timedelta

from ansible.module_utils.panzoto.cleanup.audio import audio_to_delete
from ansible.module_utils.panzoto.cleanup.keyset import MAX_BITS, MIN_BITS, KeptKeys
from ansible.module_utils.panzoto.cleanup.plan import Planned
from ansible.module_utils.panzoto.jobs import inspect_job
from cleanup_fixtures import LEGACY, RULES, item


def keys(count: int, prefix: str = "audio_upload/user") -> list[str]:
    return [f"{prefix}-{index % 97}/{index:08d}.3gp_encrypted" for index in range(count)]


def test_every_key_added_is_reported_present():
    kept = KeptKeys(expected_keys=50_000)
    added = keys(50_000)
    kept.update(added)
    assert all(key in kept for key in added) and kept.count == 50_000


def test_false_positives_stay_at_the_documented_rate():
    kept = KeptKeys(expected_keys=50_000)
    kept.update(keys(50_000))
    others = keys(50_000, prefix="audio_upload/other")
    assert sum(key in kept for key in others) <= 2  # expected about 50,000 x 1e-5 = 0.5 at worst
    assert kept.false_positive_rate() < 1e-5


def test_the_size_is_fixed_by_the_table_between_a_floor_and_a_cap_whatever_is_added():
    assert KeptKeys(10_000).nbytes == KeptKeys(100_000).nbytes == MIN_BITS // 8
    assert KeptKeys(10**12).nbytes == MAX_BITS // 8
    small = KeptKeys(bits=1024)
    small.update(keys(5_000))
    assert small.nbytes == 128


def test_a_false_positive_does_not_repeat_with_another_salt():
    # A tiny filter, to force false positives; a new run (new salt) draws other ones.
    added, others = keys(200), keys(2_000, prefix="x")
    positives = []
    for salt in (b"run-1", b"run-2"):
        kept = KeptKeys(bits=2048, salt=salt)
        kept.update(added)
        positives.append({key for key in others if key in kept})
    assert positives[0] and positives[0] != positives[1]


def planned(job_id: str, key: str) -> Planned:
    return Planned(inspect_job(item(job_id, "failed", timedelta(days=1), error_message=LEGACY), RULES), "x", key)


def test_no_referenced_key_is_ever_reported_deletable_even_by_a_saturated_filter():
    rng = random.Random(7)
    pool = keys(3_000)
    for bits in (256, 4096, 1 << 16, MIN_BITS):
        kept_by_jobs = set(rng.sample(pool, 1_000))
        kept = KeptKeys(bits=bits, salt=rng.randbytes(16))
        kept.update(kept_by_jobs)
        deleted = [planned(f"j{index}", key) for index, key in enumerate(rng.sample(pool, 1_500))]
        delete, kept_list, _ = audio_to_delete([p.audio_key for p in deleted], (), kept, {}, set())
        assert not set(delete) & kept_by_jobs, bits
        assert set(kept_list) >= {p.audio_key for p in deleted} & kept_by_jobs
        assert set(delete) | set(kept_list) == {p.audio_key for p in deleted}
