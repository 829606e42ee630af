"""The typed DynamoDB JSON reader gives exactly what botocore's parser and TypeDeserializer give.

Responses are served to a real botocore client in-process (a before-send handler
answers with raw bytes), so each page goes through botocore's endpoint, its
retry handler, its parser and the reader's before-parse hook as on the wire.
"""

from __future__ import annotations

import base64
import json
import threading
from decimal import Decimal, Inexact

import boto3
import botocore.exceptions
import pytest
from ansible.module_utils.panzoto import dynamodb_json as reader
from ansible.module_utils.panzoto.scan import RequestCounter, ScanStats, query_items, scan_items
from boto3.dynamodb.types import Binary, TypeDeserializer
from botocore.awsrequest import AWSResponse
from botocore.config import Config


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Every attribute type DynamoDB returns, with the awkward cases: nesting, unicode, 38-digit and tiny
# numbers, negative exponents, empty strings/binaries/lists/maps, attribute names that are type tags.
EVERY_TYPE = {
    "job_id": {"S": "job-1"},
    "empty_s": {"S": ""},
    "unicode_s": {"S": 'naïve 日本語 🎧 \u0000 "quoted" \\ back'},
    "n_int": {"N": "42"},
    "n_negative": {"N": "-0.000123"},
    "n_big": {"N": "12345678901234567890123456789012345678"},
    "n_small": {"N": "1E-130"},
    "n_exp": {"N": "9.9E+125"},
    "b": {"B": b64(b"\x00\xffbinary\x80")},
    "b_empty": {"B": ""},
    "ss": {"SS": ["a", "b", "ü"]},
    "ns": {"NS": ["1", "2.50", "-3E+2"]},
    "bs": {"BS": [b64(b"x"), b64(b"\x00\x01")]},
    "null": {"NULL": True},
    "bool_true": {"BOOL": True},
    "bool_false": {"BOOL": False},
    "l": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}, {"L": []}, {"M": {}}, {"SS": ["z"]}]},
    "l_empty": {"L": []},
    "m_empty": {"M": {}},
    "m": {
        "M": {
            "S": {"S": "a map key named like a type tag"},
            "N": {"M": {"deeper": {"L": [{"B": b64(b"deep")}, {"BOOL": False}]}}},
            "ünï": {"NS": ["0"]},
            "bs": {"BS": [b64(b"")]},
        }
    },
}
KEY = {"job_id": {"S": "job-1"}, "blob": {"B": b64(b"\x01key")}}


def page_body(items: list[dict], last_key: dict | None = None, **extra) -> bytes:
    body = {"Items": items, "Count": len(items), "ScannedCount": len(items) + 1, **extra}
    if last_key:
        body["LastEvaluatedKey"] = last_key
    return json.dumps(body).encode()


class RawBody:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs):
        yield self.body


