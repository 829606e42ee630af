"""A typed reader for DynamoDB's JSON: Scan and Query pages straight to plain Python values.

botocore parses every attribute of every item by walking the service model
(each `{"S": "..."}` wrapper is checked against the ten members of
AttributeValue), and boto3's TypeDeserializer then walks the result again.
At a million items that walk is most of an audit's CPU. This reader does the
same job in one pass over `json.loads`' output and gives exactly what
botocore's parser followed by TypeDeserializer gives: str for S, Decimal (in
DynamoDB's context) for N, Binary for B, sets for SS/NS/BS, dict/list for M/L,
None for NULL, the value for BOOL.

It is installed on a client with `install(client)` and only acts on calls made
inside `reading()` (the scan threads of panzoto.scan), so every other use of the
client is untouched. It only takes over the items of a successful response it
fully understands; anything else (an error status, a body that is not JSON,
an attribute type it does not know, a null where a value belongs) is left to
botocore's own parser untouched, so errors, retries and their classification
stay exactly as before.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

try:
    from boto3.dynamodb.types import DYNAMODB_CONTEXT, Binary
except ImportError:  # the modules report a missing boto3 themselves
    DYNAMODB_CONTEXT = Binary = None

# Where a page's decoded items travel in botocore's parsed response (no AWS field has this name).
DECODED_ITEMS = "PanzotoDecodedItems"
OPERATIONS = ("Scan", "Query")

_state = threading.local()
# Numbers decoded before, by their text. Most pages hold the same few numbers again and again (retry
# counts), a lookup costs an eighth of create_decimal, and a Decimal is immutable, so one may be shared.
# Bounded: past NUMBER_MEMO_SIZE texts, new ones are decoded every time.
NUMBER_MEMO_SIZE = 4096
_numbers: dict = {}
# One page decoded at a time in the process: json.loads' raw page is some three times the decoded
# items (11 MiB for a 1.5 MB body), and the segment threads would otherwise each hold one. Decoding
# holds the GIL anyway, so taking turns costs the scan nothing; the requests still overlap.
_decoding = threading.Lock()


class Unreadable(Exception):
    """A value this reader does not take on: botocore's parser reads the page instead."""


def _decimal(text: str):
    """A number's text as the Decimal TypeDeserializer makes (DynamoDB's context: raises where it does)."""
    number = _numbers.get(text)
    if number is None:
        number = DYNAMODB_CONTEXT.create_decimal(text)
        if len(_numbers) < NUMBER_MEMO_SIZE:
            _numbers[text] = number
    return number


def _number(value):
    if value.__class__ is not str:
        if value is None:
            raise Unreadable
        return DYNAMODB_CONTEXT.create_decimal(value)
    return _decimal(value)


def _read_tagged(tag: str, value):
    """One AttributeValue other than a plain string, given its type tag and JSON value."""
    if value is None:  # botocore drops a null member; TypeDeserializer then refuses the empty value
        raise Unreadable
    if tag == "S" or tag == "BOOL":
        return value
    if tag == "N":
        return _number(value)
    if tag == "M":
        if value.__class__ is not dict:
            raise Unreadable
        return read_item(value)
    if tag == "L":
        if value.__class__ is not list:
            raise Unreadable
        return [_read_value(element) for element in value]
    if tag == "NULL":
        return None
    if tag == "SS":
        if value.__class__ is not list:
            raise Unreadable
        return set(value)
    if tag == "NS":
        if value.__class__ is not list:
            raise Unreadable
        return {_number(element) for element in value}
    if tag == "B":
        if value.__class__ is not str:
            raise Unreadable
        return Binary(base64.b64decode(value))  # botocore's blob parser
    if tag == "BS":
        if value.__class__ is not list or any(element.__class__ is not str for element in value):
            raise Unreadable
        return {Binary(base64.b64decode(element)) for element in value}
    raise Unreadable


def _read_value(typed):
    if typed.__class__ is not dict:
        raise Unreadable
    ((tag, value),) = typed.items()
    if tag == "S" and value.__class__ is str:
        return value
    return _read_tagged(tag, value)


def read_item(raw: dict) -> dict:
    """An item (or an M value) from DynamoDB JSON to Python values; raises on anything else.

    The dict is turned into the item in place (each wrapper replaced by its value): the pages
    come from json.loads and nobody else holds them, and not building a second dict per item is
    a third of the reader's cost. A page that raises is read again from its body by botocore.
    """
    for name, typed in raw.items():
        # Strings are most attributes, then numbers: one or two lookups, no unpacking and no call for them.
        if len(typed) == 1:
            value = typed.get("S")
            if value.__class__ is str:
                raw[name] = value
                continue
            value = typed.get("N")
            if value.__class__ is str:
                raw[name] = _decimal(value)
                continue
        # Exactly one (tag, value) pair, or this raises: no wrapper with two tags gets through.
        ((tag, value),) = typed.items()
        raw[name] = _read_tagged(tag, value)
    return raw


def read_items(raw_items) -> list[dict]:
    if raw_items.__class__ is not list:
        raise Unreadable
    numbers = _numbers
    decimal = _decimal
    for raw in raw_items:
        if raw.__class__ is not dict:
            raise Unreadable
        # read_item's loop, inline: a page holds a few thousand items.
        for name, typed in raw.items():
            if len(typed) == 1:
                value = typed.get("S")
                if value.__class__ is str:
                    raw[name] = value
                    continue
                value = typed.get("N")
                if value.__class__ is str:
                    number = numbers.get(value)  # _decimal's lookup, without the call
                    raw[name] = decimal(value) if number is None else number
                    continue
            ((tag, value),) = typed.items()
            raw[name] = _read_tagged(tag, value)
    return raw_items


def split_page(body: bytes) -> tuple[list[dict], bytes]:
    """A Scan/Query response body as (decoded items, the rest of the body for botocore's parser).

    Raises Unreadable (or the JSON/decoding error) when the page is not one this reader takes.
    """
    document = json.loads(body.decode("utf-8"))  # decoded as botocore decodes it
    if document.__class__ is not dict or "Items" not in document:
        raise Unreadable
    items = read_items(document.pop("Items"))
    return items, json.dumps(document).encode("utf-8")


def _before_parse(response_dict=None, customized_response_dict=None, **kwargs) -> None:
    if not getattr(_state, "active", False) or response_dict is None or customized_response_dict is None:
        return
    body = response_dict.get("body")
    if response_dict.get("status_code", 500) >= 300 or body.__class__ is not bytes or not body:
        return  # errors and anything unusual: botocore's parser, as always
    try:
        with _decoding:
            items, rest = split_page(body)
    except Exception:  # any doubt: botocore reads the page exactly as before
        return
    response_dict["body"] = rest  # Count, ScannedCount, LastEvaluatedKey, ...: parsed by botocore
    customized_response_dict[DECODED_ITEMS] = items


def install(client) -> bool:
    """Register the reader on a botocore DynamoDB client (once); False when the object has no event system."""
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None:
        return False
    for operation in OPERATIONS:
        events.register(
            f"before-parse.dynamodb.{operation}", _before_parse, unique_id=f"panzoto-typed-reader-{operation}"
        )
    return True


@contextmanager
def reading() -> Iterator[None]:
    """Let the reader take this thread's Scan/Query pages while the block runs."""
    previous = getattr(_state, "active", False)
    _state.active = True
    try:
        yield
    finally:
        _state.active = previous
