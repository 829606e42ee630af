#!/usr/bin/env python3
"""A stand-in AWS endpoint for the cleanup's writes, with AWS-like latencies (benchmarks/cleanup_writes.py).

    .venv/bin/python benchmarks/standin.py --reads http://127.0.0.1:PORT [--dynamodb-ms 8] [--s3-ms 30]
        [--delete-objects-ms 500]

DynamoDB reads (DescribeTable, Scan, Query) are forwarded to tests/harness/replay_endpoint.py, which serves
a generated table of any size. Writes are answered here, after the latency, as AWS answers when every
condition holds: DeleteItem, UpdateItem and TransactWriteItems with `{}`, S3 PutObject, CopyObject,
DeleteObject and DeleteObjects (Quiet: no per-key errors), ListObjectsV2 (an empty bucket); the cleanup's
lease finds its lock table (any other table's DescribeTable) empty (GetItem). Nothing is stored: it
measures the client's CPU and how well it overlaps latency, not correctness (moto does that).
Prints one JSON line when it listens ({"endpoint_url": ...}), serves until killed; GET /__standin/stats
gives the requests per operation. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DYNAMODB_READS = {"DescribeTable", "Scan", "Query"}
DYNAMODB_WRITES = {"DeleteItem", "UpdateItem", "TransactWriteItems", "PutItem"}
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
LAST_MODIFIED = "2025-10-19T18:00:00.000Z"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandIn

    def log_message(self, format: str, *args: object) -> None:  # quiet: thousands of requests
        pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/xml", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _count(self, operation: str) -> None:
        with self.server.lock:
            self.server.requests[operation] += 1

    def do_GET(self) -> None:
        if self.path == "/__standin/stats":
            with self.server.lock:
                body = json.dumps({"requests": dict(self.server.requests)}).encode()
            self._send(200, body, "application/json")
            return
        self._s3("GET")

    def do_HEAD(self) -> None:
        self._s3("HEAD")

    def do_PUT(self) -> None:
        self._s3("PUT")

    def do_DELETE(self) -> None:
        self._s3("DELETE")

    def do_POST(self) -> None:
        target = self.headers.get("X-Amz-Target", "")
        if not target:
            self._s3("POST")
            return
        operation = target.rpartition(".")[2]
        body = self._body()
        self._count(operation)
        time.sleep(self.server.dynamodb_latency)
        if operation in DYNAMODB_READS:
            status, answer = self.server.read(body, target)
            if operation == "DescribeTable" and status == 400 and b"ResourceNotFoundException" in answer:
                # Another table than the jobs': the cleanup's lock table, which exists and is empty here.
                name = json.loads(body or b"{}").get("TableName", "")
                status, answer = 200, json.dumps({"Table": {"TableName": name, "TableStatus": "ACTIVE"}}).encode()
            self._send(status, answer, "application/x-amz-json-1.0")
        elif operation == "GetItem" or operation in DYNAMODB_WRITES:  # the lease item: none yet
            self._send(200, b"{}", "application/x-amz-json-1.0")
        else:
            error = {"__type": "com.amazonaws.dynamodb.v20120810#UnknownOperationException", "message": operation}
            self._send(400, json.dumps(error).encode(), "application/x-amz-json-1.0")

    def _s3(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        self._body()
        _bucket, _, key = url.path.lstrip("/").partition("/")
        if method == "POST" and "delete" in query:
            self._count("DeleteObjects")
            time.sleep(self.server.delete_objects_latency)
            self._send(200, f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="{S3_NS}"/>'.encode())
            return
        time.sleep(self.server.s3_latency)
        if method == "PUT" and self.headers.get("x-amz-copy-source"):
            self._count("CopyObject")
            body = f'<CopyObjectResult><ETag>"e"</ETag><LastModified>{LAST_MODIFIED}</LastModified></CopyObjectResult>'
            self._send(200, body.encode())
        elif method == "PUT":
            self._count("PutObject")
            self._send(200, ETag='"e"')
        elif method == "DELETE":
            self._count("DeleteObject")
            self._send(204)
        elif method == "GET" and not key:
            self._count("ListObjectsV2")
            body = f'<ListBucketResult xmlns="{S3_NS}"><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>'
            self._send(200, (body + "</ListBucketResult>").encode())
        elif method == "HEAD":
            self._count("HeadObject")
            self._send(200)
        else:
            self._count(f"S3{method}")
            self._send(400, b"<Error><Code>NotImplemented</Code></Error>")


class StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, reads_url: str, dynamodb_ms: float, s3_ms: float, delete_objects_ms: float) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        reads = urlsplit(reads_url)
        self.reads_host, self.reads_port = reads.hostname, reads.port
        self.dynamodb_latency, self.s3_latency = dynamodb_ms / 1000, s3_ms / 1000
        self.delete_objects_latency = delete_objects_ms / 1000
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.local = threading.local()

    def read(self, body: bytes, target: str) -> tuple[int, bytes]:
        """Forward a DynamoDB read to the replay endpoint, on this thread's kept-alive connection."""
        for attempt in (1, 2):
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = self.local.connection = http.client.HTTPConnection(self.reads_host, self.reads_port)
            try:
                connection.request(
                    "POST", "/", body, {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"}
                )
                response = connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                self.local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", required=True, help="the replay endpoint's URL (DynamoDB reads go there)")
    parser.add_argument("--dynamodb-ms", type=float, default=8.0)
    parser.add_argument("--s3-ms", type=float, default=30.0)
    parser.add_argument("--delete-objects-ms", type=float, default=500.0)
    args = parser.parse_args(argv)
    server = StandIn(args.reads, args.dynamodb_ms, args.s3_ms, args.delete_objects_ms)
    print(json.dumps({"endpoint_url": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
