#!/usr/bin/env python3
"""A local DynamoDB endpoint that answers Scan, Query and DescribeTable from generated pages, at wire speed.

    tests/harness/replay_endpoint.py --jobs 1000000 [--seed 0] [--port 0] [--no-extra-attributes] [--latency-ms 0]

moto re-evaluates the whole table for every page, so a benchmark against it
measures moto. This endpoint measures the client: it serves a synthetic jobs
table of any size without storing it. A few thousand item templates come from
tools/seed_jobs.py's synthetic generator (every status, category, malformed
kind, shared audio); item i is template i % T with its own job_id (and its own
audio_file_id unless the template shares audio on purpose), so ids are unique
and a million items cost no memory. Pages are rendered as DynamoDB renders
them: each Scan or Query page stops at `Limit` or before the items *read*
exceed 1 MB (measured on the whole item, as DynamoDB does, whatever the
projection), and carries LastEvaluatedKey when more follow.

Honoured: TableName, Segment/TotalSegments (item i is in segment i % TotalSegments),
ExclusiveStartKey/LastEvaluatedKey, Limit, ProjectionExpression with
ExpressionAttributeNames (top-level names), Query with an equality
KeyConditionExpression on the table's key (job_id) or on the user-jobs-index
key (user_id). Anything else it cannot answer faithfully (a FilterExpression,
Select, nested paths, other operations) gets a 400 ValidationException or
UnknownOperationException rather than a wrong answer.

It prints one JSON line when it listens ({"endpoint_url": ..., "table": ..., "jobs": ...,
"expected": ...}) and serves until killed. GET /__replay/stats returns the requests
answered per operation and the bytes sent; POST /__replay/reset zeroes them.
Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
import zlib
from collections import Counter
from decimal import Decimal
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

# The item templates come from the seeder, a tool people run (tools/seed_jobs.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from one_write_http import OneWriteHandler

ONE_MB = 1024 * 1024
USER_INDEX = "user-jobs-index"
TARGET_PREFIX = "DynamoDB_20120810."
# Attributes real jobs carry that the audit does not read (the audit projects 10 of 13).
EXTRA_ATTRIBUTES = ("transcript_s3_key", "audio_duration_seconds", "processing_metadata")


def add_extra_attributes(item: dict[str, Any], number: int, rng: random.Random) -> dict[str, Any]:
    """The 3 attributes of EXTRA_ATTRIBUTES, as a real job carries them (a string, a number, a map with a list)."""
    item["transcript_s3_key"] = f"transcripts/{item['user_id']}/{number:06d}.json"
    item["audio_duration_seconds"] = Decimal(rng.randrange(50, 30000)) / 10
    item["processing_metadata"] = {
        "worker": f"worker-{rng.randrange(8)}",
        "model": "whisper-large-v3",
        "attempts": [rng.randrange(1, 400) for _ in range(rng.randrange(1, 4))],
    }
    return item


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# --------------------------------------------------------------------------- the table


def _wire(value: Any) -> dict:
    """A generated value (str, int, bool, Decimal, dict, list) as a DynamoDB JSON AttributeValue."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, Decimal)):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {k: _wire(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [_wire(v) for v in value]}
    raise TypeError(f"no DynamoDB type for {type(value).__name__}")


def _size(typed: dict) -> int:
    """DynamoDB's item-size accounting of one value, close enough for the 1 MB page limit."""
    ((tag, value),) = typed.items()
    if tag == "S":
        return len(value.encode())
    if tag == "N":
        return (len(value.lstrip("-").replace(".", "")) + 1) // 2 + 1
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "M":
        return 3 + sum(len(k.encode()) + _size(v) + 1 for k, v in value.items())
    if tag == "L":
        return 3 + sum(_size(v) + 1 for v in value)
    raise TypeError(tag)


def job_id(index: int) -> str:
    """Unique, uuid-shaped, and the index readable back from its first 8 hex digits (for ExclusiveStartKey)."""
    mixed = f"{(index * 0x9E3779B97F4A7C15) & (2**96 - 1):024x}"
    return f"{index:08x}-{mixed[:4]}-{mixed[4:8]}-{mixed[8:12]}-{mixed[12:]}"


