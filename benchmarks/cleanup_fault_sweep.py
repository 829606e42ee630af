#!/usr/bin/env python3
"""Fail a cleanup at every one of its HTTP requests, then rerun it: nothing may be lost (SQLite-style).

    .venv/bin/python benchmarks/cleanup_fault_sweep.py                    # 300 jobs, both kinds
    .venv/bin/python benchmarks/cleanup_fault_sweep.py --jobs 600 --kinds kill
    .venv/bin/python benchmarks/cleanup_fault_sweep.py --jobs 300 --only 17,42 --json-out reports/sweep.json
    .venv/bin/python benchmarks/cleanup_fault_sweep.py --write-batch-size 8  # the deletes as transactions

One uninterrupted run of library/processing_jobs_cleanup.py (failed jobs older than 7 days, their
audio deleted and archived, the archive also copied to S3) through tests/harness/fault_proxy.py counts its
HTTP requests: N. Then, for every k from 1 to N and every kind of failure:

    die    the endpoint dies at request k: the proxy drops it unanswered and stops listening
    kill   request k reaches moto, then the module process gets SIGKILL before it sees the answer

the same data is seeded again (moto's /moto-api/reset, then the seed), the run is failed at k, and
the same run is repeated against the healthy endpoint until it succeeds. After each, the table and
the bucket must equal what the uninterrupted run left, the archive (the file and its S3 copy) must
hold every deleted job exactly (type for type), and every audio object a kept job references must
still be there.

The seed is built for this: audio objects shared by several users' jobs (the key template has no
user id), some shared between a deleted and a kept job, objects nobody references, malformed items,
and attributes of every DynamoDB type (string, number and binary sets, binary, nested maps and lists,
38-digit numbers, null, booleans). The module runs as Ansible runs it: a fresh Python process reading
its arguments file. It starts its own moto server on 127.0.0.1 unless given --endpoint.
Prints N, the time of the sweep per kind, and every k that lost something (exit 1 if any).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hashlib
import json
import os
import random
import runpy
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tools"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "harness"))

import local_aws  # noqa: E402
from fault_proxy import FaultPlan, FaultProxy  # noqa: E402

MODULE = REPO_ROOT / "library" / "processing_jobs_cleanup.py"
KINDS = ("die", "kill")
TABLE = "sweep-jobs"
BUCKET = "sweep-audio"
NOW = datetime(2025, 10, 19, 18, 0, 0, tzinfo=UTC)
OLDER_THAN = timedelta(days=7)
AUDIO_TEMPLATE = "audio/{audio_file_id}.3gp_encrypted"  # no user id: one object can serve several users
AUDIO_ARCHIVE = "archive/audio/"
S3_ARCHIVE = "ops-archive/"  # run ids make its keys differ per run: compared by content, not by key
MESSAGES = (
    "Automatic decryption not yet implemented - requires manual trigger",
    "Exceeded maximum retries (3)",
    "Transcription failed: invalid audio format",
    "Decryption failed: bad key",
)
BIG = "12345678901234567890123456789012345678"  # 38 digits, DynamoDB's whole precision
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


# --------------------------------------------------------------------------- the seed


@dataclass
class Seed:
    items: list[dict[str, Any]]  # low-level DynamoDB items
    objects: dict[str, bytes]  # S3 key -> body
    deleted: set[str]  # job ids the selection deletes, by construction

    def audio_key(self, item: dict[str, Any]) -> str | None:
        audio = item.get("audio_file_id", {}).get("S")
        return AUDIO_TEMPLATE.format(audio_file_id=audio) if audio else None

    def expected_table(self) -> dict[str, dict]:
        return {canon_id(item): canon(item) for item in self.items if canon_id(item) not in self.deleted}

    def expected_bucket(self) -> dict[str, str]:
        """key -> md5 after the cleanup: deleted jobs' audio gone unless a kept job needs it, and archived."""
        kept_refs = {self.audio_key(item) for item in self.items if canon_id(item) not in self.deleted}
        gone = {
            self.audio_key(item) for item in self.items if canon_id(item) in self.deleted and self.audio_key(item)
        } - kept_refs
        gone &= set(self.objects)  # a job whose audio never existed deletes nothing
        bucket = {key: md5(body) for key, body in self.objects.items() if key not in gone}
        bucket.update({AUDIO_ARCHIVE + key: md5(self.objects[key]) for key in gone})
        return bucket


