#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of a local AWS endpoint (moto), for tests and benchmarks.

moto never throttles, never returns UnprocessedItems and never slows down, so
retry and resume code cannot be tested against it directly. This proxy sits on
127.0.0.1 (a free port), forwards every request unchanged (botocore signs the
Host header; moto does not check signatures, so nothing is re-signed), counts
requests per operation, and injects faults that AWS really produces:

    fault                    answer
    throttling               DynamoDB 400 ThrottlingException (JSON, like AWS)
    provisioned_throughput   DynamoDB 400 ProvisionedThroughputExceededException
    http_500 / http_503      500 InternalFailure / 503 ServiceUnavailable (JSON or S3 XML)
    unprocessed              BatchWriteItem: only the first half of the items is forwarded,
                             the rest comes back as UnprocessedItems (state stays truthful)
    slowdown                 S3 503 SlowDown (XML)
    delete_errors            DeleteObjects: every k-th key is withheld from moto and reported
                             as a per-key <Error> inside the 200 response
    die_after (plan-wide)    after N requests, the proxy drops connections and stops listening
    kill_at (plan-wide)      request k reaches moto, then the client process (proxy.victim_pid) gets
                             SIGKILL before it sees the answer; requests after k are held, never forwarded

Faults are deterministic: a rule fires on the first N matching requests, on every
k-th one, or with a rate drawn from a seeded generator (same seed, same faults).

    with FaultProxy(upstream_url, plan=FaultPlan([FaultRule("BatchWriteItem", "unprocessed", every=2)])) as proxy:
        client = boto3.client("dynamodb", endpoint_url=proxy.url, ...)
        ...
        proxy.counts["BatchWriteItem"], proxy.faults["BatchWriteItem:unprocessed"]

    tests/harness/fault_proxy.py --upstream http://127.0.0.1:5000 \
        --fault DeleteObjects:slowdown:rate=0.5 --die-after 500

Operation names: DynamoDB and Secrets Manager by X-Amz-Target (`BatchWriteItem`,
`GetSecretValue`), query-protocol services by `Action`, S3 from method, path-style
path and query (`DeleteObjects`, `GetObject`, `PutObject`, `ListObjectsV2`, ...),
`MotoApi` for moto's own /moto-api/ calls.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import os
import random
import signal
import sys
import threading
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from one_write_http import OneWriteHandler

HOST = "127.0.0.1"
FAULT_KINDS = (
    "throttling",
    "provisioned_throughput",
    "http_500",
    "http_503",
    "unprocessed",
    "slowdown",
    "delete_errors",
)
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
DYNAMODB_ERRORS = {
    "throttling": (
        400,
        "com.amazonaws.dynamodb.v20120810#ThrottlingException",
        "Rate of requests exceeds the allowed throughput.",
    ),
    "provisioned_throughput": (
        400,
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    "http_500": (500, "com.amazon.coral.service#InternalFailure", "The request processing has failed."),
    "http_503": (503, "com.amazon.coral.availability#ServiceUnavailableException", "Service unavailable."),
}
S3_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "http_500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "http_503": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "throttling": (503, "SlowDown", "Please reduce your request rate."),
}


class PlanError(ValueError):
    """A fault rule that cannot work; the message is one line."""