def audio_id(index: int) -> str:
    """Unique per index (an odd multiplier is a bijection modulo 2**128), uuid-shaped."""
    mixed = f"{(index * 0xC2B2AE3D27D4EB4F2545F4914F6CDD1D + 0x165667B1) & (2**128 - 1):032x}"
    return f"{mixed[:8]}-{mixed[8:12]}-{mixed[12:16]}-{mixed[16:20]}-{mixed[20:]}"


def index_of(job: str) -> int:
    try:
        return int(job[:8], 16)
    except (TypeError, ValueError):
        raise ApiError("ValidationException", f"ExclusiveStartKey job_id {job!r} is not from this table") from None


class Template:
    """One generated item: its wire attributes, whole-item size, and whether its ids are per item."""

    def __init__(self, item: dict[str, Any], shared_audio: bool) -> None:
        self.wire = {name: _wire(value) for name, value in item.items()}
        self.size = sum(len(name.encode()) + _size(value) for name, value in self.wire.items())
        self.user = item.get("user_id")
        self.status = item.get("status")
        self.shared_audio = shared_audio
        self._formats: dict[tuple | None, tuple[str, tuple[str, ...]]] = {}

    def format_for(self, names: tuple | None) -> tuple[str, tuple[str, ...]]:
        """A %-format of the item with the projected `names` (None: all), and which per-item ids fill it, in order."""
        found = self._formats.get(names)
        if found is None:
            parts, fills = [], []
            for name in self.wire if names is None else names:
                if name not in self.wire:
                    continue
                key = json.dumps(name)
                if name == "job_id" or (name == "audio_file_id" and not self.shared_audio):
                    parts.append(key + ':{"S":"%s"}')
                    fills.append(name)
                else:
                    parts.append(key + ":" + json.dumps(self.wire[name], ensure_ascii=False).replace("%", "%%"))
            found = ("{" + ",".join(parts) + "}", tuple(fills))
            self._formats[names] = found
        return found


class ReplayTable:
    def __init__(self, name: str, jobs: int, seed: int = 0, templates: int = 4096, extra: bool = True) -> None:
        import seed_jobs

        self.name, self.jobs = name, jobs
        rng = random.Random(seed)
        users = [seed_jobs.make_uuid(rng) for _ in range(20)]
        generator = seed_jobs.Generator(
            rng=rng, now=seed_jobs.DEFAULT_NOW, users=users, expected=seed_jobs.Expected(keep_ids=True)
        )
        items = list(generator.items(max(min(jobs, templates), seed_jobs.MIN_SYNTHETIC_JOBS)))
        audio_uses = Counter(item.get("audio_file_id") for item in items if "audio_file_id" in item)
        if extra:
            extra_rng = random.Random(seed + 3)
            for number, item in enumerate(items):
                add_extra_attributes(item, number, extra_rng)
        self.templates = [Template(item, audio_uses[item.get("audio_file_id")] > 1) for item in items]
        # What the generator decided each template is ("status:failed", "malformed:status_unknown", ...).
        groups_of: dict[str, list[str]] = {}
        for group, jobs in generator.expected.ids.items():
            for job in jobs:
                groups_of.setdefault(job, []).append(group)
        self.labels = [groups_of.get(item["job_id"], []) for item in items]
        self.users = users
        self._by_user: dict[str, list[int]] = {}
        for number, template in enumerate(self.templates):
            if isinstance(template.user, str):
                self._by_user.setdefault(template.user, []).append(number)

    def expected(self) -> dict[str, Any]:
        """What reading every item must find: the generator's decisions, and raw status values as the guide counts them.

        Taken from how tools/seed_jobs.py built each template, not from the project's classification.
        """
        count = len(self.templates)
        raw_status: Counter[str] = Counter()
        decided: Counter[str] = Counter()
        for number, template in enumerate(self.templates):
            copies = self.jobs // count + (number < self.jobs % count)
            raw_status[str(template.status)] += copies
            for group in self.labels[number]:
                decided[group] += copies

        def part(prefix: str) -> dict[str, int]:
            return {g[len(prefix) :]: n for g, n in sorted(decided.items()) if g.startswith(prefix) and n}

        return {
            "items": self.jobs,
            "by_status_raw": dict(sorted(raw_status.items())),
            "by_status": part("status:"),
            "by_category": part("category:"),
            "malformed_by_reason": part("malformed:"),
            "pending_stuck": decided["pending_stuck"],
            "users": self.users,
        }

    def description(self) -> dict[str, Any]:
        return {
            "TableName": self.name,
            # What the cleanup's lease is keyed by (a fixed account: the table's identity, whatever the endpoint).
            "TableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{self.name}",
            "TableStatus": "ACTIVE",
            "ItemCount": self.jobs,
            "TableSizeBytes": sum(t.size for t in self.templates) * self.jobs // len(self.templates),
            "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
            "AttributeDefinitions": [
                {"AttributeName": "job_id", "AttributeType": "S"},
                {"AttributeName": "user_id", "AttributeType": "S"},
            ],
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": USER_INDEX,
                    "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                    "IndexStatus": "ACTIVE",
                    "ItemCount": self.jobs,
                }
            ],
        }

    def render_page(self, indices, names: tuple | None, limit: int | None, key_of) -> bytes:
        """Items from `indices` (ascending) until Limit or 1 MB read; LastEvaluatedKey when more follow."""
        templates, count = self.templates, len(self.templates)
        rendered: list[str] = []
        read = 0
        last = None
        more = False
        for index in indices:
            template = templates[index % count]
            if rendered and (read + template.size > ONE_MB or (limit is not None and len(rendered) >= limit)):
                more = True
                break
            fmt, fills = template.format_for(names)
            if fills == ("job_id",):
                rendered.append(fmt % job_id(index))
            else:
                rendered.append(fmt % tuple(job_id(index) if f == "job_id" else audio_id(index) for f in fills))
            read += template.size
            last = index
        body = '{"Items":[' + ",".join(rendered) + f'],"Count":{len(rendered)},"ScannedCount":{len(rendered)}'
        if more and last is not None:
            body += ',"LastEvaluatedKey":' + json.dumps(key_of(last))
        return (body + "}").encode()