class Answers:
    """Answers each request of a client with the next (status, body): no socket, everything else real."""

    def __init__(self, answers: list[tuple[int, bytes]]) -> None:
        self.answers = list(answers)
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, request=None, **kwargs):
        with self.lock:
            self.requests.append(json.loads(request.body))
            status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        headers = {"x-amzn-requestid": "req-1", "content-type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, status, headers, RawBody(body))


def make_client(answers: Answers, max_attempts: int = 3):
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    config = Config(retries={"mode": "standard", "max_attempts": max_attempts})
    client = session.client("dynamodb", endpoint_url="http://127.0.0.1:9", config=config)
    client.meta.events.register("before-send", answers)
    return client


def botocore_way(body: bytes, operation: str = "Scan") -> dict:
    """The page as botocore's client parses it without the reader, then TypeDeserializer per attribute."""
    client = make_client(Answers([(200, body)]))
    page = getattr(client, operation.lower())(TableName="t")
    deserialize = TypeDeserializer().deserialize
    page["Items"] = [{k: deserialize(v) for k, v in raw.items()} for raw in page.get("Items", [])]
    return page


def test_every_attribute_type_reads_identically_to_botocore_and_type_deserializer() -> None:
    body = page_body([EVERY_TYPE, {"job_id": {"S": "job-2"}}], KEY)
    expected = botocore_way(body)
    items, rest = reader.split_page(body)
    assert items == expected["Items"]
    # Same Python types too (Binary, not bytes; Decimal; sets), not just equal values.
    assert [{k: type(v) for k, v in i.items()} for i in items] == [
        {k: type(v) for k, v in i.items()} for i in expected["Items"]
    ]
    assert isinstance(items[0]["b"], Binary) and items[0]["n_big"] == Decimal("12345678901234567890123456789012345678")
    assert items[0]["m"]["N"]["deeper"][0] == Binary(b"deep")
    assert "Items" not in json.loads(rest) and json.loads(rest)["Count"] == 2


@pytest.mark.parametrize("operation", ["Scan", "Query"])
def test_a_client_with_the_reader_returns_the_same_page_as_without(operation: str) -> None:
    body = page_body([EVERY_TYPE] * 3, KEY, ConsumedCapacity={"TableName": "t", "CapacityUnits": 1.5})
    expected = botocore_way(body, operation)
    client = make_client(Answers([(200, body)]))
    reader.install(client)
    with reader.reading():
        page = getattr(client, operation.lower())(TableName="t")
    assert page.pop(reader.DECODED_ITEMS) == expected.pop("Items")
    assert "Items" not in page
    # Everything else botocore parsed as always: the key (its blob decoded), counts, capacity, metadata.
    assert page["LastEvaluatedKey"] == {"job_id": {"S": "job-1"}, "blob": {"B": b"\x01key"}}
    assert page == expected


def test_the_reader_only_acts_inside_reading_so_other_calls_of_the_client_are_untouched() -> None:
    body = page_body([EVERY_TYPE])
    client = make_client(Answers([(200, body)]))
    reader.install(client)
    reader.install(client)  # idempotent
    page = client.scan(TableName="t")
    assert reader.DECODED_ITEMS not in page and page["Items"][0]["b"] == {"B": b"\x00\xffbinary\x80"}


@pytest.mark.parametrize(
    "odd_item",
    [
        {"x": {"S": None}},  # a null value
        {"x": {"S": "a", "N": "1"}},  # two tags
        {"x": {"XX": "1"}},  # a tag DynamoDB does not have
        {"x": {"L": [None]}},
        {"x": {"B": 5}},
    ],
)
def test_a_page_the_reader_does_not_take_goes_through_botocore_unchanged(odd_item: dict) -> None:
    body = page_body([{"job_id": {"S": "j"}}, odd_item])
    with pytest.raises((reader.Unreadable, TypeError, ValueError, AttributeError)):
        reader.split_page(body)
    client = make_client(Answers([(200, body)]))
    plain_client = make_client(Answers([(200, body)]))
    reader.install(client)
    with reader.reading():
        page = outcome(lambda: client.scan(TableName="t"))
    assert page == outcome(lambda: plain_client.scan(TableName="t"))  # the same page, or the same error
    assert reader.DECODED_ITEMS not in page[1]


def outcome(call) -> tuple:
    try:
        return ("page", call())
    except Exception as exc:
        return ("error", {"type": type(exc), "message": str(exc)})


def test_scan_items_through_the_reader_equals_the_botocore_way_and_counts_every_attempt() -> None:
    pages = [page_body([EVERY_TYPE, {"job_id": {"S": f"j{i}"}}], KEY if i < 2 else None) for i in range(3)]
    throttled = (400, json.dumps({"__type": "ProvisionedThroughputExceededException", "message": "slow"}).encode())
    server_error = (500, b'{"__type": "InternalServerError", "message": "oops"}')
    answers = Answers([(200, pages[0]), throttled, (200, pages[1]), server_error, (200, pages[2])])
    client = make_client(answers)
    client.meta.events.register("needs-retry", lambda **kwargs: None)  # keep botocore's own retry decision
    counter = RequestCounter().attach(client)
    stats = ScanStats()
    items = list(scan_items(client, "t", ["job_id", "status"], stats=stats))
    expected = [item for body in pages for item in botocore_way(body)["Items"]]
    assert items == expected
    assert stats.pages == 3 and stats.items == 6
    # The throttled and failed attempts were retried by botocore and counted, as before.
    assert counter.counts == {"Scan": 5}
    assert answers.requests[2]["ExclusiveStartKey"] == {"job_id": {"S": "job-1"}, "blob": {"B": b64(b"\x01key")}}
    assert answers.requests[0]["ProjectionExpression"] == "#a0, #a1"


def test_errors_are_raised_and_classified_as_without_the_reader() -> None:
    missing = (400, b'{"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "message": "no"}')
    client = make_client(Answers([missing]))
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        list(scan_items(client, "t", ["job_id"]))
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    throttled = (400, b'{"__type": "ThrottlingException", "message": "slow down"}')
    client, plain_client = make_client(Answers([throttled]), 1), make_client(Answers([throttled]), 1)
    counter, plain_counter = RequestCounter().attach(client), RequestCounter().attach(plain_client)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        list(query_items(client, "t", "user-jobs-index", "user_id", ["u1"]))
    with pytest.raises(botocore.exceptions.ClientError) as plain:
        plain_client.query(TableName="t", KeyConditionExpression="#k = :v")
    assert caught.value.response["Error"] == plain.value.response["Error"]
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert counter.counts == {"Query": plain_counter.counts["Query"]} and counter.total > 1  # retried, as before


def test_a_number_dynamodb_could_not_hold_fails_as_type_deserializer_fails() -> None:
    body = page_body([{"n": {"N": "123456789012345678901234567890123456789"}}])  # 39 digits
    with pytest.raises(Inexact):
        botocore_way(body)
    client = make_client(Answers([(200, body)]))
    with pytest.raises(Inexact):
        list(scan_items(client, "t"))


# Texts of one value spelled differently: a Decimal keeps its spelling (exponent, sign of zero), so a memo
# keyed on the value rather than the text would hand one spelling for another.
NUMBER_TEXTS = ("0", "0.0", "-0", "0E+2", "1", "1.0", "1.00", "1E+1", "10", "1e1", "007", "-3.140", "1E-130")


def spelled(value) -> tuple:
    return type(value), str(value), value.as_tuple()


def test_numbers_read_again_are_the_decimals_type_deserializer_makes_spelling_and_all(monkeypatch) -> None:
    monkeypatch.setattr(reader, "_numbers", {})
    items = [{"n": {"N": text}, "ns": {"NS": [text, "5"]}, "l": {"L": [{"N": text}]}} for text in NUMBER_TEXTS]
    body = page_body(items * 3)  # read once, then from the memo
    expected = botocore_way(body)["Items"]
    decoded, _ = reader.split_page(body)
    assert [spelled(item["n"]) for item in decoded] == [spelled(item["n"]) for item in expected]
    assert [spelled(item["l"][0]) for item in decoded] == [spelled(item["l"][0]) for item in expected]
    assert [sorted(map(spelled, item["ns"])) for item in decoded] == [
        sorted(map(spelled, item["ns"])) for item in expected
    ]
    assert set(reader._numbers) == {*NUMBER_TEXTS, "5"}


def test_the_number_memo_stays_bounded_and_never_keeps_a_number_dynamodb_could_not_hold(monkeypatch) -> None:
    monkeypatch.setattr(reader, "_numbers", {})
    monkeypatch.setattr(reader, "NUMBER_MEMO_SIZE", 4)
    texts = [str(n) for n in range(10)] * 2
    decoded, _ = reader.split_page(page_body([{"n": {"N": text}} for text in texts]))
    assert [spelled(item["n"]) for item in decoded] == [spelled(Decimal(text)) for text in texts]
    assert len(reader._numbers) == 4
    too_long = page_body([{"n": {"N": "123456789012345678901234567890123456789"}}])  # 39 digits
    for _ in range(2):
        with pytest.raises(Inexact):
            reader.split_page(too_long)
    assert len(reader._numbers) == 4


def test_the_segment_threads_decode_one_page_at_a_time(monkeypatch) -> None:
    """A raw page from json.loads is about three decoded pages: no two exist at once, whatever the segments."""
    decoding, most = [0], [0]
    count_lock = threading.Lock()
    split_page = reader.split_page

    def counted(body: bytes):
        with count_lock:
            decoding[0] += 1
            most[0] = max(most[0], decoding[0])
        try:
            threading.Event().wait(0.01)  # long enough for the other segments' pages to arrive meanwhile
            return split_page(body)
        finally:
            with count_lock:
                decoding[0] -= 1

    monkeypatch.setattr(reader, "split_page", counted)
    body = page_body([{"job_id": {"S": "j"}, "n": {"N": "1"}}] * 5)
    client = make_client(Answers([(200, body)]))
    items = list(scan_items(client, "t", segments=4))
    assert len(items) == 4 * 5 and all(item["n"] == Decimal(1) for item in items)
    assert most[0] == 1