def md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def build_seed(jobs: int, seed: int = 0) -> Seed:
    """`jobs` items: about half failed, half of those older than 7 days; audio shared across users."""
    rng = random.Random(seed)
    users = [f"user-{index:02d}" for index in range(max(3, jobs // 25))]
    pool = [f"audio-{index:04d}" for index in range(max(2, jobs * 3 // 5))]
    items: list[dict[str, Any]] = []
    deleted: set[str] = set()
    referenced: set[str] = set()
    for index in range(jobs):
        job_id = f"job-{index:05d}"
        if index % 40 == 39:  # malformed: no status; only job_ids alone or wipe_all select it
            items.append({"job_id": {"S": job_id}, "payload": {"B": rng.randbytes(9)}})
            continue
        status = rng.choice(("failed", "failed", "completed", "pending"))
        age = timedelta(days=rng.uniform(0, 30))
        if status == "pending":
            age = timedelta(minutes=rng.uniform(1, 30))  # fresh, never stuck
        audio = rng.choice(pool)
        referenced.add(audio)
        item = {
            "job_id": {"S": job_id},
            "user_id": {"S": rng.choice(users)},
            "job_type": {"S": rng.choice(("transcription", "daily_summary"))},
            "status": {"S": status},
            "audio_file_id": {"S": audio},
            "created_at": {"S": (NOW - age).isoformat()},
            "retry_count": {"N": str(rng.randint(0, 3))},
            "tags": {"SS": rng.sample(["a", "b", "c", "d", "é", "x y"], 3)},
            "scores": {"NS": [BIG, "-0.000001", str(rng.randint(1, 9))]},
            "checksum": {"B": rng.randbytes(16)},
            "chunks": {"BS": [bytes([1, 2, rng.randint(3, 250)]), b"\x00\xff", rng.randbytes(5)]},
            "meta": {
                "M": {
                    "duration": {"N": f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"},
                    "nested": {"M": {"big": {"N": "-" + BIG}, "list": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}]}}},
                    "flags": {"L": [{"BOOL": True}, {"BOOL": False}, {"SS": ["only"]}]},
                }
            },
            "note": {"NULL": True},
        }
        if status == "failed":
            item["error_message"] = {"S": rng.choice(MESSAGES)}
            if age > OLDER_THAN:
                deleted.add(job_id)
        elif status == "completed":
            item["completed_at"] = {"S": (NOW - age + timedelta(minutes=3)).isoformat()}
        items.append(item)
    keys = {AUDIO_TEMPLATE.format(audio_file_id=audio) for audio in referenced}
    keys -= {AUDIO_TEMPLATE.format(audio_file_id=pool[0])}  # a referenced object that is already gone
    keys |= {"audio/orphan-1.3gp_encrypted", "audio/orphan-2.3gp_encrypted"}  # nobody references these
    objects = {key: rng.randbytes(rng.randint(1, 200)) for key in sorted(keys)}
    return Seed(items, objects, deleted)


def canon(value: Any) -> Any:
    """A low-level item (or value) with sets order-free and binary as bytes, for exact comparison."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((kind, inner),) = value.items()
            if kind in ("SS", "NS"):
                return {kind: tuple(sorted(inner))}
            if kind == "BS":
                return {kind: tuple(sorted(bytes(part) for part in inner))}
            if kind == "B":
                return {kind: bytes(inner)}
        return {name: canon(part) for name, part in value.items()}
    if isinstance(value, list):
        return [canon(part) for part in value]
    return value


def canon_id(item: dict[str, Any]) -> str:
    return item["job_id"]["S"]


def from_archive_json(value: Any) -> Any:
    """An archived item (DynamoDB JSON, binary as base64) back to low-level form, decoded here independently."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((kind, inner),) = value.items()
            if kind == "B":
                return {"B": base64.b64decode(inner)}
            if kind == "BS":
                return {"BS": [base64.b64decode(part) for part in inner]}
            if kind in ("M", "L"):
                return {kind: from_archive_json(inner)}
            if kind in ("S", "N", "SS", "NS", "NULL", "BOOL"):
                return value
        return {name: from_archive_json(part) for name, part in value.items()}
    if isinstance(value, list):
        return [from_archive_json(part) for part in value]
    return value


# --------------------------------------------------------------------------- the endpoint


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", config=CLIENT_CONFIG)


def load(endpoint: str, seed: Seed) -> None:
    """An endpoint holding exactly the seed: moto wiped, table, bucket, items and objects written directly."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=30).close()
    dynamodb, s3 = client(endpoint, "dynamodb"), client(endpoint, "s3")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "job_id", "AttributeType": "S"},
            {"AttributeName": "user_id", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "user-jobs-index",
                "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.create_bucket(Bucket=BUCKET)
    for start in range(0, len(seed.items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in seed.items[start : start + 25]]
        pending = {TABLE: batch}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda pair: s3.put_object(Bucket=BUCKET, Key=pair[0], Body=pair[1]), seed.objects.items()))


@dataclass
class State:
    table: dict[str, dict]
    bucket: dict[str, str]  # key -> md5, the S3 archive prefix left out
    s3_archive: list[dict]  # records of every archive object in S3


def read_state(endpoint: str) -> State:
    dynamodb, s3 = client(endpoint, "dynamodb"), client(endpoint, "s3")
    table = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True):
        table.update({canon_id(item): canon(item) for item in page["Items"]})
    bucket, archive_keys = {}, []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for entry in page.get("Contents", []):
            if entry["Key"].startswith(S3_ARCHIVE):
                archive_keys.append(entry["Key"])
            else:
                bucket[entry["Key"]] = entry["ETag"].strip('"')  # simple puts and copies: the body's md5
    records = []
    for key in archive_keys:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8")
        records.extend(json.loads(line) for line in body.splitlines() if line.strip())
    return State(table, bucket, records)


# --------------------------------------------------------------------------- the module


def documented_options() -> set[str]:
    """The module's documented options, its AWS doc fragments' included (read once, from the files)."""
    import yaml
    from ansible.utils.plugin_docs import read_docstring

    options = set(read_docstring(str(MODULE))["doc"].get("options") or {})
    for fragment in (REPO_ROOT / "plugins" / "doc_fragments").glob("*.py"):
        namespace: dict[str, Any] = {}
        exec(compile(fragment.read_text(), str(fragment), "exec"), namespace)  # a class holding YAML, nothing else
        for name, value in vars(namespace["ModuleDocFragment"]).items():
            if name.isupper() and isinstance(value, str):
                options |= set((yaml.safe_load(value) or {}).get("options") or {})
    return options


@functools.cache
def takes_max_attempts() -> bool:
    # One attempt per request makes a dead endpoint fail the run at once instead of after botocore's
    # backoff; should the option go (amazon.aws's modules have none), the sweep is only slower.
    return "max_attempts" in documented_options()


def module_args(endpoint: str, archive: Path, max_attempts: int, write_batch_size: int = 1) -> dict[str, Any]:
    attempts = {"max_attempts": max_attempts} if takes_max_attempts() else {}
    # moto applies a transaction on a copy of the whole table, so two at once break each other
    # (DynamoDB isolates them): batched runs send one transaction at a time.
    batched = {"write_batch_size": write_batch_size, "parallel": 1} if write_batch_size > 1 else {}
    return {
        "table": TABLE,
        "bucket": BUCKET,
        "statuses": ["failed"],
        "older_than": "7d",
        "now": NOW.isoformat().replace("+00:00", "Z"),
        "delete_audio": True,
        "audio_key_template": AUDIO_TEMPLATE,
        "archive_audio_prefix": AUDIO_ARCHIVE,
        "archive_path": str(archive),
        "archive_s3_prefix": S3_ARCHIVE,
        "max_changes": 100_000,
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key": "testing",
        "secret_key": "testing",
        **attempts,
        **batched,
        "_ansible_check_mode": False,
        "_ansible_no_log": False,
    }


@dataclass
class ModuleRun:
    returncode: int  # -9 when SIGKILLed
    result: dict[str, Any] | None
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.result) and not self.result.get("failed")


def serve_module_runs() -> None:
    """The process that runs the module, one forked child per run (`--serve-module-runs`).

    Each child runs library/processing_jobs_cleanup.py as Ansible does, as `__main__` in its own
    process with its arguments file as argv[1], but starts from this process's already imported
    Python, boto3 and ansible (about a second per run on a busy 2-core machine, twice per fault
    point). Nothing of the module is run here before the fork: the children get a fresh module.
    Protocol, one JSON line each way: {"args", "cwd", "out", "err"} -> {"pid"}, then {"exit"}.
    """
    import ansible.module_utils
    import ansible.module_utils.basic  # imported here once, for every child

    ansible.module_utils.__path__.append(str(REPO_ROOT / "module_utils"))
    sys.path.insert(0, str(MODULE.parent))
    __import__(MODULE.stem)  # its imports (boto3, module_utils) are then loaded for every child
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            run_forked(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


def run_forked(request: dict[str, str]) -> None:
    code = 1
    try:
        os.chdir(request["cwd"])
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for fd, path in ((1, request["out"]), (2, request["err"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        sys.argv = [str(MODULE), request["args"]]
        runpy.run_path(str(MODULE), run_name="__main__")
        code = 0
    except SystemExit as exc:  # exit_json / fail_json
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # whatever the module raised: report it as a crash
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class ModuleRunner:
    """Runs the module in fresh processes (forked from a warm one); a context manager."""

    def __enter__(self) -> ModuleRunner:
        self.server = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-module-runs"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)

    def _answer(self) -> dict[str, int]:
        line = self.server.stdout.readline()
        if not line:  # say how it ended (a signal is negative), rather than fail to parse nothing
            raise RuntimeError(f"the module server ended with status {self.server.wait(timeout=60)} mid-run")
        return json.loads(line)

    def run(self, args: dict[str, Any], workdir: Path, on_start: Callable[[int], None] | None = None) -> ModuleRun:
        args_file, out, err = workdir / "args.json", workdir / "module.out", workdir / "module.err"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        request = {"args": str(args_file), "cwd": str(workdir), "out": str(out), "err": str(err)}
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        pid = self._answer()["pid"]
        if on_start:
            on_start(pid)
        returncode = self._answer()["exit"]
        try:
            result = json.loads(out.read_text())
        except ValueError:
            result = None
        return ModuleRun(returncode, result, err.read_text())


# --------------------------------------------------------------------------- one fault point


def archived_items(records: list[dict]) -> dict[str, list[dict]]:
    """job_id -> every item the records hold for it (as selected, and as DynamoDB deleted it)."""
    items: dict[str, list[dict]] = {}
    for record in records:
        if record.get("record") in ("job", "result") and "item" in record:
            items.setdefault(record["job_id"], []).append(canon(from_archive_json(record["item"])))
    return items


def read_archive_file(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def lost(seed: Seed, original: dict[str, dict], state: State, archive: Path) -> list[str]:
    """What differs from an uninterrupted run, in words; empty when nothing was lost."""
    problems = []
    expected_table = seed.expected_table()
    if state.table != expected_table:
        missing = sorted(set(expected_table) - set(state.table))
        extra = sorted(set(state.table) - set(expected_table))
        changed = sorted(
            job for job in set(state.table) & set(expected_table) if state.table[job] != expected_table[job]
        )
        problems.append(f"table differs: missing {missing[:5]}, not deleted {extra[:5]}, modified {changed[:5]}")
    expected_bucket = seed.expected_bucket()
    if state.bucket != expected_bucket:
        missing = sorted(set(expected_bucket) - set(state.bucket))
        extra = sorted(set(state.bucket) - set(expected_bucket))
        changed = sorted(
            key for key in set(state.bucket) & set(expected_bucket) if state.bucket[key] != expected_bucket[key]
        )
        problems.append(f"bucket differs: missing {missing[:5]}, left {extra[:5]}, other content {changed[:5]}")
    for where, records in (("archive file", read_archive_file(archive)), ("S3 archive", state.s3_archive)):
        held = archived_items(records)
        unarchived = sorted(job for job in seed.deleted if original[job] not in held.get(job, []))
        if unarchived:
            problems.append(f"{where} lacks the exact item of deleted jobs {unarchived[:5]} ({len(unarchived)})")
        strangers = sorted(set(held) - seed.deleted)
        if strangers:
            problems.append(f"{where} holds jobs that were not deleted: {strangers[:5]}")
    needed = {seed.audio_key(item) for item in state.table.values()} & set(seed.objects)
    gone = sorted(key for key in needed if key and key not in state.bucket)
    if gone:
        problems.append(f"audio of kept jobs is gone: {gone[:5]} ({len(gone)})")
    if archive.exists() and archive.stat().st_mode & 0o777 != 0o600:
        problems.append(f"archive file mode is {archive.stat().st_mode & 0o777:o}, not 600")
    return problems


@dataclass
class Outcome:
    kind: str
    k: int
    fault_hit: bool
    first: ModuleRun
    rerun: ModuleRun
    problems: list[str]


def fail_at(
    runner: ModuleRunner,
    endpoint: str,
    seed: Seed,
    original: dict[str, dict],
    kind: str,
    k: int,
    workdir: Path,
    write_batch_size: int = 1,
) -> Outcome:
    """Seed, fail the run at request k, rerun it healthy, and say what was lost."""
    load(endpoint, seed)
    archive = workdir / "archive.jsonl"
    archive.unlink(missing_ok=True)
    plan = FaultPlan(die_after=k - 1) if kind == "die" else FaultPlan(kill_at=k)
    with FaultProxy(endpoint, plan=plan) as proxy:

        def on_start(pid: int) -> None:
            proxy.victim_pid = pid

        # One attempt per request: a dead endpoint fails the run now instead of after botocore's backoff.
        first = runner.run(module_args(proxy.url, archive, 1, write_batch_size), workdir, on_start)
    fault_hit = proxy.dead if kind == "die" else proxy.killed and first.returncode == -9
    problems = [] if fault_hit else [f"the fault at request {k} never happened ({proxy.served} requests served)"]
    if kind == "die" and first.ok:
        problems.append("the run reported success although the endpoint died under it")
    rerun = runner.run(module_args(endpoint, archive, 5, write_batch_size), workdir)
    if not rerun.ok:
        problems.append(
            f"the rerun did not finish: rc {rerun.returncode}, {(rerun.result or {}).get('msg') or rerun.stderr[-300:]}"
        )
    problems += lost(seed, original, read_state(endpoint), archive)
    return Outcome(kind, k, fault_hit, first, rerun, problems)


# --------------------------------------------------------------------------- the sweep


@dataclass
class SweepReport:
    jobs: int
    deleted: int
    requests: int  # N, of the uninterrupted run
    requests_by_operation: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)  # per kind
    failures: list[dict[str, Any]] = field(default_factory=list)
    points: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__


def baseline(
    runner: ModuleRunner, endpoint: str, seed: Seed, workdir: Path, write_batch_size: int = 1
) -> tuple[dict[str, dict], int, dict[str, int]]:
    """The uninterrupted run, counted at the proxy; it must itself leave exactly the expected state."""
    load(endpoint, seed)
    original = read_state(endpoint).table
    archive = workdir / "archive.jsonl"
    archive.unlink(missing_ok=True)
    with FaultProxy(endpoint) as proxy:
        run = runner.run(module_args(proxy.url, archive, 1, write_batch_size), workdir)
    if not run.ok:
        raise RuntimeError(f"the uninterrupted run failed: {(run.result or {}).get('msg') or run.stderr[-2000:]}")
    problems = lost(seed, original, read_state(endpoint), archive)
    if problems:
        raise RuntimeError(f"the uninterrupted run is not what the seed expects: {problems}")
    return original, proxy.served, dict(proxy.counts)


def sweep(
    endpoint: str,
    jobs: int,
    kinds: tuple[str, ...] = KINDS,
    points: list[int] | None = None,
    seed: int = 0,
    progress: Callable[[Outcome], None] | None = None,
    stride: int = 1,
    announce: Callable[[SweepReport], None] | None = None,
    write_batch_size: int = 1,
) -> SweepReport:
    """Fail the run at each k of `points` (default every `stride`-th of 1..N, and N), for each kind."""
    data = build_seed(jobs, seed)
    with tempfile.TemporaryDirectory(prefix="cleanup-sweep-") as tmp, ModuleRunner() as runner:
        workdir = Path(tmp)
        original, total, by_operation = baseline(runner, endpoint, data, workdir, write_batch_size)
        report = SweepReport(jobs, len(data.deleted), total, by_operation)
        if announce:
            announce(report)
        chosen = points or sorted({*range(1, total + 1, stride), total})
        for kind in kinds:
            started = time.monotonic()
            for k in chosen:
                outcome = fail_at(runner, endpoint, data, original, kind, k, workdir, write_batch_size)
                report.points += 1
                if outcome.problems:
                    report.failures.append({"kind": kind, "k": k, "problems": outcome.problems})
                if progress:
                    progress(outcome)
            report.seconds[kind] = round(time.monotonic() - started, 1)
    return report


@contextlib.contextmanager
def endpoint_for(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with (
        tempfile.TemporaryDirectory(prefix="cleanup-sweep-moto-") as tmp,
        local_aws.running_server(Path(tmp) / "moto.log") as server,
    ):
        yield server.endpoint_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300, help="items in the seeded table (default 300)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: die, kill (default both)")
    parser.add_argument("--only", default="", help="comma-separated request numbers k to fail at (default 1..N)")
    parser.add_argument("--stride", type=int, default=1, help="fail at every S-th k only (1, 1+S, ..., and N)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--write-batch-size", type=int, default=1, help="the module's write_batch_size (default 1: one request per job)"
    )
    parser.add_argument("--endpoint", help="a moto endpoint on 127.0.0.1 to use (it is reset); default: start one")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--serve-module-runs", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_module_runs:
        serve_module_runs()
        return 0
    kinds = tuple(filter(None, args.kinds.split(",")))
    if not kinds or set(kinds) - set(KINDS):
        parser.error(f"--kinds: choose from {', '.join(KINDS)}")
    if args.jobs < 10:
        parser.error("--jobs must be 10 or more")
    try:
        points = [int(value) for value in args.only.split(",") if value] or None
    except ValueError:
        parser.error("--only: request numbers, e.g. 3,17")
    if points and min(points) < 1:
        parser.error("--only: request numbers start at 1")
    if args.stride < 1:
        parser.error("--stride must be 1 or more")
    if not 1 <= args.write_batch_size <= 100:
        parser.error(f"--write-batch-size {args.write_batch_size}: give 1 to 100")

    def progress(outcome: Outcome) -> None:
        mark = "LOST " + "; ".join(outcome.problems) if outcome.problems else "ok"
        print(f"{outcome.kind:4} k={outcome.k:4}  {mark}", flush=True)

    def announce(report: SweepReport) -> None:
        print(
            f"{report.jobs} jobs ({report.deleted} deleted), N = {report.requests} requests "
            f"({', '.join(f'{op} {count}' for op, count in sorted(report.requests_by_operation.items()))})",
            flush=True,
        )

    started = time.monotonic()
    with endpoint_for(args.endpoint) as endpoint:
        report = sweep(
            endpoint, args.jobs, kinds, points, args.seed, progress, args.stride, announce, args.write_batch_size
        )
    print()
    announce(report)
    for kind, seconds in report.seconds.items():
        print(f"sweep {kind}: {seconds:.1f} s")
    print(
        f"total {time.monotonic() - started:.1f} s, {report.points} fault points, {len(report.failures)} lost something"
    )
    for failure in report.failures:
        print(f"  {failure['kind']} at k={failure['k']}: {'; '.join(failure['problems'])}")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report.as_dict(), indent=2, sort_keys=True) + "\n")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