@dataclass
class FaultRule:
    """Inject `fault` into requests of `operation` (`*` for all).

    It fires on the first `first` matching requests, on every `every`-th one
    (the every-th, 2*every-th, ...), or with probability `rate` (seeded), and at
    most `limit` times when set. `key_error_every` picks the failing keys of
    `delete_errors` (every k-th key of the request).
    """

    operation: str
    fault: str
    every: int = 0
    rate: float = 0.0
    first: int = 0
    limit: int | None = None
    key_error_every: int = 2

    def __post_init__(self) -> None:
        if self.fault not in FAULT_KINDS:
            raise PlanError(f"unknown fault {self.fault!r}: choose one of {', '.join(FAULT_KINDS)}")
        if self.fault == "unprocessed" and self.operation not in ("BatchWriteItem", "*"):
            raise PlanError("the unprocessed fault applies to BatchWriteItem only")
        if self.fault == "delete_errors" and self.operation not in ("DeleteObjects", "*"):
            raise PlanError("the delete_errors fault applies to DeleteObjects only")
        if not (self.every or self.rate or self.first):
            raise PlanError(f"rule {self.operation}:{self.fault} never fires: set every, rate or first")
        if self.every < 0 or self.first < 0 or not 0 <= self.rate <= 1 or self.key_error_every < 1:
            raise PlanError(
                f"rule {self.operation}:{self.fault}: every/first >= 0, 0 <= rate <= 1, key_error_every >= 1"
            )

    def applies_to(self, operation: str, service: str) -> bool:
        # Only JSON (DynamoDB, Secrets Manager) and S3 answers are faked; a wildcard rule
        # only injects what the operation's service can really answer.
        if self.operation not in ("*", operation) or service not in ("json", "s3"):
            return False
        if self.fault == "provisioned_throughput" and service != "json":
            return False
        if self.fault == "slowdown" and service != "s3":
            return False
        if self.fault == "unprocessed":
            return operation == "BatchWriteItem"
        if self.fault == "delete_errors":
            return operation == "DeleteObjects"
        return True

    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """`OPERATION:FAULT[:key=value,...]`, e.g. `BatchWriteItem:unprocessed:every=2`."""
        parts = spec.split(":", 2)
        if len(parts) < 2:
            raise PlanError(f"fault {spec!r} must look like OPERATION:FAULT[:every=N,rate=R,first=N,limit=N]")
        options: dict[str, Any] = {}
        for pair in filter(None, (parts[2] if len(parts) == 3 else "").split(",")):
            name, _, value = pair.partition("=")
            if name not in ("every", "rate", "first", "limit", "key_error_every"):
                raise PlanError(f"fault {spec!r}: unknown option {name!r}")
            try:
                options[name] = float(value) if name == "rate" else int(value)
            except ValueError:
                raise PlanError(f"fault {spec!r}: {name} must be a number") from None
        return cls(parts[0], parts[1], **options)


@dataclass
class FaultPlan:
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    die_after: int | None = None  # requests served before the endpoint goes dead
    # The client process is SIGKILLed at this request (1-based): the request itself is forwarded
    # first, so its write lands while the client never learns it did (the harshest moment to die).
    kill_at: int | None = None

    def __post_init__(self) -> None:
        if self.die_after is not None and self.die_after < 0:
            raise PlanError("die_after must be 0 or more")
        if self.kill_at is not None and self.kill_at < 1:
            raise PlanError("kill_at must be 1 or more (requests are numbered from 1)")


class RuleState:
    """Counters of one rule, so its decisions depend only on the requests it saw."""

    def __init__(self, rule: FaultRule, seed: int) -> None:
        self.rule = rule
        self.seen = 0
        self.fired = 0
        self.rng = random.Random(seed)

    def fires(self) -> bool:
        rule = self.rule
        self.seen += 1
        draw = self.rng.random() if rule.rate else 1.0  # drawn every time, so the sequence is fixed per request
        if rule.limit is not None and self.fired >= rule.limit:
            return False
        hit = (
            self.seen <= rule.first
            or (rule.every > 0 and self.seen % rule.every == 0)
            or (rule.rate > 0 and draw < rule.rate)
        )
        self.fired += hit
        return hit


# --------------------------------------------------------------------------- request naming


def s3_operation(method: str, path: str, query: str, headers: Any) -> str:
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    params = parse_qs(query, keep_blank_values=True)
    if not bucket:
        return "ListBuckets"
    if key:
        if method == "PUT":
            if "partNumber" in params:
                return "UploadPart"
            return "CopyObject" if headers.get("x-amz-copy-source") else "PutObject"
        if method == "POST":
            return "CreateMultipartUpload" if "uploads" in params else "CompleteMultipartUpload"
        if method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in params else "DeleteObject"
        return {"GET": "GetObject", "HEAD": "HeadObject"}.get(method, f"S3{method}")
    if method == "POST" and "delete" in params:
        return "DeleteObjects"
    if method == "GET":
        if params.get("list-type") == ["2"]:
            return "ListObjectsV2"
        for sub in ("versions", "location", "tagging", "policy", "uploads", "lifecycle", "versioning"):
            if sub in params:
                return f"GetBucket:{sub}"
        return "ListObjects"
    if method == "PUT":
        return "CreateBucket" if not params else f"PutBucket:{next(iter(params))}"
    return {"HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, f"S3{method}")


def classify_request(method: str, path: str, headers: Any, body: bytes) -> tuple[str, str]:
    """(service protocol, operation name): protocol is json, query, s3 or moto."""
    target = headers.get("X-Amz-Target")
    if target:
        return "json", target.rpartition(".")[2]
    split = urlsplit(path)
    if split.path.startswith("/moto-api"):
        return "moto", "MotoApi"
    if method == "POST" and "x-www-form-urlencoded" in (headers.get("Content-Type") or ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return "query", action[0]
    return "s3", s3_operation(method, split.path, split.query, headers)


# --------------------------------------------------------------------------- answers


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_answer(status: int, payload: dict[str, Any]) -> Answer:
    body = json.dumps(payload).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
        ("x-amz-crc32", str(zlib.crc32(body))),  # botocore checks it on DynamoDB responses
    ]
    return Answer(status, headers, body)


def dynamodb_error(fault: str) -> Answer:
    status, error_type, message = DYNAMODB_ERRORS[fault]
    return json_answer(status, {"__type": error_type, "message": message})


def s3_error(fault: str) -> Answer:
    status, code, message = S3_ERRORS[fault]
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
    ).encode()
    return Answer(status, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], body)


