"""S3 DeleteObjects batches: at most 1,000 keys each, every key deleted or reported."""

from __future__ import annotations

import threading
import time

from ansible.module_utils.panzoto.cleanup.batches import S3_DELETE_BATCH, delete_objects, delete_requests_needed
from cleanup_fixtures import client_error


class FakeS3:
    """DeleteObjects that fails chosen keys per call, recording every request (and how many ran at once)."""

    def __init__(self, key_errors=None, request_errors=None, service_time: float = 0.0, gather: int = 0) -> None:
        self.requests: list[list[str]] = []
        self.key_errors = key_errors or (lambda call, key: None)
        self.request_errors = request_errors or (lambda call: None)
        self.service_time, self.in_flight, self.most_in_flight = service_time, 0, 0
        self.lock = threading.Lock()
        # The first `gather` calls answer only once all of them are in flight (whatever the machine's load), so a
        # client that sends fewer at once fails on the barrier's timeout instead of passing by luck.
        self.gather = gather
        self.gathered = threading.Barrier(gather) if gather else None

    def delete_objects(self, Bucket: str, Delete: dict) -> dict:
        keys = [entry["Key"] for entry in Delete["Objects"]]
        assert len(keys) <= S3_DELETE_BATCH and Delete["Quiet"] is True
        with self.lock:
            call = len(self.requests)
            self.requests.append(keys)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if call < self.gather:
            self.gathered.wait(timeout=10)
        time.sleep(self.service_time)
        with self.lock:
            self.in_flight -= 1
        code = self.request_errors(call)
        if code:
            raise client_error(code, "DeleteObjects")
        errors = [{"Key": key, "Code": code} for key in keys if (code := self.key_errors(call, key))]
        return {"Errors": errors} if errors else {}


def test_keys_are_deleted_in_batches_of_at_most_1000_once_each():
    s3 = FakeS3()
    keys = [f"k{index:05d}" for index in range(2500)]
    outcome = delete_objects(s3, "b", keys + keys[:10], sleep=lambda _: None)
    assert sorted(len(batch) for batch in s3.requests) == [500, 1000, 1000]
    assert sorted(outcome.deleted) == keys and outcome.errors == [] and outcome.requests == 3
    assert delete_requests_needed(2500) == 3 and delete_requests_needed(0) == 0 and delete_requests_needed(1000) == 1


def test_retryable_key_errors_are_retried_and_others_reported():
    def key_errors(call: int, key: str) -> str | None:
        if key == "denied":
            return "AccessDenied"
        if key.startswith("slow") and call == 0:
            return "SlowDown"
        return None

    s3 = FakeS3(key_errors)
    outcome = delete_objects(s3, "b", ["ok", "slow1", "slow2", "denied"], sleep=lambda _: None)
    assert s3.requests == [["ok", "slow1", "slow2", "denied"], ["slow1", "slow2"]]
    assert sorted(outcome.deleted) == ["ok", "slow1", "slow2"]
    assert [(error["key"], error["code"]) for error in outcome.errors] == [("denied", "AccessDenied")]


def test_keys_still_failing_after_every_round_are_reported_not_lost():
    s3 = FakeS3(request_errors=lambda call: "SlowDown")
    outcome = delete_objects(s3, "b", ["a", "b"], rounds=3, sleep=lambda _: None)
    assert len(s3.requests) == 3 and outcome.deleted == []
    assert sorted(error["key"] for error in outcome.errors) == ["a", "b"]


def test_a_request_refused_outright_is_reported_for_its_keys_and_not_retried():
    s3 = FakeS3(request_errors=lambda call: "NoSuchBucket")
    outcome = delete_objects(s3, "b", ["a", "b"], sleep=lambda _: None)
    assert len(s3.requests) == 1
    assert {(error["key"], error["code"]) for error in outcome.errors} == {("a", "NoSuchBucket"), ("b", "NoSuchBucket")}
    assert outcome.errors[0]["message"] == "NoSuchBucket: NoSuchBucket message"


def test_batches_are_sent_concurrently_and_the_outcome_keeps_their_order():
    s3 = FakeS3(key_errors=lambda call, key: "AccessDenied" if key.endswith("7") else None, service_time=0.01, gather=4)
    keys = [f"k{index:05d}" for index in range(6000)]
    outcome = delete_objects(s3, "b", keys, sleep=lambda _: None, workers=4)
    assert s3.most_in_flight == 4 and outcome.requests == 6
    assert outcome.deleted == [key for key in keys if not key.endswith("7")], "batch order, whatever answered first"
    assert [error["key"] for error in outcome.errors] == [key for key in keys if key.endswith("7")]


def test_one_worker_sends_one_batch_at_a_time():
    s3 = FakeS3(service_time=0.01)
    delete_objects(s3, "b", [f"k{index}" for index in range(3000)], sleep=lambda _: None, workers=1)
    assert s3.most_in_flight == 1 and len(s3.requests) == 3
