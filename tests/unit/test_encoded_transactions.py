"""Transactions sent as the cleanup's own JSON (cleanup/encoded.py) are the requests botocore would send.

Each test sends the same elements twice through real boto3 clients, stopped at botocore's
`before-send` (after signing) with a scripted answer: once as a plain list through botocore's
serializer, once as the cleanup sends them (batches() and TransactWriter on a client with
send_encoded). Body, URL and headers must be equal, the signature included (the clock is fixed):
a body replaced after signing, or wrong in any value, fails here.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import botocore.auth
import pytest
from ansible.module_utils.panzoto.cleanup.batches import Abort
from ansible.module_utils.panzoto.cleanup.encoded import EncodedItems, send_encoded
from ansible.module_utils.panzoto.cleanup.plan import Planned, TableKey, group_of
from ansible.module_utils.panzoto.cleanup.transact import TransactWriter, batches, request_token
from ansible.module_utils.panzoto.cleanup.writes import WritePlan
from ansible.module_utils.panzoto.jobs import inspect_job
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from cleanup_fixtures import LEGACY, RULES, item

JOBS = TableKey("job_id")
DELETE = WritePlan("jobs", JOBS, "absent")
REQUEUE = WritePlan("jobs", JOBS, "requeued", reason=lambda planned: "requeued: fixed ✓", fresh_created_at=True)
BIG = Decimal("12345678901234567890.123456789012345678")  # 38 digits


def planned(job_id: str, **attributes) -> Planned:
    job = inspect_job(item(job_id, "failed", timedelta(days=9), error_message=LEGACY, **attributes), RULES)
    return Planned(job, group_of(job), None)


def every_type(job_id: str) -> Planned:
    """A job holding every attribute type a table can return, nested, with non-ASCII text."""
    return planned(
        job_id,
        retry_count=Decimal(3),
        big=BIG,
        negative=Decimal("-0.000001"),
        blob=b"\x00\xffbinary\n",
        tags={"a", "b", "ü"},
        sizes={Decimal(1), Decimal("2.5"), BIG},
        blobs={b"\x01", b"\x02\x03"},
        meta={"nested": {"deeper": [Decimal(1), "x", None, True, {"k": b"\x07"}]}, "empty": {}, "ok": False},
        history=[{"at": "2026-01-01", "by": "Zoë"}, [], [Decimal("-1e-130")]],
        note=None,
        flag=True,
        text='日本語 — "quoted" \\ back\tslash\u2028',
        **{"naïve name": "value"},
    )


JOBS_OF_EVERY_KIND = [every_type("j-ü-1"), planned("j2"), planned("j3", completed_at="2026-01-02"), every_type("j4")]


class Endpoint:
    """botocore's `before-send`: records each signed request and answers with the next scripted answer."""

    def __init__(self, *answers: tuple[int, dict]) -> None:
        self.answers = list(answers)
        self.sent: list = []
        self.lock = threading.Lock()

    def __call__(self, request, **kwargs) -> AWSResponse:
        with self.lock:
            self.sent.append(request)
            status, body = self.answers.pop(0) if self.answers else (200, {})
        raw = _Raw(json.dumps(body).encode())
        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.0"}, raw)


