#!/usr/bin/env python3
"""The cleanup's writes at AWS-like latencies: the guide's way, one request per job, transactions.

    .venv/bin/python benchmarks/run.py --endpoint standin                     # what `make bench BENCH_ARGS=...` runs
    .venv/bin/python benchmarks/cleanup_writes.py --jobs 13000 --guide-jobs 3200 --rounds 3 --memory-jobs 100000

Each side runs in a fresh process against benchmarks/standin.py (DynamoDB 8 ms, S3 30 ms, DeleteObjects
500 ms per request; reads from tests/harness/replay_endpoint.py's generated table, writes answered as AWS answers
when every condition holds), selecting the legacy_encryption jobs with their audio, as the guide's
smart_cleanup option 1 does:

    guide_cleanup          the guide's script: scan everything, delete_item per job, delete_object per file
    module_per_job         processing_jobs_cleanup, write_batch_size 1 (one conditional DeleteItem per job)
    module_batched         processing_jobs_cleanup, write_batch_size 100 (TransactWriteItems)

Sides alternate round by round and each figure is the median of its rounds, with the 1-minute load
average taken before each run beside it (this machine is shared). The guide's way runs on a smaller
table (--guide-jobs): one request per job and per object, one at a time, makes it take minutes.
The archive's cost is measured apart (`archive_only`: the module's own ArchiveWriter appending the
same records, in the module's chunks), and the memory per selected job with --memory-jobs (every job
of a table that size selected: wipe_all). Client CPU is the side's process only. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tests" / "harness"))
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (benchmarks/run.py: the side harness)

SIDES = ("guide_cleanup", "module_per_job", "module_batched")
BATCH = 100


def module_cleanup(endpoint: str, args: dict[str, Any]) -> dict[str, Any]:
    """processing_jobs_cleanup in this process; the result's size is kept (it must not grow with the jobs)."""
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as archive_dir:
        selection = (
            {"wipe_all": True, "confirm": args["table"]}
            if args.get("wipe_all")
            else {"categories": ["legacy_encryption"]}
        )
        result = bench.run_ansible_module(
            "processing_jobs_cleanup",
            {
                "table": args["table"],
                "bucket": args["bucket"],
                "endpoint_url": endpoint,
                "now": bench.NOW,
                **selection,
                "delete_audio": True,
                "max_changes": 10_000_000,
                "write_batch_size": args["write_batch_size"],
                "archive_path": str(Path(archive_dir) / "archive.jsonl"),
                "lock_dir": str(Path(archive_dir) / "locks"),
            },
        )
        archive_bytes = (Path(archive_dir) / "archive.jsonl").stat().st_size
    audio = result.get("audio", {})
    return {
        "deleted": result["counts"]["changed"],
        "selected": result.get("selected"),
        "objects_deleted": result.get("deleted_objects_count", 0),
        "writes": result.get("writes"),
        "result_bytes": len(json.dumps(result)),
        "archive_bytes": archive_bytes,
        "delete_requests": audio.get("delete_requests"),
    }


def guide_cleanup(endpoint: str, args: dict[str, Any]) -> dict[str, Any]:
    done = bench.side_guide_cleanup(endpoint, args)
    return {"deleted": done["jobs_deleted"], "objects_deleted": done["objects_deleted"]}


def archive_only(endpoint: str, args: dict[str, Any]) -> dict[str, Any]:
    """The module's archive alone: every selected job's record appended and fsynced, chunk by chunk, as a run does."""
    del endpoint
    import ansible.module_utils

    ansible.module_utils.__path__.append(str(REPO / "module_utils"))
    from ansible.module_utils.panzoto.cleanup.archive import ArchiveWriter, RecordHeader, item_to_json
    from boto3.dynamodb.types import TypeDeserializer
    from replay_endpoint import ReplayTable

    table = ReplayTable(args["table"], args["jobs"])
    deserialize = TypeDeserializer().deserialize
    templates = [{name: deserialize(value) for name, value in t.wire.items()} for t in table.templates]
    items = [templates[index % len(templates)] for index in range(args["jobs"])]
    header = RecordHeader("bench-run", args["table"], "absent")
    started = time.process_time()
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as archive_dir:
        archive = ArchiveWriter(Path(archive_dir) / "archive.jsonl").open()
        for start in range(0, len(items), args["chunk"]):
            chunk = items[start : start + args["chunk"]]
            archive.append(header.record("job", job_id=str(n), item=item_to_json(i)) for n, i in enumerate(chunk))
            archive.append(header.record("result", job_id=str(n), outcome="deleted") for n, _ in enumerate(chunk))
        archive.close()
    return {"deleted": len(items), "records_cpu_seconds": time.process_time() - started}


