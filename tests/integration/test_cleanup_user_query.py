"""The guide's procedure 3: a user's jobs read through the user-jobs-index GSI, not a full scan.

Requests are counted by tests/harness/fault_proxy.py (no faults injected) between
ansible-playbook's module and moto, so "no Scan" is what went over the wire.
"""

from __future__ import annotations

import seed_jobs
from fault_proxy import FaultProxy
from test_cleanup_playbook import AUDIO_KEY, BUCKET, READ_OPERATIONS, cleanup, client, job, object_keys, table_items

LEGACY = "Automatic decryption not yet implemented"
ALICE, BOB, CAROL = "user-alice", "user-bob", "user-carol"
SELECTION = {"cleanup_jobs_categories": ["legacy_encryption"], "cleanup_jobs_delete_audio": True}


def seed_users(endpoint_url: str) -> dict[str, dict]:
    """Alice's and Bob's jobs; Bob's legacy job uses the same audio_file_id as one of Alice's."""
    seed_jobs.create_resources(endpoint_url)
    failed = {"error_message": LEGACY}
    jobs = [
        job("alice-legacy-1", "failed", "2025-10-10T10:00:00Z", user_id=ALICE, audio_file_id="shared-id", **failed),
        job("alice-legacy-2", "failed", "2025-10-11T10:00:00Z", user_id=ALICE, audio_file_id="reused", **failed),
        # Alice's completed job re-used the audio of her second legacy job: it must survive.
        job("alice-done", "completed", "2025-10-12T10:00:00Z", user_id=ALICE, audio_file_id="reused"),
        job("alice-retries", "failed", "2025-10-12T11:00:00Z", user_id=ALICE, error_message="Exceeded maximum retries"),
        job("bob-legacy", "failed", "2025-10-10T10:00:00Z", user_id=BOB, audio_file_id="shared-id", **failed),
        job("bob-done", "completed", "2025-10-13T10:00:00Z", user_id=BOB),
    ]
    seed_jobs.write_items(client(endpoint_url, "dynamodb"), "panzoto-processing-jobs", jobs)
    seed_jobs.put_objects(
        client(endpoint_url, "s3"), BUCKET, {(AUDIO_KEY.format(**j), b"x") for j in jobs} | {("audio/shared-id", b"x")}
    )
    return {j["job_id"]: j for j in jobs}


def test_user_narrowed_cleanup_queries_the_index_and_never_scans(aws, tmp_path):
    jobs = seed_users(aws.endpoint_url)
    before = table_items(aws.endpoint_url)
    keys_before = object_keys(aws.endpoint_url)
    alice_1 = AUDIO_KEY.format(**jobs["alice-legacy-1"])
    reused = AUDIO_KEY.format(**jobs["alice-legacy-2"])
    options = {**SELECTION, "cleanup_jobs_user_ids": [ALICE, CAROL]}

    with FaultProxy(aws.endpoint_url) as proxy:
        dry, predicted = cleanup(tmp_path, proxy.url, check=True, **options)
    assert dry.returncode == 0, dry.output
    assert proxy.counts["Query"] == 2 and proxy.counts.get("Scan", 0) == 0, dict(proxy.counts)
    assert set(predicted["requests"]["by_operation"]) <= READ_OPERATIONS | {"Query"}
    assert table_items(aws.endpoint_url) == before and object_keys(aws.endpoint_url) == keys_before

    with FaultProxy(aws.endpoint_url) as proxy:
        run, report = cleanup(tmp_path, proxy.url, **options)
    assert run.returncode == 0, run.output
    # One Query per user (Carol has no jobs), not one Scan.
    assert proxy.counts["Query"] == 2 and proxy.counts.get("Scan", 0) == 0, dict(proxy.counts)
    assert report["read"]["method"] == "query" and report["read"]["index"] == "user-jobs-index"
    assert "read through user-jobs-index" in run.stdout
    assert sorted(report["job_ids"]) == ["alice-legacy-1", "alice-legacy-2"] == sorted(predicted["job_ids"])
    assert report["deleted_objects"] == [alice_1] == predicted["deleted_objects"]
    assert report["audio"]["kept_referenced"] == [reused]
    assert proxy.counts["DeleteItem"] == 2 and proxy.counts["DeleteObjects"] == 1

    assert set(table_items(aws.endpoint_url)) == set(before) - {"alice-legacy-1", "alice-legacy-2"}
    assert object_keys(aws.endpoint_url) == keys_before - {alice_1}
    assert AUDIO_KEY.format(**jobs["bob-legacy"]) in object_keys(aws.endpoint_url)

    with FaultProxy(aws.endpoint_url) as proxy:
        again, rerun = cleanup(tmp_path, proxy.url, **options)
    assert again.returncode == 0 and again.changed() == 0 and rerun["counts"]["changed"] == 0
    assert proxy.counts.get("Scan", 0) == 0


def test_a_key_template_without_user_id_falls_back_to_the_full_scan_and_keeps_other_users_audio(aws, tmp_path):
    seed_users(aws.endpoint_url)
    options = {
        **SELECTION,
        "cleanup_jobs_user_ids": [ALICE],
        "cleanup_jobs_audio_key_template": "audio/{audio_file_id}",
    }
    with FaultProxy(aws.endpoint_url) as proxy:
        run, report = cleanup(tmp_path, proxy.url, **options)
    assert run.returncode == 0, run.output
    assert proxy.counts["Scan"] >= 1 and proxy.counts.get("Query", 0) == 0, dict(proxy.counts)
    assert report["read"]["method"] == "scan" and "has no {user_id}" in report["read"]["reason"]
    assert sorted(report["job_ids"]) == ["alice-legacy-1", "alice-legacy-2"]
    # Bob's kept job uses audio/shared-id too: only a full scan can see that.
    assert "audio/shared-id" in report["audio"]["kept_referenced"]
    assert "audio/shared-id" in object_keys(aws.endpoint_url)

    # An empty user_index turns the Query off.
    with FaultProxy(aws.endpoint_url) as proxy:
        run, report = cleanup(
            tmp_path, proxy.url, check=True, cleanup_jobs_user_index="", cleanup_jobs_statuses=["failed"],
            cleanup_jobs_user_ids=[BOB],
        )  # fmt: skip
    assert run.returncode == 0, run.output
    assert report["read"] == {"method": "scan", "index": None, "reason": "user_index is empty"}
    assert proxy.counts.get("Query", 0) == 0 and report["job_ids"] == ["bob-legacy"]