def error_answer(fault: str, service: str) -> Answer:
    return s3_error(fault) if service == "s3" else dynamodb_error(fault)


def with_checksums(headers: dict[str, str], body: bytes) -> dict[str, str]:
    """Recompute the body checksums botocore sent, for a body the proxy rewrote."""
    fixed = {name: value for name, value in headers.items() if name.lower() != "content-length"}
    fixed["Content-Length"] = str(len(body))
    for name in list(fixed):
        lower = name.lower()
        if lower == "content-md5":
            fixed[name] = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        elif lower == "x-amz-checksum-crc32":
            fixed[name] = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        elif lower == "x-amz-checksum-sha256":
            fixed[name] = base64.b64encode(hashlib.sha256(body).digest()).decode()
        elif lower == "x-amz-checksum-sha1":
            fixed[name] = base64.b64encode(hashlib.sha1(body, usedforsecurity=False).digest()).decode()
        elif lower.startswith("x-amz-checksum-") or lower == "x-amz-sdk-checksum-algorithm":
            del fixed[name]  # an algorithm the stdlib lacks (crc32c, crc64nvme): send none rather than a wrong one
    return fixed


# --------------------------------------------------------------------------- the proxy


class FaultProxy:
    """Threaded HTTP proxy on 127.0.0.1 in front of `upstream_url`; a context manager."""

    def __init__(self, upstream_url: str, plan: FaultPlan | None = None, port: int = 0) -> None:
        upstream = urlsplit(upstream_url)
        if upstream.scheme != "http" or not upstream.hostname:
            raise PlanError(f"upstream must be an http:// URL, got {upstream_url!r}")
        self.upstream_host = upstream.hostname
        self.upstream_port = upstream.port or 80
        self.plan = plan or FaultPlan()
        self.port = port
        self.counts: Counter[str] = Counter()  # requests received per operation, faulted ones included
        self.faults: Counter[str] = Counter()  # "Operation:fault" -> times injected
        self.items: Counter[str] = (
            Counter()
        )  # batch items: BatchWriteItem/DeleteObjects forwarded, unprocessed, key errors
        self.batch_sizes: dict[str, list[int]] = {"BatchWriteItem": [], "DeleteObjects": []}
        self.bytes_in = 0  # request bytes received from clients
        self.bytes_out = 0  # response bytes sent to clients
        self.refused = 0  # requests dropped because the endpoint is dead (or its client was killed)
        self.dead = False
        self.killed = False  # the client was SIGKILLed at plan.kill_at
        self._victim_pid: int | None = None
        self._victim_known = threading.Event()
        self._kill_done = threading.Event()
        self._lock = threading.Lock()
        self._states = [RuleState(rule, self.plan.seed + index) for index, rule in enumerate(self.plan.rules)]
        self._served = 0
        self._closed = False
        self._stop_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> FaultProxy:
        handler = type("BoundHandler", (ProxyHandler,), {"proxy": self})
        self._server = ThreadingHTTPServer((HOST, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._stop_lock:
            self._closed = True  # kept-alive connections must not be served after this either
            server, self._server = self._server, None
        self._kill_done.set()  # nothing is held once the proxy stops
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def die(self) -> None:
        """Become a dead endpoint now: open connections get no answer, new ones are refused."""
        with self._lock:
            self.dead = True
        self.stop()

    @property
    def victim_pid(self) -> int | None:
        return self._victim_pid

    @victim_pid.setter
    def victim_pid(self, pid: int) -> None:
        """The process that plan.kill_at kills: set it right after starting that process."""
        self._victim_pid = pid
        self._victim_known.set()

    def kill_victim(self) -> None:
        # The victim may reach request k before its starter has told us its pid; wait a little.
        if not self._victim_known.wait(timeout=30):
            raise PlanError("kill_at was reached but no victim_pid was set")
        with contextlib.suppress(ProcessLookupError):  # it exited on its own first: nothing left to kill
            os.kill(self._victim_pid, signal.SIGKILL)
        with self._lock:
            self.killed = True
        self._kill_done.set()

    def hold_until_killed(self) -> None:
        if self.plan.kill_at is not None:
            self._kill_done.wait(timeout=60)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ decisions

    def admit(self, operation: str, request_bytes: int) -> int:
        """Count the request and return its number (from 1); 0 when the endpoint is dead or its client killed."""
        with self._lock:
            kill_at = self.plan.kill_at
            if self.dead or self._closed or (kill_at is not None and self._served >= kill_at):
                self.refused += 1
                return 0
            die_after = self.plan.die_after
            if die_after is not None and self._served >= die_after:
                self.dead = True
                self.refused += 1
                return 0
            self._served += 1
            self.counts[operation] += 1
            self.bytes_in += request_bytes
            return self._served

    @property
    def served(self) -> int:
        """Requests admitted so far (faulted and killing ones included)."""
        with self._lock:
            return self._served

    def choose_fault(self, operation: str, service: str) -> FaultRule | None:
        with self._lock:
            chosen = None
            for state in self._states:
                # Every applicable rule counts the request, so each rule's schedule is independent of the others.
                if state.rule.applies_to(operation, service) and state.fires() and chosen is None:
                    chosen = state.rule
            if chosen is not None:
                self.faults[f"{operation}:{chosen.fault}"] += 1
            return chosen

    def record(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.items[key] += amount

    def record_batch(self, operation: str, size: int) -> None:
        with self._lock:
            self.batch_sizes[operation].append(size)

    def sent(self, size: int) -> None:
        with self._lock:
            self.bytes_out += size

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counts": dict(self.counts),
                "faults": dict(self.faults),
                "items": dict(self.items),
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
                "refused": self.refused,
                "dead": self.dead,
                "killed": self.killed,
            }


class ProxyHandler(OneWriteHandler):
    """Answers over HTTP/1.1 keep-alive (botocore's pooled connections), TCP_NODELAY, one write per answer."""

    proxy: FaultProxy  # bound per server by FaultProxy.start

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: tests read counts, not access logs."""

    def handle(self) -> None:
        # The client went away (killed, or gave up): there is no one left to answer.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def do_GET(self) -> None:
        self.relay()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

    # ------------------------------------------------------------------ one request

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def relay(self) -> None:
        body = self.read_body()
        service, operation = classify_request(self.command, self.path, self.headers, body)
        number = self.proxy.admit(operation, len(body))
        if not number:
            self.close_connection = True
            # Requests after k are held until the kill, so the client cannot act on their failure.
            self.proxy.hold_until_killed()
            if self.proxy.dead:
                # A dead endpoint: no answer at all, the connection closes and the port stops listening.
                # (Handler threads are not the serve_forever thread, so stopping here cannot deadlock.)
                self.proxy.stop()
            return
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        if number == self.proxy.plan.kill_at:
            # The write lands upstream, then its sender dies without seeing the answer.
            self.forward(headers, body)
            self.proxy.kill_victim()
            self.close_connection = True
            return
        rule = self.proxy.choose_fault(operation, service) if service != "moto" else None
        if rule is None:
            answer = self.forward(headers, body)
        elif rule.fault == "unprocessed":
            answer = self.forward_half_batch(headers, body)
        elif rule.fault == "delete_errors":
            answer = self.forward_with_key_errors(headers, body, rule.key_error_every)
        else:
            answer = error_answer(rule.fault, service)
        self.observe_batch(operation, body, rule)
        self.reply(answer)

    def observe_batch(self, operation: str, body: bytes, rule: FaultRule | None) -> None:
        """Record request sizes, which moto does not limit: tests assert the 25 / 1,000 item limits from these."""
        if operation == "BatchWriteItem":
            try:
                requests = json.loads(body).get("RequestItems", {})
            except ValueError:
                return
            self.proxy.record_batch(operation, sum(len(items) for items in requests.values()))
        elif operation == "DeleteObjects":
            self.proxy.record_batch(operation, body.count(b"<Object>"))

    def forward(self, headers: dict[str, str], body: bytes) -> Answer:
        for attempt in (1, 2):
            connection = http.client.HTTPConnection(self.proxy.upstream_host, self.proxy.upstream_port, timeout=120)
            try:
                connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers.items():
                    connection.putheader(name, value)
                if "content-length" not in {name.lower() for name in headers} and (
                    body or self.command in ("POST", "PUT")
                ):
                    connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body or None)
                response = connection.getresponse()
                data = response.read()
                kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
                return Answer(response.status, kept, data)
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                if attempt == 2:
                    return Answer(
                        502, [("Content-Type", "text/plain")], f"fault_proxy: upstream failed: {exc}".encode()
                    )
            finally:
                connection.close()
        raise AssertionError("unreachable")

    def forward_half_batch(self, headers: dict[str, str], body: bytes) -> Answer:
        """Forward the first half of a BatchWriteItem; answer the rest as UnprocessedItems, like AWS under load."""
        request = json.loads(body)
        flat = [(table, item) for table, items in request.get("RequestItems", {}).items() for item in items]
        keep = len(flat) // 2
        unprocessed: dict[str, list] = {}
        for table, item in flat[keep:]:
            unprocessed.setdefault(table, []).append(item)
        self.proxy.record("BatchWriteItem:forwarded", keep)
        self.proxy.record("BatchWriteItem:unprocessed", len(flat) - keep)
        if keep == 0:
            return json_answer(200, {"UnprocessedItems": unprocessed})
        forwarded: dict[str, list] = {}
        for table, item in flat[:keep]:
            forwarded.setdefault(table, []).append(item)
        new_body = json.dumps({**request, "RequestItems": forwarded}).encode()
        answer = self.forward(with_checksums(headers, new_body), new_body)
        if answer.status != 200:
            return answer
        result = json.loads(answer.body)
        for table, items in result.get("UnprocessedItems", {}).items():
            unprocessed.setdefault(table, []).extend(items)
        result["UnprocessedItems"] = unprocessed
        return json_answer(200, result)

    def forward_with_key_errors(self, headers: dict[str, str], body: bytes, every: int) -> Answer:
        """Withhold every k-th key of a DeleteObjects from moto and report it as a per-key error in a 200."""
        root = ElementTree.fromstring(body)
        objects = [node for node in root if node.tag in (f"{{{S3_NS}}}Object", "Object")]
        failing = [node for index, node in enumerate(objects) if index % every == every - 1]
        failed_keys = [node.findtext(f"{{{S3_NS}}}Key") or node.findtext("Key") or "" for node in failing]
        for node in failing:
            root.remove(node)
        self.proxy.record("DeleteObjects:key_errors", len(failed_keys))
        self.proxy.record("DeleteObjects:forwarded", len(objects) - len(failed_keys))
        errors = "".join(
            f"<Error><Key>{escape(key)}</Key><Code>InternalError</Code>"
            "<Message>We encountered an internal error. Please try again.</Message></Error>"
            for key in failed_keys
        )
        if len(failing) == len(objects):
            xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="{S3_NS}">{errors}</DeleteResult>'
            return Answer(200, [("Content-Type", "application/xml")], xml.encode())
        ElementTree.register_namespace("", S3_NS)
        new_body = ElementTree.tostring(root, encoding="utf-8", xml_declaration=False)
        answer = self.forward(with_checksums(headers, new_body), new_body)
        if answer.status != 200:
            return answer
        text = answer.body.decode("utf-8")
        closing = text.rfind("</DeleteResult>")
        if closing < 0:
            return answer
        return Answer(200, answer.headers, (text[:closing] + errors + text[closing:]).encode())

    def reply(self, answer: Answer) -> None:
        is_head = self.command == "HEAD"
        headers = []
        for name, value in answer.headers:
            # HEAD keeps the object's real Content-Length; everything else gets the length of what is sent.
            if name.lower() == "content-length" and not is_head:
                continue
            if name.lower() == "x-amz-crc32" and not answer.body:
                continue
            headers.append((name, value))
        if not is_head:
            headers.append(("Content-Length", str(len(answer.body))))
        try:
            self.write_response(answer.status, headers, b"" if is_head else answer.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its read timeout) before the answer came: like AWS, just drop it.
            self.close_connection = True
            self.proxy.record("client_gone")
            return
        self.proxy.sent(len(answer.body))


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="the endpoint to forward to, e.g. http://127.0.0.1:5000")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--fault", action="append", default=[], help="OPERATION:FAULT[:every=N,rate=R,first=N,limit=N]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--die-after", type=int, default=None, help="stop answering after this many requests")
    args = parser.parse_args(argv)
    try:
        plan = FaultPlan([FaultRule.parse(spec) for spec in args.fault], seed=args.seed, die_after=args.die_after)
        proxy = FaultProxy(args.upstream, plan=plan, port=args.port).start()
    except (PlanError, OSError) as exc:
        print(f"fault_proxy: {exc}", file=sys.stderr)
        return 2
    print(proxy.url, flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    while not stopped.wait(0.5) and not proxy.dead:
        pass
    proxy.stop()
    print(json.dumps(proxy.summary(), sort_keys=True), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
