"""benchmarks/run.py, run small: it completes, measures both sides, and the module's cleanup loses nothing.

The benchmark starts its own moto server on 127.0.0.1 and its own counting
proxies; nothing here looks at a time.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

from support.playbook import REPO_ROOT

# benchmarks/run.py, for the side lists a run must report.
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import run as benchmark

JOBS = 300


def test_benchmark_runs_both_ways_and_the_module_cleanup_loses_no_referenced_audio(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--jobs", str(JOBS), "--json-out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # a bound on a hang, not a speed assertion
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["jobs"] == JOBS and set(results["sides"]) == set(benchmark.MOTO_SIDES)
    legacy = results["legacy_jobs"]
    assert legacy > 0

    # Both sides measured in the same run: request counts per operation on each.
    guide, module = results["sides"]["guide_cleanup"], results["sides"]["module_cleanup"]
    for side in (guide, module):
        assert side["requests"] == sum(side["requests_by_operation"].values()) > 0
        assert side["requests_by_operation"]["DeleteItem"] == legacy
        assert side["bytes_to_client"] > 0 and "wall_seconds" in side and "rss_growth_mib" in side
    assert guide["outcome"]["jobs_deleted"] == legacy
    assert guide["requests_by_operation"]["DeleteObject"] == guide["outcome"]["objects_deleted"] > 0
    assert results["sides"]["guide_check_jobs"]["outcome"]["items"] == JOBS
    assert results["sides"]["module_audit"]["outcome"]["items"] == JOBS

    # The module: every legacy job deleted, its audio in ceil(N / 1000) DeleteObjects, nothing a kept job needs lost.
    deleted = module["outcome"]["objects_deleted"]
    assert module["outcome"]["counts"]["changed"] == legacy
    assert deleted > 0
    assert module["requests_by_operation"]["DeleteObjects"] == math.ceil(deleted / 1000)
    assert "DeleteObject" not in module["requests_by_operation"]

    # Procedure 3: one user's failed jobs, read by both sides with a Query on the user index; the module never scans.
    guide_user, module_user = results["sides"]["guide_user_cleanup"], results["sides"]["module_user_cleanup"]
    assert module_user["outcome"]["read"]["method"] == "query"
    assert module_user["requests_by_operation"]["Query"] >= 1 and "Scan" not in module_user["requests_by_operation"]
    assert guide_user["requests_by_operation"]["Query"] >= 1
    user_deleted = module_user["outcome"]["counts"]["changed"]
    assert module_user["requests_by_operation"]["DeleteItem"] == user_deleted > 0
    assert guide_user["requests_by_operation"]["DeleteItem"] == guide_user["outcome"]["jobs_deleted"]
    # The guide's way also deletes malformed items whose status says failed; the module leaves junk alone.
    assert guide_user["outcome"]["jobs_deleted"] >= user_deleted

    after = results["after_cleanup"]
    assert after["module_cleanup"]["after_sides"] == ["module_cleanup", "module_user_cleanup"]
    assert after["module_cleanup"]["referenced_objects_missing"] == 0
    assert after["module_cleanup"]["objects_left"] == results["s3_objects"] - deleted
    assert after["module_cleanup"]["jobs_left"] == JOBS - legacy - user_deleted
    assert after["guide_cleanup"]["jobs_left"] == JOBS - legacy - guide_user["outcome"]["jobs_deleted"]
    assert "after module_cleanup" in done.stdout and "after guide_cleanup" in done.stdout


REPLAY_JOBS = 500
REPLAY_PAGE = 50  # items per Scan page for the module, so pages and segments are exercised at a tiny size


def test_replay_benchmark_measures_every_audit_side_with_the_same_results(tmp_path):
    """benchmarks/run.py --endpoint replay: each side reads every job once; requests as the paging dictates."""
    out = tmp_path / "replay.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--endpoint", "replay"]
    command += ["--jobs", str(REPLAY_JOBS), "--repeat", "1", "--audit-page-size", str(REPLAY_PAGE)]
    done = subprocess.run(
        [*command, "--json-out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # a bound on a hang, not a speed assertion
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    run = results["runs"][str(REPLAY_JOBS)]
    sides = run["sides"]
    assert set(sides) == set(benchmark.DEFAULT_REPLAY_SIDES)
    for side in sides.values():
        assert side["outcome"]["items"] == REPLAY_JOBS
        assert side["cpu_seconds"] > 0 and side["rss_peak_mib"] > 0 and side["bytes_to_client"] > 0
        assert side["requests"] == sum(side["requests_by_operation"].values())

    # The guide's way counts raw status values: exactly what the endpoint served.
    assert sides["guide_check_jobs"]["outcome"]["by_status"] == run["expected"]["by_status_raw"]
    assert sides["guide_check_jobs"]["requests_by_operation"] == {"Scan": 1}  # 500 small items fit in one 1 MB page

    # The module's counts are the same whichever way its pages are decoded and however many segments read them.
    module = sides["module_audit"]["outcome"]
    assert module["by_status"] == sides["module_audit_1seg"]["outcome"]["by_status"]
    assert module["by_status"] == sides["module_audit_botocore_parser"]["outcome"]["by_status"]
    # ... and what the generator decided the served jobs are (well-formed ones by status; malformed apart).
    assert {status: n for status, n in module["by_status"].items() if n} == run["expected"]["by_status"]
    assert module["malformed"] == sum(run["expected"]["malformed_by_reason"].values()) > 0

    # 4 segments of 125 jobs in pages of 50: 3 Scans each; 1 segment: 10 full pages. Plus one DescribeTable.
    assert sides["module_audit"]["requests_by_operation"] == {"DescribeTable": 1, "Scan": 12}
    assert sides["module_audit_botocore_parser"]["requests_by_operation"] == {"DescribeTable": 1, "Scan": 12}
    assert sides["module_audit_1seg"]["requests_by_operation"] == {"DescribeTable": 1, "Scan": 10}
    # The module's own request count (botocore's before-send) agrees with what the endpoint answered.
    assert module["requests"]["http_requests"] == sides["module_audit"]["requests"] == 13
    assert module["requests"]["pages"] == 12
    assert "module_audit / guide_check_jobs: client CPU" in done.stdout


WRITES_JOBS, WRITES_GUIDE_JOBS, WRITES_MEMORY_JOBS = 700, 300, 400


def test_writes_benchmark_runs_every_side_against_the_latency_stand_in(tmp_path):
    """benchmarks/cleanup_writes.py: each side deletes every legacy job of its table; transactions of 100."""
    out = tmp_path / "writes.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "cleanup_writes.py"), "--rounds", "1"]
    command += ["--jobs", str(WRITES_JOBS), "--guide-jobs", str(WRITES_GUIDE_JOBS)]
    command += ["--memory-jobs", str(WRITES_MEMORY_JOBS), "--json-out", str(out)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    sides, legacy = results["sides"], results["tables"]
    assert legacy[str(WRITES_JOBS)] > 100 and legacy[str(WRITES_GUIDE_JOBS)] > 0
    assert sides["guide_cleanup"]["deleted"] == legacy[str(WRITES_GUIDE_JOBS)]
    per_job, batched = sides["module_per_job"], sides["module_batched"]
    assert per_job["deleted"] == batched["deleted"] == legacy[str(WRITES_JOBS)]
    assert per_job["outcome"]["writes"]["transactions"] == 0
    assert batched["outcome"]["writes"]["transactions"] == math.ceil(batched["deleted"] / 100)
    for name in ("guide_cleanup", "module_per_job", "module_batched", "archive_only_chunk_100"):
        assert sides[name]["cpu_us_per_job"] > 0 and sides[name]["jobs_per_second"] > 0 and sides[name]["load_1min"]
    assert sides["archive_only_chunk_100"]["deleted"] == WRITES_JOBS
    memory = results["memory"]
    assert memory["selected"] == memory["deleted"] == WRITES_MEMORY_JOBS and memory["result_bytes"] > 0
    assert "module_batched" in done.stdout and "B per selected job" in done.stdout