# --------------------------------------------------------------------------- requests


def projected_names(request: dict) -> tuple | None:
    expression = request.get("ProjectionExpression")
    if not expression:
        return None
    placeholders = request.get("ExpressionAttributeNames") or {}
    names = []
    for token in (part.strip() for part in expression.split(",")):
        name = placeholders.get(token, token) if token.startswith("#") else token
        if not name or "." in token or "[" in token or (token.startswith("#") and token not in placeholders):
            raise ApiError("ValidationException", f"ProjectionExpression term {token!r} is not supported here")
        names.append(name)
    return tuple(names)


def _refuse_unsupported(request: dict, operation: str) -> None:
    for option in ("FilterExpression", "ScanFilter", "QueryFilter", "Select", "AttributesToGet", "KeyConditions"):
        if option in request:
            raise ApiError(
                "ValidationException", f"{operation} option {option} is not supported by the replay endpoint"
            )


def scan(table: ReplayTable, request: dict) -> bytes:
    _refuse_unsupported(request, "Scan")
    total = int(request.get("TotalSegments", 1))
    segment = int(request.get("Segment", 0))
    if not 1 <= total <= 1_000_000 or not 0 <= segment < total:
        raise ApiError("ValidationException", f"Segment {segment} of TotalSegments {total} is out of range")
    start = segment
    if "ExclusiveStartKey" in request:
        start = index_of(request["ExclusiveStartKey"].get("job_id", {}).get("S")) + total
    return table.render_page(
        range(start, table.jobs, total),
        projected_names(request),
        request.get("Limit"),
        lambda index: {"job_id": {"S": job_id(index)}},
    )


KEY_CONDITION = re.compile(r"^\s*(#?\w+)\s*=\s*(:\w+)\s*$")


