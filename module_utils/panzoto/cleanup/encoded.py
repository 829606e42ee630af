"""TransactWriteItems requests whose elements the cleanup encoded to JSON itself.

A transaction's elements are DynamoDB wire values already (writes.py's transact_item),
and the cleanup encodes each one once: for its exact size (transact.py's 4 MB cut) and
its request's token. botocore's JSON serializer would walk every element's shapes again
to write the same text, the largest part of a batched write's CPU. So the transactions
client (made without parameter validation) is given EncodedItems, the elements with their
JSON, and two handlers on that client only send that JSON:

- before-parameter-build: the elements become one stub per table (the endpoint rules read
  the table names), and the request's body, with the encoded elements, goes in the request's
  context;
- before-call: botocore has serialized the stub request; its body becomes the one built
  above. botocore signs each attempt after this event, from this body, retries it unchanged,
  and parses the answer (CancellationReasons, ...) as for any other request.

What the handlers put in travels with the request (its context), never in shared state,
so the `parallel` threads sending at once cannot mix their bodies. A client without the
handlers sends EncodedItems as the plain list of elements it also is.
"""

from __future__ import annotations

import base64
import json

OPERATION = "dynamodb.TransactWriteItems"
_BODY = "panzoto_encoded_body"  # the request context's key for the body built before serialization


def _base64(value: object) -> str:
    # botocore's serializer writes binary (B, BS) as base64 text; nothing else in an element is not JSON.
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not a DynamoDB wire value")


# json.dumps' defaults (separators, ensure_ascii) are botocore's: the text is the serializer's, byte for byte.
_ENCODER = json.JSONEncoder(default=_base64)


def encode_element(element: dict) -> str:
    """One TransactWriteItems element as botocore's JSON serializer writes it."""
    return _ENCODER.encode(element)


class EncodedItems(list):
    """TransactItems: the elements, and `json`, their encode_element() texts joined as in a JSON list."""

    def __init__(self, elements: list[dict], encoded: str) -> None:
        super().__init__(elements)
        self.json = encoded


def send_encoded(client) -> None:
    """Have `client` send EncodedItems' own JSON as its TransactWriteItems body (see the module's docstring).

    Meant for a client without parameter validation: one with it validates only the stub.
    """
    if client.meta.service_model.protocol != "json":
        return  # a botocore sending DynamoDB another way (CBOR): its own serializer writes the body
    client.meta.events.register(f"before-parameter-build.{OPERATION}", _stub, unique_id="panzoto-encoded-stub")
    client.meta.events.register(f"before-call.{OPERATION}", _encoded_body, unique_id="panzoto-encoded-body")


def _stub(params: dict, context: dict, **kwargs) -> None:
    items = params.get("TransactItems")
    if not isinstance(items, EncodedItems):
        return
    # The body botocore's serializer would write: the parameters in their order, the elements as encoded.
    # (TransactWriteItems' other parameters are strings, written as json.dumps writes them.)
    parts = [
        f'"TransactItems": [{items.json}]' if name == "TransactItems" else json.dumps({name: value})[1:-1]
        for name, value in params.items()
    ]
    context[_BODY] = ("{" + ", ".join(parts) + "}").encode("utf-8")
    # The endpoint rules read every element's TableName (a table ARN names its account); a Delete
    # with an empty Key is the smallest element that names a table and passes botocore's validation.
    tables = dict.fromkeys(body["TableName"] for element in items for body in element.values())
    params["TransactItems"] = [{"Delete": {"TableName": table, "Key": {}}} for table in tables]


def _encoded_body(params: dict, context: dict, **kwargs) -> None:
    body = context.pop(_BODY, None)
    if body is not None:
        params["body"] = body