SIDE_FUNCTIONS = {
    "guide_cleanup": guide_cleanup,
    "module_per_job": module_cleanup,
    "module_batched": module_cleanup,
    "archive_only": archive_only,
}


class Process:
    """A helper process printing one JSON line when it listens; stopped on exit."""

    def __init__(self, command: list[str]) -> None:
        self.command, self.process, self.info = command, None, {}

    def __enter__(self) -> Process:
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.process.stdout.readline())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def run_side(name: str, endpoint: str, args: dict[str, Any]) -> dict[str, Any]:
    load = os.getloadavg()[0]
    command = [sys.executable, __file__, "_side", name, endpoint, json.dumps(args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"side {name} failed:\n{done.stderr[-4000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    measured["load_1min"] = load
    return measured


def side_here(name: str, endpoint: str, args: dict[str, Any]) -> dict[str, Any]:
    bench.SIDES[name] = SIDE_FUNCTIONS[name]
    bench.warm_up("module_" if name.startswith(("module", "archive")) else name)
    return bench.run_side_here(name, endpoint, args)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    deleted = runs[0]["outcome"]["deleted"]
    cpu = statistics.median(run["cpu_seconds"] for run in runs)
    wall = statistics.median(run["wall_seconds"] for run in runs)
    return {
        "deleted": deleted,
        "rounds": len(runs),
        "cpu_us_per_job": cpu / deleted * 1e6 if deleted else None,
        "jobs_per_second": deleted / wall if wall else None,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "rss_growth_mib": statistics.median(run["rss_growth_mib"] for run in runs),
        "load_1min": [round(run["load_1min"], 1) for run in runs],
        "outcome": runs[-1]["outcome"],
    }


def measure(
    jobs: int,
    guide_jobs: int,
    rounds: int,
    memory_jobs: int,
    latencies: dict[str, float],
    sides: tuple[str, ...] = (*SIDES, "archive_only"),
) -> dict:
    results: dict[str, Any] = {"latencies_ms": latencies, "rounds": rounds, "sides": {}}
    standin_flags = [f"--{name.replace('_', '-')}" for name in latencies]
    flags = [part for name, value in zip(standin_flags, latencies.values(), strict=True) for part in (name, str(value))]

    def endpoint(size: int):
        replay = bench.ReplayEndpoint(size)
        return replay, [sys.executable, str(HERE / "standin.py"), *flags]

    runs: dict[str, list] = {name: [] for name in SIDES if name in sides}
    for size, names in ((jobs, SIDES[1:]), (guide_jobs, SIDES[:1])):
        names = tuple(name for name in names if name in sides)
        if not names:
            continue
        replay, command = endpoint(size)
        with replay, Process([*command, "--reads", replay.url]) as standin:
            table = replay.info["table"]
            results.setdefault("tables", {})[str(size)] = replay.info["expected"]["by_category"]["legacy_encryption"]
            for round_number in range(rounds):
                for name in names if round_number % 2 == 0 else tuple(reversed(names)):
                    print(f"round {round_number + 1}: {name} on {size:,} jobs ...", flush=True)
                    batch = BATCH if name == "module_batched" else 1
                    args = {"table": table, "bucket": "panzoto", "write_batch_size": batch}
                    runs[name].append(run_side(name, standin.info["endpoint_url"], args))
    results["sides"] = {name: summarize(side_runs) for name, side_runs in runs.items()}
    for chunk, label in ((100, "archive_only_chunk_100"), (BATCH * 8, "archive_only_chunk_800")):
        if "archive_only" not in sides:
            break
        archive_runs = [
            run_side("archive_only", "", {"table": "t", "jobs": jobs, "chunk": chunk}) for _ in range(rounds)
        ]
        results["sides"][label] = summarize(archive_runs)
    if memory_jobs:
        replay, command = endpoint(memory_jobs)
        with replay, Process([*command, "--reads", replay.url]) as standin:
            print(f"memory: module_batched selecting all {memory_jobs:,} jobs ...", flush=True)
            args = {"table": replay.info["table"], "bucket": "panzoto", "write_batch_size": BATCH, "wipe_all": True}
            memory_run = run_side("module_batched", standin.info["endpoint_url"], args)
        outcome = memory_run["outcome"]
        results["memory"] = {
            "selected": outcome["selected"],
            "deleted": outcome["deleted"],
            "rss_growth_mib": memory_run["rss_growth_mib"],
            "bytes_per_selected_job": memory_run["rss_growth_mib"] * 2**20 / max(outcome["selected"] or 1, 1),
            "result_bytes": outcome["result_bytes"],
            "cpu_us_per_job": memory_run["cpu_seconds"] / max(outcome["deleted"], 1) * 1e6,
            "jobs_per_second": outcome["deleted"] / memory_run["wall_seconds"],
            "load_1min": round(memory_run["load_1min"], 1),
        }
    return results


def render(results: dict[str, Any]) -> str:
    lat = results["latencies_ms"]
    lines = [
        f"latencies: DynamoDB {lat['dynamodb_ms']:g} ms, S3 {lat['s3_ms']:g} ms, DeleteObjects "
        f"{lat['delete_objects_ms']:g} ms; medians of {results['rounds']} alternating rounds",
        f"{'side':<24}{'jobs':>8}{'CPU us/job':>12}{'jobs/s':>10}{'wall s':>9}{'RSS growth MiB':>16}  load (1 min)",
    ]
    for name, row in results["sides"].items():
        lines.append(
            f"{name:<24}{row['deleted']:>8,}{row['cpu_us_per_job']:>12,.0f}{row['jobs_per_second']:>10,.0f}"
            f"{row['wall_seconds']:>9.2f}{row['rss_growth_mib']:>16.1f}  {row['load_1min']}"
        )
    memory = results.get("memory")
    if memory:
        lines.append(
            f"memory: {memory['selected']:,} selected, RSS growth {memory['rss_growth_mib']:.1f} MiB = "
            f"{memory['bytes_per_selected_job']:,.0f} B per selected job; result {memory['result_bytes']:,} bytes; "
            f"{memory['cpu_us_per_job']:,.0f} us CPU per job, {memory['jobs_per_second']:,.0f} jobs/s "
            f"(load {memory['load_1min']})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_side":
        _, name, endpoint, raw = argv
        print(json.dumps(side_here(name, endpoint, json.loads(raw))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=13_000, help="table for the modules (about 15%% legacy)")
    parser.add_argument("--guide-jobs", type=int, default=3_200, help="table for the guide's way")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--memory-jobs", type=int, default=0, help="also measure memory with every job of a table this big selected"
    )
    parser.add_argument("--dynamodb-ms", type=float, default=8.0)
    parser.add_argument("--s3-ms", type=float, default=30.0)
    parser.add_argument("--delete-objects-ms", type=float, default=500.0)
    parser.add_argument(
        "--sides",
        default=",".join((*SIDES, "archive_only")),
        help="comma-separated sides to run (the memory run is --memory-jobs)",
    )
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    sides = tuple(args.sides.split(",")) if args.sides else ()
    unknown = set(sides) - {*SIDES, "archive_only"}
    if unknown:
        parser.error(f"unknown sides: {', '.join(sorted(unknown))}")
    if args.jobs < 100 or args.guide_jobs < 100 or args.rounds < 1 or args.memory_jobs < 0:
        parser.error("--jobs and --guide-jobs 100 or more, --rounds 1 or more, --memory-jobs 0 or more")
    import local_aws

    os.environ.update(local_aws.FAKE_CREDENTIALS)
    latencies = {"dynamodb_ms": args.dynamodb_ms, "s3_ms": args.s3_ms, "delete_objects_ms": args.delete_objects_ms}
    results = measure(args.jobs, args.guide_jobs, args.rounds, args.memory_jobs, latencies, sides)
    print()
    print(render(results))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
