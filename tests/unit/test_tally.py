"""Counts per group and outcome: exact whatever the size, lists capped."""

from __future__ import annotations

from ansible.module_utils.panzoto.cleanup.tally import OUTCOMES, Tally, diff_for


def test_counts_are_exact_and_lists_are_capped_at_list_limit():
    tally = Tally(list_limit=2)
    for index in range(5):
        tally.select("legacy_encryption")
        tally.outcome("legacy_encryption", f"j{index}", "skipped" if index % 2 else "changed", "why")
    report = tally.report()
    assert report["counts"] == {"changed": 3, "unchanged": 0, "skipped": 2, "failed": 0, "not_attempted": 0}
    assert report["by_category"]["legacy_encryption"]["selected"] == 5 and report["selected"] == 5
    assert report["job_ids"] == ["j0", "j2"] and len(report["skipped_jobs"]) == 2 and "skipped" not in report
    assert set(report["counts"]) == set(OUTCOMES)


def test_the_diff_shows_counts_before_and_after_per_action():
    tally = Tally(10)
    tally.select("timeout")
    tally.outcome("timeout", "j1", "changed")
    report = tally.report()
    deleted = diff_for("absent", report, ["k1"], 10)
    assert deleted == {
        "before": {"jobs": {"timeout": 1}, "job_ids": ["j1"], "audio_objects": ["k1"]},
        "after": {"jobs": {"timeout": 0}, "job_ids": [], "audio_objects": []},
    }
    assert diff_for("requeued", report, [], 10)["after"] == {"jobs": {"pending": 1}, "job_ids": ["j1"]}
    assert diff_for("restored", report, [], 10)["before"] == {"jobs": {}, "job_ids": []}
