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

JOBS = 300
SIDES = (
    "guide_check_jobs",
    "module_audit",
    "module_audit_1seg",
    "guide_cleanup",
    "module_cleanup",
    "guide_user_cleanup",
    "module_user_cleanup",
)


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
    assert results["jobs"] == JOBS and set(results["sides"]) == set(SIDES)
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
