"""The replay endpoint (tests/harness) answers like DynamoDB: every item once per scan, segments, pages, Query."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import boto3
import botocore.exceptions
import pytest
from ansible.module_utils.panzoto.jobs import JOB_ATTRIBUTES
from ansible.module_utils.panzoto.scan import ScanStats, query_items, scan_items
from boto3.dynamodb.types import TypeDeserializer
from replay_endpoint import EXTRA_ATTRIBUTES, ONE_MB, Handler, ReplayServer, ReplayTable
from support.local_http import recorded_connections

TABLE = "replayed-jobs"
JOBS = 5000  # more than one 1 MB page
TEMPLATES = 300  # fewer than the jobs, so the table cycles through its templates


@pytest.fixture(scope="module")
def endpoint() -> Iterator[ReplayServer]:
    server = ReplayServer(ReplayTable(TABLE, JOBS, seed=7, templates=TEMPLATES))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(endpoint: ReplayServer):
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    return session.client("dynamodb", endpoint_url=endpoint.endpoint_url)


def plain_scan(client, **request) -> tuple[list[dict], int]:
    """Every page through botocore's paginator and TypeDeserializer: the reference reading."""
    deserialize = TypeDeserializer().deserialize
    items, pages = [], 0
    for page in client.get_paginator("scan").paginate(TableName=TABLE, **request):
        pages += 1
        items += [{k: deserialize(v) for k, v in raw.items()} for raw in page["Items"]]
    return items, pages


def test_a_full_scan_reads_every_job_once_in_pages_of_at_most_1_mb(client, endpoint) -> None:
    items, pages = plain_scan(client)
    ids = [item["job_id"] for item in items]
    assert len(ids) == len(set(ids)) == JOBS
    assert pages > 1
    assert all(set(EXTRA_ATTRIBUTES) <= set(item) for item in items)
    sizes = [endpoint.table.templates[int(job[:8], 16) % TEMPLATES].size for job in ids]
    per_page = ONE_MB // max(sizes)
    assert pages <= -(-JOBS // per_page) + 1


@pytest.mark.parametrize("segments", [1, 3, 8])
def test_segments_and_limit_partition_the_table_and_the_typed_reader_reads_what_botocore_reads(
    client, segments: int
) -> None:
    stats = ScanStats()
    fast = list(scan_items(client, TABLE, JOB_ATTRIBUTES, segments, page_size=170, stats=stats))
    assert len({item["job_id"] for item in fast}) == len(fast) == JOBS
    assert stats.pages == sum(-(-len(range(s, JOBS, segments)) // 170) for s in range(segments))
    # Only the projected attributes came back, and the same values as botocore's reading.
    assert all(set(item) <= set(JOB_ATTRIBUTES) for item in fast)
    reference, _ = plain_scan(
        client,
        ProjectionExpression=", ".join(f"#a{i}" for i in range(len(JOB_ATTRIBUTES))),
        ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(JOB_ATTRIBUTES)},
    )
    assert sorted(fast, key=lambda item: item["job_id"]) == sorted(reference, key=lambda item: item["job_id"])


def test_query_on_the_user_index_returns_exactly_that_users_jobs(client, endpoint) -> None:
    everything, _ = plain_scan(client)
    user = endpoint.table.users[3]
    wanted = sorted(item["job_id"] for item in everything if item.get("user_id") == user)
    found = list(query_items(client, TABLE, "user-jobs-index", "user_id", [user], ["job_id", "user_id"], page_size=40))
    assert sorted(item["job_id"] for item in found) == wanted and len(wanted) > 40
    by_key = list(query_items(client, TABLE, None, "job_id", [wanted[0]]))
    assert [item["job_id"] for item in by_key] == [wanted[0]]


def test_what_it_cannot_answer_faithfully_is_refused(client) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.scan(TableName=TABLE, FilterExpression="attribute_exists(job_id)")
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.scan(TableName="no-such-table")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.delete_item(TableName=TABLE, Key={"job_id": {"S": "x"}})
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"


def test_describe_table_and_the_expected_counts(client, endpoint) -> None:
    table = client.describe_table(TableName=TABLE)["Table"]
    assert table["ItemCount"] == JOBS and table["GlobalSecondaryIndexes"][0]["IndexName"] == "user-jobs-index"
    expected = endpoint.table.expected()
    items, _ = plain_scan(client)
    raw = {}
    for item in items:
        raw[str(item.get("status"))] = raw.get(str(item.get("status")), 0) + 1
    assert raw == expected["by_status_raw"]
    assert sum(expected["by_status"].values()) + sum(expected["malformed_by_reason"].values()) == JOBS


def test_answers_go_out_with_tcp_nodelay_each_in_one_write(client) -> None:
    """Nagle's algorithm off, and headers and body in one write, for a small answer, an error and a 1 MB page."""
    with recorded_connections(Handler) as connections:
        client.describe_table(TableName=TABLE)
        with pytest.raises(botocore.exceptions.ClientError):
            client.describe_table(TableName="no-such-table")
        page = client.scan(TableName=TABLE)
    assert "LastEvaluatedKey" in page  # the page stopped at 1 MB: a large answer
    assert connections and all(connection.nodelay for connection in connections)
    writes = [write for connection in connections for write in connection.writes]
    assert [write.split(b"\r\n", 1)[0] for write in writes] == [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 200 OK",
    ]
    for write in writes:
        head, _, body = write.partition(b"\r\n\r\n")
        assert f"Content-Length: {len(body)}".encode() in head.split(b"\r\n")
