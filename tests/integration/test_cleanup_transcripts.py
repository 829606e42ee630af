"""The guide's procedure 2, step 2: the optional transcripts wipe, through ansible-playbook against moto.

The module reads the transcripts table's key (transcript_id) with DescribeTable,
so the wipe is the same safe run as the jobs wipe: switch plus the table's name
as confirmation, archived before deletion, bounded, dry-runnable, restorable.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from boto3.dynamodb.types import Binary
from test_cleanup_menu import menu_run
from test_cleanup_playbook import TABLE, cleanup, client, guide, object_keys, put_jobs, table_items

TRANSCRIPTS = "panzoto-transcripts"
WIPE = {"cleanup_jobs_wipe_all": True, "cleanup_jobs_confirm": TABLE}
WIPE_BOTH = {**WIPE, "cleanup_jobs_wipe_transcripts": True, "cleanup_jobs_confirm_transcripts": TRANSCRIPTS}


def transcripts(endpoint_url: str) -> dict[str, dict]:
    """Every transcript as low-level attribute values (exact types), by transcript_id."""
    dynamodb = client(endpoint_url, "dynamodb")
    items: dict[str, dict] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=TRANSCRIPTS, ConsistentRead=True):
        for item in page["Items"]:
            items[item["transcript_id"]["S"]] = item
    return items


def seed_transcripts(endpoint_url: str, count: int = 25) -> dict[str, dict]:
    """Transcripts with every attribute type the archive must keep exactly."""
    items = [
        {
            "transcript_id": f"transcript-{index:03d}",
            "user_id": f"user-{index % 3}",
            "text": f"meeting notes {index}",
            "duration_seconds": Decimal(index) / Decimal(4),
            "words": {"alpha", f"w{index}"},
            "digest": Binary(bytes([index, 255 - index])),
            "segments": [{"start": Decimal("0.5"), "speaker": None, "final": index % 2 == 0}],
            "created_at": f"2025-10-{10 + index % 9:02d}T08:00:00Z",
        }
        for index in range(count)
    ]
    put_jobs(endpoint_url, items, table=TRANSCRIPTS)
    return transcripts(endpoint_url)


def transcripts_report(tmp_path: Path) -> dict | None:
    path = tmp_path / f"cleanup-{TRANSCRIPTS}.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_transcripts_wipe_is_refused_without_its_confirmation_and_outside_a_wipe(aws, tmp_path):
    _, jobs_before = guide(aws.endpoint_url)
    before = seed_transcripts(aws.endpoint_url)
    cases = [
        ({**WIPE, "cleanup_jobs_wipe_transcripts": True}, f"set cleanup_jobs_confirm_transcripts={TRANSCRIPTS}"),
        (
            {**WIPE, "cleanup_jobs_wipe_transcripts": True, "cleanup_jobs_confirm_transcripts": TABLE},
            f"set cleanup_jobs_confirm_transcripts={TRANSCRIPTS}",
        ),
        (
            {"cleanup_jobs_wipe_transcripts": True, "cleanup_jobs_confirm_transcripts": TRANSCRIPTS},
            "cleanup_jobs_wipe_transcripts is step 2 of the wipe",
        ),
        # Bounded: the transcripts' dry run comes first and refuses before anything is touched.
        (
            {**WIPE_BOTH, "cleanup_jobs_max_changes": 24},
            "The selection would change 25 items, more than max_changes=24: nothing was changed",
        ),
    ]
    for variables, message in cases:
        run, report = cleanup(tmp_path, aws.endpoint_url, **variables)
        assert run.returncode != 0, variables
        assert report is None and transcripts_report(tmp_path) is None, "refused before any module ran"
        assert message in " ".join(run.stdout.split()), run.stdout[-2000:]
        assert "Traceback" not in run.output

    # Selections that need jobs are refused on the transcripts table, in one line, by the module.
    run, report = cleanup(
        tmp_path, aws.endpoint_url, cleanup_jobs_table=TRANSCRIPTS, cleanup_jobs_categories=["legacy_encryption"]
    )
    assert run.returncode != 0
    message = "categories: only for a jobs table (key job_id), and panzoto-transcripts is keyed by transcript_id"
    assert message in report["msg"]
    assert "\n" not in report["msg"]

    assert transcripts(aws.endpoint_url) == before and table_items(aws.endpoint_url) == jobs_before
    assert not list(tmp_path.glob("*.jsonl")), "nothing was archived"


def test_transcripts_wipe_dry_run_then_archived_wipe_then_exact_restore(aws, tmp_path):
    _, jobs_before = guide(aws.endpoint_url)
    before = seed_transcripts(aws.endpoint_url)
    keys_before = object_keys(aws.endpoint_url)
    archive = tmp_path / f"{TRANSCRIPTS}.jsonl"

    dry, jobs = cleanup(tmp_path, aws.endpoint_url, check=True, diff=True, **WIPE_BOTH)
    assert dry.returncode == 0, dry.output
    predicted = transcripts_report(tmp_path)
    assert predicted["check_mode"] is True and predicted["counts"]["changed"] == 25
    assert predicted["key"] == {"hash": "transcript_id", "range": None, "jobs_table": False}
    assert predicted["by_category"]["item"]["selected"] == 25
    assert jobs["counts"]["changed"] == 60
    assert "25 items would be deleted" in dry.stdout
    assert transcripts(aws.endpoint_url) == before and table_items(aws.endpoint_url) == jobs_before
    assert not archive.exists() and not (tmp_path / "archive.jsonl").exists()

    run, jobs = cleanup(tmp_path, aws.endpoint_url, **WIPE_BOTH)
    assert run.returncode == 0, run.output
    done = transcripts_report(tmp_path)
    assert done["counts"] == {"changed": 25, "unchanged": 0, "skipped": 0, "failed": 0, "not_attempted": 0}
    assert sorted(done["job_ids"]) == sorted(before) == sorted(predicted["job_ids"])
    assert jobs["counts"]["changed"] == 60
    assert transcripts(aws.endpoint_url) == {} and table_items(aws.endpoint_url) == {}
    assert object_keys(aws.endpoint_url) == keys_before, "no audio was asked to be deleted"

    # Archived before deletion: every transcript, whole, in its own file (mode 0600), records naming its table.
    records = [json.loads(line) for line in archive.read_text().splitlines()]
    assert {r["job_id"] for r in records if r["record"] == "job"} == set(before)
    assert {r["table"] for r in records} == {TRANSCRIPTS}
    assert archive.stat().st_mode & 0o777 == 0o600

    again, _ = cleanup(tmp_path, aws.endpoint_url, **WIPE_BOTH)
    assert again.returncode == 0, again.output
    assert again.changed() == 0 and transcripts_report(tmp_path)["counts"]["changed"] == 0

    restore = {
        "cleanup_jobs_state": "restored",
        "cleanup_jobs_table": TRANSCRIPTS,
        "cleanup_jobs_archive_path": str(archive),
    }
    run, report = cleanup(tmp_path, aws.endpoint_url, **restore)
    assert run.returncode == 0, run.output
    assert report["counts"]["changed"] == 25
    assert transcripts(aws.endpoint_url) == before, "restored items equal the originals, type for type"

    run, report = cleanup(tmp_path, aws.endpoint_url, **restore)
    assert run.returncode == 0 and run.changed() == 0 and report["counts"]["unchanged"] == 25


def test_interactive_wipe_asks_yes_or_no_for_the_transcripts_like_the_guide(aws, tmp_path):
    guide(aws.endpoint_url)
    seed_transcripts(aws.endpoint_url, count=7)

    # No terminal answer: the transcripts are kept (the question defaults to no).
    run, report = cleanup(tmp_path, aws.endpoint_url, **WIPE)
    assert run.returncode == 0, run.output
    assert report["counts"]["changed"] == 60 and len(transcripts(aws.endpoint_url)) == 7
    assert transcripts_report(tmp_path) is None

    guide(aws.endpoint_url)
    terminal = menu_run(tmp_path, aws.endpoint_url, WIPE)
    screen = terminal.read_until("Delete all transcripts too? [yes/no]")
    assert "[DRY RUN] 7 transcripts would be deleted from panzoto-transcripts" in screen
    assert table_items(aws.endpoint_url) == {}, "the jobs wipe ran first, as in the guide"
    assert len(transcripts(aws.endpoint_url)) == 7
    terminal.answer("Delete all transcripts too? [yes/no]", "yes")
    assert terminal.finish() == 0, terminal.output[-3000:]
    assert transcripts(aws.endpoint_url) == {}
    assert transcripts_report(tmp_path)["counts"]["changed"] == 7