class _Raw:
    def __init__(self, content: bytes) -> None:
        self.content = content

    def stream(self, **kwargs):
        yield self.content


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """The same instant for every signature, so two requests with the same bytes have the same Authorization."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC))
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda _seconds: None)  # botocore's retry backoff


def client(endpoint: Endpoint, encoded: bool, endpoint_url: str | None = "http://127.0.0.1:9"):
    dynamodb = boto3.session.Session().client(
        "dynamodb",
        region_name="eu-west-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(parameter_validation=False, retries={"mode": "standard", "max_attempts": 3}),
    )
    if encoded:
        send_encoded(dynamodb)
    dynamodb.meta.events.register("before-send", endpoint)
    return dynamodb


def writer(transactions, run_id: str = "run-1") -> TransactWriter:
    return TransactWriter(None, DELETE, Abort(), run_id, transactions=transactions, sleep=lambda _seconds: None)


def sent_as_botocore_would(batch: list, token: str, endpoint_url: str | None = "http://127.0.0.1:9", answers=()):
    """The request botocore's own serializer makes of the batch's elements, as a plain list (each attempt's)."""
    endpoint = Endpoint(*answers)
    client(endpoint, encoded=False, endpoint_url=endpoint_url).transact_write_items(
        TransactItems=[element for _, element, _ in batch], ClientRequestToken=token
    )
    if answers:
        return endpoint.sent
    (request,) = endpoint.sent
    return request


def assert_same_request(request, expected) -> None:
    assert json.loads(request.body) == json.loads(expected.body)  # the same JSON value
    assert request.body == expected.body  # and the same bytes
    assert request.url == expected.url and request.method == expected.method
    # Content-Length, X-Amz-Target, Authorization...: all but the call's random id, which is not signed.
    headers, expected_headers = dict(request.headers), dict(expected.headers)
    assert headers.pop("amz-sdk-invocation-id") != expected_headers.pop("amz-sdk-invocation-id")
    assert headers == expected_headers
    assert request.headers["Authorization"].startswith(b"AWS4-HMAC-SHA256 ")


def token_of(request) -> str:
    return json.loads(request.body)["ClientRequestToken"]


@pytest.mark.parametrize("plan", [DELETE, REQUEUE], ids=["delete", "requeue"])
def test_the_body_sent_is_botocores_for_elements_of_every_type(plan):
    (batch,) = batches(plan, JOBS_OF_EVERY_KIND, 100)
    endpoint = Endpoint()
    outcomes = TransactWriter(None, plan, Abort(), "run-1", transactions=client(endpoint, encoded=True)).send(batch)
    assert outcomes == [("changed", None, None)] * len(JOBS_OF_EVERY_KIND)
    (request,) = endpoint.sent
    sent = json.loads(request.body)["TransactItems"]
    assert len(sent) == len(JOBS_OF_EVERY_KIND) and sent != [], "the elements, not the stub"
    assert_same_request(request, sent_as_botocore_would(batch, token_of(request)))


def test_the_elements_carry_every_type_to_the_wire():
    (batch,) = batches(DELETE, [every_type("j1")], 100)
    endpoint = Endpoint()
    writer(client(endpoint, encoded=True)).send(batch)
    values = json.loads(endpoint.sent[0].body)["TransactItems"][0]["Delete"]["ExpressionAttributeValues"].values()
    kinds = {next(iter(value)) for value in values}
    assert {"S", "N", "B", "SS", "NS", "BS", "M", "L", "BOOL"} <= kinds
    assert {"N": str(BIG)} in values and {"B": "AP9iaW5hcnkK"} in values


def test_a_retried_request_is_sent_again_signed_with_the_same_body():
    (batch,) = batches(DELETE, JOBS_OF_EVERY_KIND, 100)
    answers = ((500, {"__type": "InternalServerError", "message": "try again"}), (200, {}))
    endpoint = Endpoint(*answers)
    assert writer(client(endpoint, encoded=True)).send(batch) == [("changed", None, None)] * len(batch)
    assert len(endpoint.sent) == 2
    expected = sent_as_botocore_would(batch, token_of(endpoint.sent[0]), answers=answers)
    for request, botocores in zip(endpoint.sent, expected, strict=True):
        assert_same_request(request, botocores)  # each attempt signed anew (amz-sdk-request: attempt=2)


def test_a_cancellation_is_parsed_by_botocore_as_before():
    (batch,) = batches(DELETE, JOBS_OF_EVERY_KIND[:3], 100)
    current = {"job_id": {"S": "j2"}, "status": {"S": "pending"}}
    cancelled = {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": "Transaction cancelled",
        "CancellationReasons": [
            {"Code": "None"},
            {"Code": "ConditionalCheckFailed", "Item": current},
            {"Code": "None"},
        ],
    }
    endpoint = Endpoint((400, cancelled), (200, {}))
    outcomes = writer(client(endpoint, encoded=True)).send(batch)
    assert [outcome for outcome, _, _ in outcomes] == ["changed", "skipped", "changed"]
    assert "status is now 'pending'" in outcomes[1][1]
    first, second = endpoint.sent
    assert [len(json.loads(request.body)["TransactItems"]) for request in endpoint.sent] == [3, 2]
    assert token_of(first) != token_of(second)
    resent = [entry for index, entry in enumerate(batch) if index != 1]
    assert_same_request(second, sent_as_botocore_would(resent, token_of(second)))


def test_threads_sending_at_once_each_send_their_own_body():
    jobs = [every_type(f"j{index:03d}") if index % 3 == 0 else planned(f"j{index:03d}") for index in range(80)]
    parts = batches(DELETE, jobs, 5)
    endpoint = Endpoint()
    w = writer(client(endpoint, encoded=True))
    threads = [threading.Thread(target=lambda part=part: [w.send(part) for _ in range(3)]) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(endpoint.sent) == 3 * len(parts)
    expected = {}
    for part in parts:
        encoded = ", ".join(text for _, _, text in part)
        expected[request_token("run-1", encoded, 0)] = [element for _, element, _ in part]
    for request in endpoint.sent:
        body = json.loads(request.body)
        assert json.loads(json.dumps(expected[body["ClientRequestToken"]], default=_b64)) == body["TransactItems"]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def test_a_table_named_by_its_arn_resolves_to_the_same_endpoint():
    arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/jobs"
    plan = WritePlan(arn, JOBS, "absent")
    (batch,) = batches(plan, JOBS_OF_EVERY_KIND[:2], 100)
    endpoint = Endpoint()
    TransactWriter(None, plan, Abort(), "run-1", transactions=client(endpoint, encoded=True, endpoint_url=None)).send(
        batch
    )
    (request,) = endpoint.sent
    expected = sent_as_botocore_would(batch, token_of(request), endpoint_url=None)
    assert_same_request(request, expected)
    assert "111122223333" in request.url


def test_a_client_without_the_handlers_sends_encoded_items_as_the_list_they_are():
    (batch,) = batches(DELETE, JOBS_OF_EVERY_KIND, 100)
    endpoint = Endpoint()
    writer(client(endpoint, encoded=False)).send(batch)
    (request,) = endpoint.sent
    assert_same_request(request, sent_as_botocore_would(batch, token_of(request)))


def test_a_validating_client_with_the_handlers_validates_the_stub_and_sends_the_same():
    (batch,) = batches(DELETE, JOBS_OF_EVERY_KIND, 100)
    endpoint = Endpoint()
    validating = boto3.session.Session().client(
        "dynamodb",
        region_name="eu-west-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    send_encoded(validating)
    validating.meta.events.register("before-send", endpoint)
    assert writer(validating).send(batch) == [("changed", None, None)] * len(batch)
    (request,) = endpoint.sent
    assert_same_request(request, sent_as_botocore_would(batch, token_of(request)))


def test_encoded_items_are_the_elements():
    elements = [{"Delete": {"TableName": "jobs", "Key": {"job_id": {"S": "j1"}}}}]
    assert EncodedItems(elements, json.dumps(elements[0])) == elements
