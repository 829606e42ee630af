"""One cleanup per table across control nodes: the lease in the lock table, through ansible-playbook against moto.

Two control nodes are two `ansible-playbook` processes with their own HOME (so their file locks never
meet) reaching the same moto through different endpoint spellings (a proxy on 127.0.0.1 and
`http://localhost:PORT/`). Only the lease, keyed by the table's ARN, can stop the second.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import seed_jobs
from cleanup_module import run_cleanup_module
from support.playbook import PlaybookRun, run_playbook
from test_cleanup_playbook import AUDIO_KEY, BUCKET, GUIDE_NOW, TABLE, client, job, object_keys, put_jobs, table_items
from test_cleanup_safety import BeforeFirstDelete

LOCK_TABLE = "panzoto-ops-locks"
LEGACY = "Automatic decryption not yet implemented"
PROCEDURE_1 = {"cleanup_jobs_categories": ["legacy_encryption"], "cleanup_jobs_delete_audio": True}


def control_node(home: Path, endpoint_url: str, check: bool = False) -> PlaybookRun:
    """ansible-playbook as run from another control node: its own HOME, archive and report, its endpoint spelling."""
    home.mkdir(parents=True, exist_ok=True)
    extra = {
        "cleanup_jobs_now": GUIDE_NOW,
        "cleanup_jobs_archive_path": str(home / "archive.jsonl"),
        "cleanup_jobs_report_path": str(home / "report.json"),
        **PROCEDURE_1,
    }
    env = {"HOME": str(home), "AWS_ENDPOINT_URL": endpoint_url}
    return run_playbook("cleanup_jobs.yml", extra_vars=extra, check=check, env=env, timeout=300)


def seed(endpoint_url: str) -> list[dict]:
    jobs = [
        job(f"legacy-{n}", "failed", "2025-10-10T10:00:00Z", error_message=LEGACY, user_id=f"user-{n % 2}")
        for n in range(6)
    ]
    # A kept job sharing legacy-0's audio: that object must stay.
    jobs.append(job("kept", "completed", "2025-10-10T10:00:00Z", user_id="user-0", audio_file_id="audio-legacy-0"))
    seed_jobs.create_resources(endpoint_url)
    put_jobs(endpoint_url, jobs)
    keys = {AUDIO_KEY.format(**item) for item in jobs}
    seed_jobs.put_objects(client(endpoint_url, "s3"), BUCKET, {(key, b"x") for key in keys})
    return jobs


def lease_items(endpoint_url: str) -> list[dict]:
    return client(endpoint_url, "dynamodb").scan(TableName=LOCK_TABLE, ConsistentRead=True)["Items"]


def test_two_control_nodes_never_clean_one_table_at_once(aws, tmp_path):
    jobs = seed(aws.endpoint_url)
    port = aws.endpoint_url.rsplit(":", 1)[1].strip("/")
    other_spelling = f"http://localhost:{port}/"
    second: dict[str, PlaybookRun] = {}

    def second_node_runs() -> None:  # while the first holds the lease, between its selection and its first delete
        second["dry"] = control_node(tmp_path / "home-b", other_spelling, check=True)
        second["real"] = control_node(tmp_path / "home-b", other_spelling)

    with BeforeFirstDelete(aws.endpoint_url, second_node_runs) as proxy:
        first = control_node(tmp_path / "home-a", proxy.url)

    assert first.returncode == 0, first.output[-3000:]
    for mode in ("dry", "real"):
        run = second[mode]
        assert run.returncode != 0, run.output[-3000:]
        lines = [line for line in run.output.splitlines() if "Another cleanup run holds the lease" in line]
        assert lines, run.output[-3000:]
        assert "lease until 20" in lines[0] and ", pid " in lines[0] and "host " in lines[0], lines[0]
        assert f"table {TABLE}" in lines[0] and "nothing was changed" in lines[0]
    assert not (tmp_path / "home-b" / "archive.jsonl").exists()

    # The first node did the whole cleanup; no audio is left without a job, none a kept job uses is gone.
    assert sorted(table_items(aws.endpoint_url)) == ["kept"]
    assert object_keys(aws.endpoint_url) == {AUDIO_KEY.format(**jobs[-1])}
    # Released at the end: the item stays, with who held it last and an expiry of 0.
    (lease,) = lease_items(aws.endpoint_url)
    assert lease["lease_until"] == {"N": "0"} and "released_at" in lease
    assert lease["lock_id"]["S"].endswith(f":table/{TABLE}")
    again = control_node(tmp_path / "home-b", other_spelling)
    assert again.returncode == 0, again.output[-3000:]


def test_a_live_lease_is_refused_and_an_expired_one_taken_over(aws, tmp_path):
    seed(aws.endpoint_url)
    before = table_items(aws.endpoint_url)
    dynamodb = client(aws.endpoint_url, "dynamodb")
    arn = dynamodb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    # Every run, even a refused one, made sure the lock table exists; this one creates it.
    first = run_cleanup_module(aws.endpoint_url, tmp_path, categories=["legacy_encryption"], job_ids=["legacy-1"])
    assert first["counts"]["changed"] == 1, first

    def lease_of(until: datetime) -> None:
        dynamodb.put_item(
            TableName=LOCK_TABLE,
            Item={
                "lock_id": {"S": arn},
                "host": {"S": "ops-2.example.invalid"},
                "pid": {"N": "4242"},
                "run_id": {"S": "run-of-ops-2"},
                "record_version": {"S": "v1"},
                "lease_until": {"N": str(int(until.timestamp()))},
            },
        )

    lease_of(datetime.now(UTC) + timedelta(minutes=5))
    for check_mode in (True, False):
        refused = run_cleanup_module(
            aws.endpoint_url, tmp_path, check_mode=check_mode, categories=["legacy_encryption"]
        )
        assert refused.get("failed") and "\n" not in refused["msg"], refused
        assert "host ops-2.example.invalid, pid 4242, run run-of-ops-2, lease until 20" in refused["msg"]
    del before["legacy-1"]
    assert table_items(aws.endpoint_url) == before

    lease_of(datetime.now(UTC) - timedelta(seconds=1))  # that run crashed a while ago
    done = run_cleanup_module(aws.endpoint_url, tmp_path, categories=["legacy_encryption"])
    assert not done.get("failed"), done["msg"]
    assert done["counts"]["changed"] == 5 and sorted(table_items(aws.endpoint_url)) == ["kept"]
    (lease,) = lease_items(aws.endpoint_url)
    assert lease["run_id"]["S"] == done["archive"]["run_id"] and lease["lease_until"] == {"N": "0"}


def test_a_run_that_outlives_its_lease_duration_keeps_it_by_heartbeat(aws, tmp_path):
    import processing_jobs_cleanup  # noqa: F401  (puts module_utils in place)
    from ansible.module_utils.panzoto.cleanup.lease import Lease, LeaseHeld

    seed_jobs.create_resources(aws.endpoint_url)
    dynamodb = client(aws.endpoint_url, "dynamodb")
    arn = dynamodb.describe_table(TableName=TABLE)["Table"]["TableArn"]
    holder = Lease(dynamodb, LOCK_TABLE, arn, "table t", 3, "run-1").acquire()
    try:
        stop = threading.Event()
        stop.wait(4.5)  # longer than the 3 s lease: only the heartbeat keeps it
        contender = Lease(dynamodb, LOCK_TABLE, arn, "table t", 3, "run-2", host="other-host")
        with pytest.raises(LeaseHeld, match="run run-1"):
            contender.acquire()
    finally:
        assert holder.release() is None
    Lease(dynamodb, LOCK_TABLE, arn, "table t", 3, "run-3", host="other-host").acquire().release()