def query(table: ReplayTable, request: dict) -> bytes:
    _refuse_unsupported(request, "Query")
    match = KEY_CONDITION.match(request.get("KeyConditionExpression", ""))
    if not match:
        raise ApiError("ValidationException", "only `key = :value` KeyConditionExpressions are supported here")
    name, placeholder = match.groups()
    if name.startswith("#"):
        name = (request.get("ExpressionAttributeNames") or {}).get(name, name)
    value = (request.get("ExpressionAttributeValues") or {}).get(placeholder, {}).get("S")
    index_name = request.get("IndexName")
    wanted = (index_name, name)
    if wanted not in ((None, "job_id"), (USER_INDEX, "user_id")):
        raise ApiError("ValidationException", f"Query condition on {name} is not a key of {index_name or 'the table'}")
    after = -1
    if "ExclusiveStartKey" in request:
        after = index_of(request["ExclusiveStartKey"].get("job_id", {}).get("S"))
    if name == "job_id":
        found = [] if value is None else [index_of(value)] if job_id(index_of(value)) == value else []
        indices = iter([i for i in found if i < table.jobs and i > after])
        key_of = lambda index: {"job_id": {"S": job_id(index)}}  # noqa: E731
    else:
        indices = _user_indices(table, value, after)

        def key_of(index: int) -> dict:
            return {"job_id": {"S": job_id(index)}, "user_id": {"S": value}}

    return table.render_page(indices, projected_names(request), request.get("Limit"), key_of)


def _user_indices(table: ReplayTable, user: str | None, after: int):
    numbers = table._by_user.get(user, [])
    count = len(table.templates)
    block = max(after, 0) // count * count
    while block < table.jobs:
        for number in numbers:
            index = block + number
            if index >= table.jobs:
                return
            if index > after:
                yield index
        block += count


class Handler(OneWriteHandler):
    """DynamoDB's JSON protocol over HTTP/1.1 keep-alive, TCP_NODELAY, one write per answer."""

    server: ReplayServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: thousands of requests
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/x-amz-json-1.0") -> None:
        headers = [
            ("Date", self.date_time_string()),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", "replay"),
            ("x-amz-crc32", str(zlib.crc32(body) & 0xFFFFFFFF)),
        ]
        self.write_response(status, headers, body)
        with self.server.lock:
            self.server.bytes_out += len(body)

    def do_GET(self) -> None:
        if self.path == "/__replay/stats":
            with self.server.lock:
                stats = {"requests": dict(self.server.requests), "bytes_out": self.server.bytes_out}
            self._send(200, json.dumps(stats).encode(), "application/json")
        else:
            self._send(404, b"{}", "application/json")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/__replay/reset":
            with self.server.lock:
                self.server.requests.clear()
                self.server.bytes_out = 0
            self._send(200, b"{}", "application/json")
            return
        target = self.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else target or "unknown"
        with self.server.lock:
            self.server.requests[operation] += 1
        try:
            request = json.loads(raw or b"{}")
            table = self.server.table
            if request.get("TableName") != table.name:
                raise ApiError("ResourceNotFoundException", "Requested resource not found")
            if operation == "Scan":
                body = scan(table, request)
            elif operation == "Query":
                body = query(table, request)
            elif operation == "DescribeTable":
                body = json.dumps({"Table": table.description()}).encode()
            else:
                raise ApiError("UnknownOperationException", f"{operation} is not served by the replay endpoint")
        except ApiError as exc:
            error = {"__type": f"com.amazonaws.dynamodb.v20120810#{exc.code}", "message": exc.message}
            self._send(exc.status, json.dumps(error).encode())
            return
        except (ValueError, TypeError, AttributeError) as exc:
            error = {"__type": "com.amazonaws.dynamodb.v20120810#ValidationException", "message": str(exc)}
            self._send(400, json.dumps(error).encode())
            return
        if self.server.latency:
            time.sleep(self.server.latency)  # a page's service time, as on a real endpoint
        self._send(200, body)


class ReplayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, table: ReplayTable, port: int = 0, latency: float = 0.0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.table = table
        self.latency = latency
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.bytes_out = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, required=True, help="items in the table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--table", default="panzoto-processing-jobs")
    parser.add_argument("--templates", type=int, default=4096, help="distinct generated items the table cycles through")
    parser.add_argument(
        "--no-extra-attributes",
        dest="extra",
        action="store_false",
        help=f"items without the 3 attributes the audit does not read ({', '.join(EXTRA_ATTRIBUTES)})",
    )
    parser.add_argument("--latency-ms", type=float, default=0, help="wait this long before each answer")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.templates < 1 or args.latency_ms < 0:
        parser.error("--jobs and --templates must be 1 or more")
    table = ReplayTable(args.table, args.jobs, args.seed, args.templates, args.extra)
    server = ReplayServer(table, args.port, args.latency_ms / 1000)
    print(
        json.dumps(
            {"endpoint_url": server.endpoint_url, "table": table.name, "jobs": table.jobs, "expected": table.expected()}
        ),
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
