"""write_batch_size through the role: -e cleanup_jobs_write_batch_size reaches the module (against moto)."""

from __future__ import annotations

import json

from fault_proxy import FaultProxy
from test_cleanup_playbook import PROCEDURE_1, cleanup, guide, table_items


def test_the_playbook_batch_size_predicts_then_sends_transactions(aws, tmp_path):
    expected, before = guide(aws.endpoint_url)
    legacy = set(expected["job_ids"]["by_category"]["legacy_encryption"])
    options = {**PROCEDURE_1, "cleanup_jobs_write_batch_size": 20, "cleanup_jobs_parallel": 1}

    preview, predicted = cleanup(tmp_path, aws.endpoint_url, check=True, **options)
    assert preview.returncode == 0, preview.output[-3000:]
    # 34 jobs in transactions of at most 20: two, predicted without sending any.
    assert predicted["writes"] == {"write_batch_size": 20, "transactions": 2, "resubmitted": 0, "fallback": None}
    assert table_items(aws.endpoint_url) == before

    with FaultProxy(aws.endpoint_url) as proxy:
        run, done = cleanup(tmp_path, proxy.url, **options)
    assert run.returncode == 0, run.output[-3000:]
    assert proxy.counts["TransactWriteItems"] == 2 and "DeleteItem" not in proxy.counts, proxy.counts
    assert done["writes"] == predicted["writes"]
    assert set(table_items(aws.endpoint_url)) == set(before) - legacy

    again, nothing = cleanup(tmp_path, aws.endpoint_url, **options)
    assert again.returncode == 0 and again.changed() == 0 and nothing["counts"]["changed"] == 0, again.output[-3000:]


def test_the_default_is_one_request_per_job(aws, tmp_path):
    guide(aws.endpoint_url)
    preview, predicted = cleanup(tmp_path, aws.endpoint_url, check=True, **PROCEDURE_1)
    assert preview.returncode == 0, preview.output[-3000:]
    assert predicted["writes"] == {"write_batch_size": 1, "transactions": 0, "resubmitted": 0, "fallback": None}


def test_an_out_of_range_batch_size_is_refused_by_the_dry_run_before_anything_is_written(aws, tmp_path):
    _, before = guide(aws.endpoint_url)
    preview, _ = cleanup(tmp_path, aws.endpoint_url, check=True, **PROCEDURE_1, cleanup_jobs_write_batch_size=101)
    assert preview.returncode != 0
    assert "write_batch_size must be between 1 and 100, got 101." in preview.output
    assert not (tmp_path / "archive.jsonl").exists()
    assert table_items(aws.endpoint_url) == before


def test_the_result_lists_at_most_list_limit_keys_and_says_the_archive_has_them_all(aws, tmp_path):
    expected, _ = guide(aws.endpoint_url)
    legacy = set(expected["job_ids"]["by_category"]["legacy_encryption"])
    run, report = cleanup(tmp_path, aws.endpoint_url, **PROCEDURE_1, cleanup_jobs_list_limit=5)
    assert run.returncode == 0, run.output[-3000:]
    assert len(report["deleted_objects"]) == 5 and report["deleted_objects_count"] == 34
    assert len(report["job_ids"]) == 5 and report["counts"]["changed"] == 34
    archive = tmp_path / "archive.jsonl"
    assert report["truncated"] == {
        "job_ids": f"5 of 34 listed (list_limit=5); the archive {archive} records every job",
        "deleted_objects": f"5 of 34 listed (list_limit=5); the archive {archive} records every deleted audio key",
    }
    records = [json.loads(line) for line in archive.read_text().splitlines()]
    assert {r["job_id"] for r in records if r["record"] == "job"} == legacy
    archived_keys = {key for r in records if r["record"] == "audio" for key in r["deleted"]}
    assert len(archived_keys) == 34 and set(report["deleted_objects"]) <= archived_keys
