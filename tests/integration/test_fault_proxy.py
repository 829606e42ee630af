"""The fault-injecting proxy: every fault is seen by boto3, counts are exact, state stays truthful."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import fault_proxy
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from fault_proxy import FaultPlan, FaultProxy, FaultRule
from support.local_http import RecordedConnection, recorded_connections

TABLE = "proxy-jobs"
BUCKET = "proxy-audio"


def client(service: str, url: str, attempts: int = 1) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts}, connect_timeout=5, read_timeout=30)
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", config=config)


def error_code(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def resources(aws) -> str:
    """A table and a bucket created directly on moto (not through the proxy, so they are not counted)."""
    dynamodb = client("dynamodb", aws.endpoint_url)
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client("s3", aws.endpoint_url).create_bucket(Bucket=BUCKET)
    return aws.endpoint_url


def put_requests(count: int, prefix: str = "job") -> list[dict[str, Any]]:
    return [{"PutRequest": {"Item": {"job_id": {"S": f"{prefix}-{i:03d}"}}}} for i in range(count)]


def stored_ids(url: str) -> set[str]:
    return {item["job_id"]["S"] for item in client("dynamodb", url).scan(TableName=TABLE)["Items"]}


def stored_keys(url: str) -> set[str]:
    return {obj["Key"] for obj in client("s3", url).list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_clean_proxy_forwards_everything_and_counts_each_operation(resources: str) -> None:
    with FaultProxy(resources) as proxy:
        dynamodb, s3 = client("dynamodb", proxy.url), client("s3", proxy.url)
        dynamodb.put_item(TableName=TABLE, Item={"job_id": {"S": "a"}, "status": {"S": "failed"}})
        dynamodb.batch_write_item(RequestItems={TABLE: put_requests(25)})
        assert len(dynamodb.scan(TableName=TABLE)["Items"]) == 26
        s3.put_object(Bucket=BUCKET, Key="audio_upload/u/a b.3gp_encrypted", Body=b"\x00\x01secret")
        assert s3.get_object(Bucket=BUCKET, Key="audio_upload/u/a b.3gp_encrypted")["Body"].read() == b"\x00\x01secret"
        assert s3.head_object(Bucket=BUCKET, Key="audio_upload/u/a b.3gp_encrypted")["ContentLength"] == 8
        assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1
        deleted = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "audio_upload/u/a b.3gp_encrypted"}]})
        assert [d["Key"] for d in deleted["Deleted"]] == ["audio_upload/u/a b.3gp_encrypted"]

    assert dict(proxy.counts) == {
        "PutItem": 1,
        "BatchWriteItem": 1,
        "Scan": 1,
        "PutObject": 1,
        "GetObject": 1,
        "HeadObject": 1,
        "ListObjectsV2": 1,
        "DeleteObjects": 1,
    }
    assert proxy.faults == {}
    assert proxy.batch_sizes == {"BatchWriteItem": [25], "DeleteObjects": [1]}
    assert proxy.bytes_in > 0 and proxy.bytes_out > 0
    assert stored_keys(resources) == set()


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("throttling", "ThrottlingException", 400),
        ("provisioned_throughput", "ProvisionedThroughputExceededException", 400),
        ("http_500", "InternalFailure", 500),
        ("http_503", "ServiceUnavailableException", 503),
    ],
)
def test_dynamodb_faults_reach_boto3_as_aws_sends_them(resources: str, fault: str, code: str, status: int) -> None:
    plan = FaultPlan([FaultRule("PutItem", fault, first=2)])
    with FaultProxy(resources, plan=plan) as proxy:
        once = client("dynamodb", proxy.url, attempts=1)
        assert error_code(once.put_item, TableName=TABLE, Item={"job_id": {"S": "x"}}) == (code, status)
        # The second request is faulted too, the third goes through: boto3's retry recovers.
        patient = client("dynamodb", proxy.url, attempts=3)
        patient.put_item(TableName=TABLE, Item={"job_id": {"S": "x"}})
        assert once.scan(TableName=TABLE)["Count"] == 1
    assert proxy.counts == {"PutItem": 3, "Scan": 1}
    assert proxy.faults == {f"PutItem:{fault}": 2}


def test_unprocessed_items_hold_back_exactly_the_second_half(resources: str) -> None:
    plan = FaultPlan([FaultRule("BatchWriteItem", "unprocessed", every=1, limit=2)])
    with FaultProxy(resources, plan=plan) as proxy:
        dynamodb = client("dynamodb", proxy.url)
        requests = put_requests(25)
        first = dynamodb.batch_write_item(RequestItems={TABLE: requests})
        left = first["UnprocessedItems"][TABLE]
        assert left == requests[12:]
        # Only what the proxy forwarded was written.
        assert stored_ids(resources) == {r["PutRequest"]["Item"]["job_id"]["S"] for r in requests[:12]}

        rounds = 1
        pending = first["UnprocessedItems"]
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending)["UnprocessedItems"]
            rounds += 1
    assert rounds == 3  # 25 -> 13 left -> 7 left (limit reached) -> all written
    assert stored_ids(resources) == {f"job-{i:03d}" for i in range(25)}
    assert proxy.counts["BatchWriteItem"] == 3
    assert proxy.items == {"BatchWriteItem:forwarded": 12 + 6, "BatchWriteItem:unprocessed": 13 + 7}
    assert proxy.batch_sizes["BatchWriteItem"] == [25, 13, 7]


def test_single_item_batch_comes_back_whole_without_reaching_moto(resources: str) -> None:
    plan = FaultPlan([FaultRule("BatchWriteItem", "unprocessed", first=1)])
    with FaultProxy(resources, plan=plan) as proxy:
        answer = client("dynamodb", proxy.url).batch_write_item(RequestItems={TABLE: put_requests(1)})
    assert answer["UnprocessedItems"] == {TABLE: put_requests(1)}
    assert stored_ids(resources) == set()


def put_objects(url: str, count: int) -> list[str]:
    s3 = client("s3", url)
    keys = [f"audio_upload/user/{i:03d}.3gp_encrypted" for i in range(count)]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    return keys


def test_s3_slowdown_and_5xx_on_delete_objects_delete_nothing(resources: str) -> None:
    keys = put_objects(resources, 4)
    plan = FaultPlan(
        [
            FaultRule("DeleteObjects", "slowdown", first=1),
            FaultRule("DeleteObjects", "http_500", every=2, limit=1),
            FaultRule("GetObject", "http_503", first=1),
        ]
    )
    with FaultProxy(resources, plan=plan) as proxy:
        s3 = client("s3", proxy.url)
        batch = {"Objects": [{"Key": key} for key in keys]}
        assert error_code(s3.delete_objects, Bucket=BUCKET, Delete=batch) == ("SlowDown", 503)
        assert stored_keys(resources) == set(keys)
        assert error_code(s3.delete_objects, Bucket=BUCKET, Delete=batch) == ("InternalError", 500)
        assert error_code(s3.get_object, Bucket=BUCKET, Key=keys[0]) == ("ServiceUnavailable", 503)
        assert stored_keys(resources) == set(keys)
        assert len(s3.delete_objects(Bucket=BUCKET, Delete=batch)["Deleted"]) == 4
    assert stored_keys(resources) == set()
    assert proxy.faults == {"DeleteObjects:slowdown": 1, "DeleteObjects:http_500": 1, "GetObject:http_503": 1}
    assert proxy.counts == {"DeleteObjects": 3, "GetObject": 1}


def test_per_key_delete_errors_keep_exactly_the_failed_keys(resources: str) -> None:
    keys = put_objects(resources, 7)
    plan = FaultPlan([FaultRule("DeleteObjects", "delete_errors", first=1, key_error_every=3)])
    with FaultProxy(resources, plan=plan) as proxy:
        answer = client("s3", proxy.url).delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys]})
    failed = [error["Key"] for error in answer["Errors"]]
    assert failed == [keys[2], keys[5]]
    assert {error["Code"] for error in answer["Errors"]} == {"InternalError"}
    assert sorted(d["Key"] for d in answer["Deleted"]) == sorted(set(keys) - set(failed))
    assert stored_keys(resources) == set(failed)
    assert proxy.items == {"DeleteObjects:key_errors": 2, "DeleteObjects:forwarded": 5}


def faulted_pattern(url: str, seed: int) -> list[bool]:
    plan = FaultPlan([FaultRule("GetItem", "throttling", rate=0.5)], seed=seed)
    pattern = []
    with FaultProxy(url, plan=plan) as proxy:
        dynamodb = client("dynamodb", proxy.url)
        for _ in range(16):
            try:
                dynamodb.get_item(TableName=TABLE, Key={"job_id": {"S": "none"}})
                pattern.append(False)
            except ClientError:
                pattern.append(True)
    assert proxy.faults["GetItem:throttling"] == sum(pattern)
    return pattern


def test_rate_faults_are_reproducible_from_the_seed(resources: str) -> None:
    first = faulted_pattern(resources, seed=1)
    assert faulted_pattern(resources, seed=1) == first
    assert faulted_pattern(resources, seed=2) != first
    assert 0 < sum(first) < 16


def test_dead_endpoint_drops_requests_after_n_and_refuses_connections(resources: str) -> None:
    with FaultProxy(resources, plan=FaultPlan(die_after=3)) as proxy:
        dynamodb = client("dynamodb", proxy.url)
        for index in range(3):
            dynamodb.put_item(TableName=TABLE, Item={"job_id": {"S": f"alive-{index}"}})
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            dynamodb.put_item(TableName=TABLE, Item={"job_id": {"S": "dead"}})
        assert proxy.dead
        fresh = client("dynamodb", proxy.url)
        with pytest.raises(EndpointConnectionError):
            fresh.put_item(TableName=TABLE, Item={"job_id": {"S": "dead"}})
    assert proxy.counts == {"PutItem": 3}
    assert proxy.refused == 1
    assert stored_ids(resources) == {"alive-0", "alive-1", "alive-2"}


def test_die_on_demand_from_a_test(resources: str) -> None:
    with FaultProxy(resources) as proxy:
        s3 = client("s3", proxy.url)
        s3.list_objects_v2(Bucket=BUCKET)
        proxy.die()
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            s3.list_objects_v2(Bucket=BUCKET)
    assert proxy.counts == {"ListObjectsV2": 1}


def whole_responses(connections: list[RecordedConnection]) -> list[tuple[bytes, bytes]]:
    """(status line, body) of each write: every write must be one complete response, headers and body."""
    responses = []
    for connection in connections:
        for write in connection.writes:
            head, separator, body = write.partition(b"\r\n\r\n")
            assert separator, f"a write without the end of the headers: {write[:200]!r}"
            length = next(
                line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            )
            assert len(body) == int(length), f"a write with part of its body: {write[:200]!r}"
            responses.append((head.split(b"\r\n", 1)[0], body))
    return responses


def test_answers_go_out_with_tcp_nodelay_each_in_one_write(resources: str) -> None:
    """Nagle's algorithm off, and headers and body in one write: no delayed-ACK wait a real endpoint would not have."""
    plan = FaultPlan([FaultRule("ListTables", "throttling", first=1)])
    with recorded_connections(fault_proxy.ProxyHandler) as connections, FaultProxy(resources, plan=plan) as proxy:
        dynamodb = client("dynamodb", proxy.url)
        assert error_code(dynamodb.list_tables) == ("ThrottlingException", 400)  # the proxy's own answer
        assert TABLE in dynamodb.list_tables()["TableNames"]  # moto's answer, relayed
    assert connections and all(connection.nodelay for connection in connections)
    statuses = [status for status, _ in whole_responses(connections)]
    assert statuses == [b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 200 OK"]


def test_bad_rules_are_refused_with_one_line() -> None:
    with pytest.raises(fault_proxy.PlanError, match="unprocessed fault applies to BatchWriteItem only"):
        FaultRule("PutItem", "unprocessed", every=1)
    with pytest.raises(fault_proxy.PlanError, match="never fires"):
        FaultRule("PutItem", "throttling")
    with pytest.raises(fault_proxy.PlanError, match="unknown fault"):
        FaultRule.parse("PutItem:explode:every=1")
    assert FaultRule.parse("DeleteObjects:slowdown:rate=0.25,limit=3") == FaultRule(
        "DeleteObjects", "slowdown", rate=0.25, limit=3
    )


def test_cli_serves_until_terminated_and_reports_counts(resources: str) -> None:
    tool = Path(fault_proxy.__file__)
    command = [sys.executable, str(tool), "--upstream", resources, "--fault", "ListTables:throttling:first=1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        dynamodb = client("dynamodb", url)
        assert error_code(dynamodb.list_tables) == ("ThrottlingException", 400)
        assert TABLE in dynamodb.list_tables()["TableNames"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    summary = json.loads(stderr.strip().splitlines()[-1])
    assert summary["counts"] == {"ListTables": 2}
    assert summary["faults"] == {"ListTables:throttling": 1}

    bad = subprocess.run([*command[:4], "--fault", "nonsense"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "OPERATION:FAULT" in bad.stderr


VICTIM = """
import sys, boto3
from botocore.config import Config
config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
dynamodb = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1", config=config)
for index in range(10):
    dynamodb.put_item(TableName=sys.argv[2], Item={"job_id": {"S": f"put-{index}"}})
    print(index, flush=True)
"""


def test_kill_at_k_lets_request_k_land_then_sigkills_its_sender_before_the_answer(resources: str) -> None:
    with FaultProxy(resources, plan=FaultPlan(kill_at=4)) as proxy:
        victim = subprocess.Popen(
            [sys.executable, "-c", VICTIM, proxy.url, TABLE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        proxy.victim_pid = victim.pid
        stdout, _ = victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert proxy.killed and not proxy.dead
    assert proxy.counts == {"PutItem": 4} and proxy.served == 4
    # Request 4 reached moto, but its sender never saw the answer (it printed only 0..2).
    assert stdout.split() == ["0", "1", "2"]
    assert stored_ids(resources) == {f"put-{index}" for index in range(4)}


def test_requests_after_the_kill_point_never_reach_the_endpoint(resources: str) -> None:
    with FaultProxy(resources, plan=FaultPlan(kill_at=1)) as proxy:
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        proxy.victim_pid = sleeper.pid
        dynamodb = client("dynamodb", proxy.url)
        for job_id in ("landed", "held"):
            with pytest.raises(ConnectionClosedError):
                dynamodb.put_item(TableName=TABLE, Item={"job_id": {"S": job_id}})
        assert sleeper.wait(timeout=30) == -signal.SIGKILL
    assert proxy.killed and proxy.counts == {"PutItem": 1} and proxy.refused == 1
    assert stored_ids(resources) == {"landed"}


def test_bad_kill_and_die_points_are_refused_with_one_line() -> None:
    with pytest.raises(fault_proxy.PlanError, match="kill_at must be 1 or more"):
        FaultPlan(kill_at=0)
    with pytest.raises(fault_proxy.PlanError, match="die_after must be 0 or more"):
        FaultPlan(die_after=-1)
