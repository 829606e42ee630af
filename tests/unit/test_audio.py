"""The audio lifecycle: which objects may go, and finishing what an interrupted run left."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ansible.module_utils.panzoto.cleanup.archive import ARCHIVE_FORMAT, ArchiveWriter, ReadStats, item_to_json
from ansible.module_utils.panzoto.cleanup.audio import (
    AudioReport,
    archive_audio_key,
    audio_to_delete,
    load_pending_audio,
)
from ansible.module_utils.panzoto.cleanup.plan import Planned
from ansible.module_utils.panzoto.jobs import inspect_job
from cleanup_fixtures import LEGACY, RULES, item


def planned(job_id: str, key: str | None) -> Planned:
    return Planned(inspect_job(item(job_id, "failed", timedelta(days=1), error_message=LEGACY), RULES), "x", key)


def test_an_object_goes_only_when_no_kept_job_references_it():
    a, b, c = planned("a", "k-a"), planned("b", "k-shared"), planned("c", "k-skipped")
    deleted = [a, b]  # c was selected but skipped: it keeps its audio
    keys, kept, earlier = audio_to_delete(
        deleted, [a, b, c], {"k-shared"}, {"gone": "k-earlier", "still-there": "k-c2"}, {"still-there"}
    )
    assert keys == ["k-a", "k-earlier"] and kept == ["k-shared"] and earlier == 1


def test_a_dry_run_predicts_requests_and_copies():
    report = AudioReport()
    report.predict([f"k{i}" for i in range(1001)], ["kept"], 2, copies=True)
    assert report.report(5)["delete_requests"] == 2 and report.archived == 1001
    assert report.report(5)["deleted"] == 1001 and len(report.report(5)["deleted_keys"]) == 5


def test_archive_copies_go_under_the_prefix_followed_by_the_original_key():
    assert archive_audio_key("old/", "audio_upload/u/a") == "old/audio_upload/u/a"
    assert archive_audio_key(None, "k") is None and archive_audio_key("old/", None) is None


def test_a_query_run_finishes_only_the_queried_users_leftover_audio(tmp_path: Path):
    archive = tmp_path / "archive.jsonl"
    writer = ArchiveWriter(archive).open()
    writer.append(
        {
            "format": ARCHIVE_FORMAT,
            "record": "job",
            "table": "jobs",
            "job_id": job_id,
            "delete_audio": True,
            "audio_key": f"audio/{user}/{job_id}",
            "item": item_to_json({"job_id": job_id, "user_id": user}),
        }
        for job_id, user in (("j1", "alice"), ("j2", "bob"))
    )
    writer.close()
    # Bob's jobs are not read by the query: whether another of his jobs uses his key is unknown, so it waits.
    assert load_pending_audio(archive, "jobs", "query", {"alice"}, ReadStats()) == {"j1": "audio/alice/j1"}
    assert load_pending_audio(archive, "jobs", "scan", None, ReadStats()) == {
        "j1": "audio/alice/j1",
        "j2": "audio/bob/j2",
    }
    assert load_pending_audio(tmp_path / "none.jsonl", "jobs", "scan", None, ReadStats()) == {}
