"""The cleanup archive: encoding that keeps types, durable appends, reading, and its S3 form."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

from ansible.module_utils.panzoto.cleanup.archive import (
    ARCHIVE_FORMAT,
    ARCHIVE_METADATA,
    ArchiveWriter,
    ReadStats,
    RecordHeader,
    S3ReadStats,
    is_s3_archive_key,
    item_to_json,
    json_to_item,
    json_to_wire,
    latest_jobs,
    read_archive,
    read_s3_archive,
    s3_archive_key,
    unresolved_audio,
    unresolved_audio_owners,
)
from boto3.dynamodb.types import Binary

EXOTIC = {
    "job_id": "j1",
    "duration": Decimal("1.50"),
    "huge": Decimal("12345678901234567890.123456789"),
    "tags": {"a", "b"},
    "scores": {Decimal("1"), Decimal("2.5")},
    "blob": Binary(b"\x00\xff"),
    "blobs": {Binary(b"x"), Binary(b"y")},
    "nested": {"list": [Decimal("1"), "two", None, True, {"deep": Binary(b"\x01")}]},
    "flag": False,
    "nothing": None,
}
HEADER = RecordHeader("20251019T180000Z-abcdef", "t", "absent")


def test_items_survive_the_archive_encoding_type_for_type():
    encoded = json.loads(json.dumps(item_to_json(EXOTIC)))
    assert encoded["duration"] == {"N": "1.50"}
    assert json_to_item(encoded) == EXOTIC
    wire = json_to_wire(encoded)
    assert wire["blob"] == {"B": b"\x00\xff"} and wire["nested"]["M"]["list"]["L"][4]["M"]["deep"] == {"B": b"\x01"}


def test_every_record_of_a_run_carries_the_same_header():
    record = HEADER.record("job", job_id="j1")
    assert {k: record[k] for k in ("format", "record", "run_id", "table", "action", "job_id")} == {
        "format": ARCHIVE_FORMAT, "record": "job", "run_id": HEADER.run_id, "table": "t", "action": "absent",
        "job_id": "j1",
    }  # fmt: skip
    assert record["at"].endswith("Z")


def test_the_archive_is_private_appended_and_a_torn_last_line_is_reported_with_its_number(tmp_path: Path):
    path = tmp_path / "nested" / "archive.jsonl"
    record = HEADER.record("job", job_id="j1", item=item_to_json(EXOTIC))
    for _ in range(2):
        writer = ArchiveWriter(path).open()
        writer.append([record])
        writer.close()
    with open(path, "a") as handle:
        handle.write('{"format": 1, "record": "jo')  # a crash in the middle of a write
    assert path.stat().st_mode & 0o777 == 0o600
    stats = ReadStats()
    records = list(read_archive(path, stats))
    assert len(records) == 2 and stats.unreadable == 1 and stats.unreadable_at == [f"{path}:3"]
    assert json_to_item(latest_jobs(records, "t")["j1"].item) == EXOTIC


def test_latest_jobs_prefers_the_item_dynamodb_returned_on_delete():
    selected_item = item_to_json({"job_id": "j1", "retry_count": Decimal(1)})
    deleted_item = item_to_json({"job_id": "j1", "retry_count": Decimal(2)})
    records = [
        {"format": 1, "record": "job", "table": "t", "run_id": "r", "job_id": "j1", "item": selected_item},
        {"format": 1, "record": "result", "table": "t", "run_id": "r", "job_id": "j1", "outcome": "deleted",
         "item": deleted_item},
        {"format": 1, "record": "job", "table": "other", "run_id": "r", "job_id": "j2", "item": selected_item},
        # Another run's result does not describe this run's job record.
        {"format": 1, "record": "result", "table": "t", "run_id": "x", "job_id": "j1", "outcome": "skipped"},
    ]  # fmt: skip
    jobs = latest_jobs(records, "t")
    assert list(jobs) == ["j1"] and jobs["j1"].item == deleted_item and jobs["j1"].outcome == "deleted"


def test_unresolved_audio_is_what_an_interrupted_run_left():
    def job(job_id: str, key: str) -> dict:
        return {"format": 1, "record": "job", "table": "t", "job_id": job_id, "audio_key": key, "delete_audio": True}

    records = [
        job("a", "k-a"),
        job("b", "k-b"),
        job("c", "k-c"),
        {"format": 1, "record": "result", "table": "t", "job_id": "c", "outcome": "skipped"},
        {"format": 1, "record": "audio", "table": "t", "deleted": ["k-a"], "kept": [], "missing": []},
        job("d", "k-a"),  # a later run selects a job with an already handled key: pending again
        {**job("e", "k-e"), "table": "other"},
    ]
    assert unresolved_audio(records, "t") == {"b": "k-b", "d": "k-a"}


def test_unresolved_audio_owners_name_the_user_of_each_leftover():
    def job_record(job_id: str, user: str) -> dict:
        return {
            "format": ARCHIVE_FORMAT, "record": "job", "table": "jobs", "job_id": job_id, "delete_audio": True,
            "audio_key": f"audio/{user}/{job_id}", "item": item_to_json({"job_id": job_id, "user_id": user}),
        }  # fmt: skip

    records = [job_record("j1", "alice"), job_record("j2", "bob"), {**job_record("j3", "x"), "table": "other"}]
    owners = unresolved_audio_owners(records, "jobs")
    assert owners == {"j1": ("audio/alice/j1", "alice"), "j2": ("audio/bob/j2", "bob")}


def test_s3_archive_objects_are_named_so_that_nothing_else_under_the_prefix_passes_for_one():
    key = s3_archive_key("ops/", HEADER.run_id, "t", 3)
    assert key == f"ops/{HEADER.run_id}/t-00003.jsonl" and is_s3_archive_key(key, "ops/")
    for other in ("ops/audio_upload/u/a.3gp_encrypted", f"ops/{HEADER.run_id}/t-00003.jsonl.bak", "ops/notes.jsonl",
                  f"ops/x/{HEADER.run_id}/t-00003.jsonl", f"other/{HEADER.run_id}/t-00003.jsonl"):  # fmt: skip
        assert not is_s3_archive_key(other, "ops/"), other


class FakeS3Archive:
    """list_objects_v2 and get_object over a dict of {key: (body, metadata)}."""

    def __init__(self, objects: dict[str, tuple[bytes, dict]]) -> None:
        self.objects, self.read = objects, []

    def get_paginator(self, name: str):
        objects = self.objects

        class Paginator:
            def paginate(self, Bucket: str, Prefix: str):
                yield {"Contents": [{"Key": key} for key in sorted(objects) if key.startswith(Prefix)]}

        return Paginator()

    def get_object(self, Bucket: str, Key: str) -> dict:
        self.read.append(Key)
        body, metadata = self.objects[Key]
        return {"Body": io.BytesIO(body), "Metadata": metadata}


def test_reading_an_s3_archive_never_decodes_audio_or_other_objects_as_records():
    record = HEADER.record("job", job_id="j1", item=item_to_json({"job_id": "j1"}))
    good = s3_archive_key("", HEADER.run_id, "t", 0)
    s3 = FakeS3Archive(
        {
            good: (json.dumps(record).encode() + b"\n", ARCHIVE_METADATA),
            "audio_upload/u1/a.3gp_encrypted": (b"\xd3\x00\xff binary audio", {}),
            s3_archive_key("", "20251019T180000Z-000000", "t", 0): (b"\xd3 not ours", {}),  # named like one, unmarked
        }
    )
    stats, s3_stats = ReadStats(), S3ReadStats()
    records = list(read_s3_archive(s3, "b", "", stats, s3_stats))
    assert records == [record] and stats.unreadable == 0 and s3_stats.objects == 1
    assert "audio_upload/u1/a.3gp_encrypted" not in s3.read and len(s3_stats.ignored) == 2


def test_an_existing_archive_becomes_private_and_a_torn_tail_is_ended_before_the_next_record(tmp_path: Path):
    path = tmp_path / "archive.jsonl"
    path.write_text(json.dumps(HEADER.record("job", job_id="j1")) + "\n" + '{"format": 1, "rec')
    path.chmod(0o644)
    writer = ArchiveWriter(path).open()
    writer.append([HEADER.record("job", job_id="j2")])
    writer.close()
    assert path.stat().st_mode & 0o777 == 0o600
    stats = ReadStats()
    assert [r["job_id"] for r in read_archive(path, stats)] == ["j1", "j2"] and stats.unreadable_at == [f"{path}:2"]


def test_only_jobs_the_cleanup_deleted_are_restorable():
    def archived(action: str, outcome: str | None) -> bool:
        records = [
            {"format": 1, "record": "job", "table": "t", "run_id": "r", "job_id": "j", "action": action, "item": {}}
        ]
        if outcome is not None:
            records.append(
                {"format": 1, "record": "result", "table": "t", "run_id": "r", "job_id": "j", "outcome": outcome}
            )
        return latest_jobs(records, "t")["j"].deleted_by_cleanup

    assert archived("absent", "deleted") and archived("absent", None)  # None: interrupted between delete and result
    assert not any(archived("absent", outcome) for outcome in ("skipped", "failed", "not_attempted"))
    assert not archived("requeued", "changed") and not archived("expiring", "changed")


def test_kept_audio_stays_pending_for_the_next_run_to_recheck():
    records = [
        {"format": 1, "record": "job", "table": "t", "job_id": "a", "audio_key": "k", "delete_audio": True},
        {"format": 1, "record": "audio", "table": "t", "deleted": [], "kept": ["k"], "missing": []},
        {"format": 1, "record": "job", "table": "t", "job_id": "b", "audio_key": "k2", "delete_audio": True},
        {"format": 1, "record": "result", "table": "t", "job_id": "b", "outcome": "not_attempted"},
    ]
    assert unresolved_audio(records, "t") == {"a": "k"}


def test_check_archive_file_accepts_new_files_and_its_own_archives_only(tmp_path: Path):
    from ansible.module_utils.panzoto.cleanup.archive import check_archive_file

    assert check_archive_file(tmp_path / "new" / "archive.jsonl") is None
    assert "is a directory" in check_archive_file(tmp_path)
    foreign = tmp_path / "notes.txt"
    foreign.write_text("hello\n")
    assert "not a panzoto-ops archive" in check_archive_file(foreign)
    own = tmp_path / "own.jsonl"
    own.write_text(json.dumps(HEADER.record("job", job_id="j1")) + "\n")
    assert check_archive_file(own) is None
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert check_archive_file(empty) is None


def test_the_archive_and_the_conditions_serialize_values_exactly_as_boto3_does():
    from ansible.module_utils.panzoto.cleanup.archive import _encode_binary, to_wire
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    values = [*EXOTIC.values(), 7, Decimal("-0"), Decimal("1E+5"), "", [], {}, {"k": {"m": [[], {"n": None}]}}]
    for value in values:
        assert to_wire(value) == serialize(value), value
    assert item_to_json(EXOTIC) == {name: _encode_binary(serialize(value)) for name, value in EXOTIC.items()}


def test_a_streamed_record_is_the_line_append_writes_without_its_text_held_whole(tmp_path: Path, monkeypatch):
    from ansible.module_utils.panzoto.cleanup import archive as archive_module

    header = RecordHeader("20251019T180000Z-abcdef", "jobs", "absent")
    keys = [f"audio_upload/user-{n}/é-{n}\ud800.3gp_encrypted" for n in range(5_000)]  # not ASCII, a lone surrogate
    record = header.record("audio", bucket="b", deleted=keys, kept=["k"], missing=[], note={"z": 1, "a": [0.5, None]})
    whole, streamed = ArchiveWriter(tmp_path / "whole.jsonl").open(), ArchiveWriter(tmp_path / "streamed.jsonl").open()
    whole.append([record])
    writes = []
    monkeypatch.setattr(archive_module, "_STREAMED_WRITE", 4096)
    write = streamed._handle.write
    monkeypatch.setattr(streamed._handle, "write", lambda text: writes.append(len(text)) or write(text))
    streamed.append_streamed(record)
    whole.close()
    streamed.close()
    assert (tmp_path / "streamed.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert streamed.records_written == 1
    # In pieces of about the write size, not the whole line at once.
    assert len(writes) > 20 and max(writes) < 4096 + 200
