"""The audio lifecycle: which objects may go, and finishing what an interrupted run left."""

from __future__ import annotations

from pathlib import Path

from ansible.module_utils.panzoto.cleanup.archive import ARCHIVE_FORMAT, ArchiveWriter, ReadStats, item_to_json
from ansible.module_utils.panzoto.cleanup.audio import (
    AudioReport,
    archive_audio_key,
    audio_to_delete,
    load_pending_audio,
)


def test_an_object_goes_only_when_no_kept_job_references_it():
    # a and b were deleted, c was selected but not deleted: it keeps its audio; d has none.
    keys, kept, earlier = audio_to_delete(
        ["k-a", "k-shared"], ["k-skipped", None], {"k-shared"}, {"gone": "k-earlier", "still-there": "k-c2"},
        {"still-there"},
    )  # fmt: skip
    assert keys == ["k-a", "k-earlier"] and kept == ["k-shared"] and earlier == 1


def test_a_key_a_selected_job_not_deleted_references_is_kept():
    keys, kept, earlier = audio_to_delete(["k-a", "k-b", None], ["k-b"], set(), {"gone": "k-b"}, set())
    assert keys == ["k-a"] and kept == ["k-b"] and earlier == 0


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


# --------------------------------------------------------------------------- reading only what follows a settled point


def _random_archive(path: Path, seed: int, long_values: bool) -> int:
    """Runs of two tables appended at random, a settled marker wherever the whole archive has nothing
    pending for its table (as the module writes it), torn lines among them. Returns how many markers."""
    import random

    from ansible.module_utils.panzoto.cleanup.archive import RecordHeader, settled_record, unresolved_audio_owners

    rng = random.Random(seed)
    writer = ArchiveWriter(path).open()
    written: list[dict] = []
    unreadable = markers = 0
    for run in range(60):
        table = rng.choice(("jobs", "other"))
        header = RecordHeader(f"run-{run}", table, "absent")
        jobs = [f"{table}-{run}-{n}" for n in range(rng.randint(0, 4))]
        keys = {job: f"audio/{rng.randint(0, 6)}" for job in jobs}
        padding = "x" * rng.randint(0, 3000) if long_values else ""
        records = [
            header.record(
                "job", job_id=job, delete_audio=True, audio_key=keys[job],
                item=item_to_json({"job_id": job, "user_id": "u", "note": padding}),
            )
            for job in jobs
        ]  # fmt: skip
        outcomes = {job: rng.choice(("deleted", "deleted", "skipped", "failed", "not_attempted")) for job in jobs}
        records += [header.record("result", job_id=job, outcome=outcomes[job]) for job in jobs]
        pending = sorted({key for job, key in keys.items() if outcomes[job] == "deleted"})
        done = [key for key in pending if rng.random() < 0.8]
        if done or pending:
            kept = [key for key in pending if key not in done]
            records.append(header.record("audio", bucket="b", deleted=done, kept=kept, missing=[]))
        writer.append(records)
        written += records
        if rng.random() < 0.15:
            writer.close()
            with open(path, "a") as handle:
                handle.write('{"format": 1, "record": "jo')  # torn by a crash
            unreadable += 1
            writer = ArchiveWriter(path).open()
        if not unresolved_audio_owners(written, table) and rng.random() < 0.7:
            writer.append([settled_record(header, "b", unreadable)])
            markers += 1
    writer.close()
    return markers


def _lines_after_last_marker(path: Path, table: str) -> int:
    import json

    lines = [line for line in path.read_text().splitlines() if line.strip()]
    last = -1
    for number, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("settled") is True and record.get("table") == table:
            last = number
    return len(lines) - last - 1


def test_reading_from_the_last_settled_point_finds_every_pending_audio_entry(tmp_path: Path, monkeypatch):
    from ansible.module_utils.panzoto.cleanup import archive as archive_module

    monkeypatch.setattr(archive_module, "_BACKWARD_BLOCK", 256)  # lines longer than a block, and lines across blocks
    settled_somewhere = 0
    for seed in range(30):
        path = tmp_path / f"archive-{seed}.jsonl"
        markers = _random_archive(path, seed, long_values=seed % 2 == 0)
        settled_somewhere += markers > 0
        for table in ("jobs", "other", "absent-table"):
            for method, users in (("scan", None), ("query", {"u"})):
                whole = ReadStats()
                expected = {
                    job_id: key
                    for job_id, (key, user) in archive_module.unresolved_audio_owners(
                        archive_module.read_archive(path, whole), table
                    ).items()
                    if method == "scan" or user in users
                }
                partial = ReadStats()
                assert load_pending_audio(path, table, method, users, partial) == expected, (seed, table)
                assert partial.unreadable == whole.unreadable, (seed, table)
                # And it read exactly what follows the table's last marker, found across blocks.
                assert partial.lines == _lines_after_last_marker(path, table), (seed, table)
    assert settled_somewhere > 10  # the sequences do reach settled points


def test_a_settled_run_is_not_read_again(tmp_path: Path):
    from ansible.module_utils.panzoto.cleanup.archive import RecordHeader, settled_record

    archive = tmp_path / "archive.jsonl"
    header = RecordHeader("run-1", "jobs", "absent")
    writer = ArchiveWriter(archive).open()
    writer.append(header.record("job", job_id=f"j{n}", delete_audio=True, audio_key=f"k{n}") for n in range(50))
    writer.append([header.record("audio", bucket="b", deleted=[f"k{n}" for n in range(50)], kept=[], missing=[])])
    writer.append([settled_record(header, "b", 0)])
    later = RecordHeader("run-2", "jobs", "absent")
    writer.append([later.record("job", job_id="j-late", delete_audio=True, audio_key="k-late")])
    writer.close()
    stats = ReadStats()
    assert load_pending_audio(archive, "jobs", "scan", None, stats) == {"j-late": "k-late"}
    assert stats.lines == 1  # only what follows the marker
    # Another table's marker does not stand for this one.
    stats = ReadStats()
    assert load_pending_audio(archive, "other", "scan", None, stats) == {} and stats.lines == 53
