"""Conditional writes of the cleanup: building them, and sending them one job per request.

Every delete, requeue or expiry is conditional on the job's `status` and
`error_message` still being what was selected; a job that changed in between
fails the condition and is skipped with what changed. A delete sent one job per
request gets the deleted item back (ReturnValues), so the archive keeps what was
really deleted; a delete inside a transaction gets nothing back, so its condition
is the whole archived item (`exact_condition`). A restore puts an item back only
where no item with its key exists. BatchWriteItem cannot be conditional, so it
is never used; transactions are sent by cleanup/transact.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ansible.module_utils.panzoto.aws import RETRYABLE_ERROR_CODES, aws_errors, describe_aws_error, error_code
from ansible.module_utils.panzoto.cleanup.archive import item_to_json, json_to_item, json_to_wire, to_wire, wire_to_json
from ansible.module_utils.panzoto.cleanup.batches import Abort
from ansible.module_utils.panzoto.cleanup.plan import Planned, TableKey
from ansible.module_utils.panzoto.jobs import isoformat

try:
    from boto3.dynamodb.types import TypeDeserializer
except ImportError:  # the modules report a missing boto3 themselves
    TypeDeserializer = None

CONDITION_FAILED = "ConditionalCheckFailedException"


def serialize(value: object) -> dict:
    """A Python value as a DynamoDB attribute value (cleanup/archive.py's to_wire: TypeSerializer's output, faster)."""
    return to_wire(value)


def deserialize_item(wire: dict | None) -> dict:
    deserialize = TypeDeserializer().deserialize
    return {name: deserialize(value) for name, value in (wire or {}).items()}


def unchanged_condition(hash_key: str, item: dict) -> tuple[list[str], dict, dict]:
    """Condition parts (with names and values) true only while status and error_message are as selected."""
    names = {"#k": hash_key}
    values: dict = {}
    parts = ["attribute_exists(#k)"]
    for placeholder, attribute, value_name in (("#st", "status", ":st"), ("#er", "error_message", ":er")):
        names[placeholder] = attribute
        if attribute in item:
            parts.append(f"{placeholder} = {value_name}")
            values[value_name] = serialize(item[attribute])
        else:
            parts.append(f"attribute_not_exists({placeholder})")
    return parts, names, values


# What the backend and the cleanup write on a job. An exact condition also requires
# the ones the archived item lacks to be still absent: a job that gained one
# (a retry's last_attempt_at, a completed_at) is no longer the archived job.
JOB_ATTRIBUTES = (
    "job_id", "user_id", "job_type", "status", "created_at", "retry_count", "audio_file_id",
    "last_attempt_at", "completed_at", "error_message",
    "requeued_at", "requeue_reason", "requeue_count", "last_error_message",
)  # fmt: skip
# Beyond this many attributes an item's exact condition risks DynamoDB's 4 KB
# expression limit: such a job is sent alone, with its deleted item returned.
EXACT_CONDITION_MAX_ATTRIBUTES = 100


def exact_condition(item: dict, absent: tuple[str, ...] = ()) -> tuple[str, dict, dict]:
    """(expression, names, values) true only while the stored item equals `item`.

    Every attribute of `item` is compared (DynamoDB's `=` compares numbers by
    value, sets regardless of order, maps and lists deeply; NULL by its type),
    and each name of `absent` not in `item` must not exist.
    """
    names = sorted(item)
    shape = _condition_shape(tuple(names), tuple(absent), tuple(item[name] is None for name in names))
    values: dict = {}
    for placeholder, name in zip(shape.placeholders, names, strict=True):
        if placeholder is None:
            values[":null"] = {"S": "NULL"}
        else:
            values[placeholder] = to_wire(item[name])
    # A copy of the names: a caller may change its request's names, never another job's.
    return shape.expression, dict(shape.names), values


@dataclass(frozen=True)
class _ConditionShape:
    expression: str
    names: dict
    placeholders: tuple[str | None, ...]  # each attribute's value placeholder, None for a NULL


_SHAPES: dict[tuple, _ConditionShape] = {}
_SHAPES_MAX = 512  # jobs share a few shapes (the attributes they hold); a table of odd items does not grow this


def _condition_shape(names: tuple[str, ...], absent: tuple[str, ...], nulls: tuple[bool, ...]) -> _ConditionShape:
    """The expression and names of an exact condition for items with these attributes: built once per shape."""
    key = (names, absent, nulls)
    shape = _SHAPES.get(key)
    if shape is not None:
        return shape
    parts: list[str] = []
    placeholders: list[str | None] = []
    attribute_names: dict = {}
    for index, (name, null) in enumerate(zip(names, nulls, strict=True)):
        attribute_names[f"#a{index}"] = name
        if null:
            parts.append(f"attribute_type(#a{index}, :null)")
            placeholders.append(None)
        else:
            parts.append(f"#a{index} = :v{index}")
            placeholders.append(f":v{index}")
    for index, name in enumerate(sorted(set(absent) - set(names))):
        attribute_names[f"#n{index}"] = name
        parts.append(f"attribute_not_exists(#n{index})")
    shape = _ConditionShape(" AND ".join(parts), attribute_names, tuple(placeholders))
    if len(_SHAPES) >= _SHAPES_MAX:
        _SHAPES.clear()
    _SHAPES[key] = shape
    return shape


def describe_change(selected: dict, current: dict | None, attributes: tuple[str, ...] | None = None) -> str:
    """Why a conditional write failed, from the item DynamoDB returned with the failure.

    `attributes` are those the condition compared; None: all of them.
    """
    if not current:
        return "changed since selection: the job no longer exists"
    now_item = deserialize_item(current)
    compared = attributes or sorted(set(selected) | set(now_item))
    changes = [f"{name} is now {now_item.get(name)!r}" for name in compared if selected.get(name) != now_item.get(name)]
    fallback = "status or error_message changed" if attributes else "changed since selection"
    return "changed since selection: " + ("; ".join(changes) or fallback)


@dataclass(frozen=True)
class WritePlan:
    """How one run changes each selected job: the action, and what it writes."""

    table: str
    key: TableKey
    state: str  # absent | requeued | expiring
    reason: Callable[[Planned], str] | None = None  # requeue_reason for a job
    ttl_attribute: str | None = None
    expires_at: datetime | None = None
    # A requeue also sets created_at to now (the backend expires pending jobs older than 24 h), keeping the
    # first original_created_at over repeated requeues.
    fresh_created_at: bool = False

    def request(self, planned: Planned) -> dict:
        """The conditional DeleteItem/UpdateItem arguments for one job."""
        item = planned.job.item
        parts, names, values = unchanged_condition(self.key.hash_key, item)
        request = {
            "TableName": self.table,
            "Key": {name: serialize(item[name]) for name in self.key.names()},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if self.state == "absent":
            request["ReturnValues"] = "ALL_OLD"
        elif self.state == "requeued":
            request["UpdateExpression"] = self._requeue(planned, names, values)
        else:  # expiring
            names["#ttl"] = self.ttl_attribute
            values[":ttl"] = {"N": str(int(self.expires_at.timestamp()))}
            parts.append("attribute_not_exists(#ttl)")
            request["UpdateExpression"] = "SET #ttl = :ttl"
        request["ConditionExpression"] = " AND ".join(parts)
        request["ExpressionAttributeNames"] = names
        if values:
            request["ExpressionAttributeValues"] = values
        return request

    def exact(self, planned: Planned) -> bool:
        """Whether this job's write can go in a transaction: a delete's condition must then cover the whole item.

        It can for jobs: the attributes a job may gain are known (JOB_ATTRIBUTES). Other tables' items
        could gain any attribute unnoticed, so they are deleted one per request, with the item returned.
        """
        if self.state != "absent":
            return True
        return self.key.jobs_table and len(planned.job.item) <= EXACT_CONDITION_MAX_ATTRIBUTES

    def transact_item(self, planned: Planned) -> dict:
        """The job's write as one TransactWriteItems element.

        Requeues and expiries keep their condition: the item stays in the table.
        A delete returns nothing inside a transaction, so it is conditional on
        the whole archived item: what it deletes is exactly what was archived.
        """
        if self.state == "absent":
            # The exact condition replaces request()'s status condition: built directly, not built and replaced.
            item = planned.job.item
            expression, names, values = exact_condition(item, JOB_ATTRIBUTES)
            request = {
                "TableName": self.table,
                "Key": {name: to_wire(item[name]) for name in self.key.names()},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                "ConditionExpression": expression,
                "ExpressionAttributeNames": names,
            }
            if values:
                request["ExpressionAttributeValues"] = values
            return {"Delete": request}
        request = self.request(planned)
        request.pop("ReturnValues", None)  # not allowed in a transaction
        return {"Update": request}

    def _requeue(self, planned: Planned, names: dict, values: dict) -> str:
        item = planned.job.item
        names.update({"#rc": "retry_count", "#ra": "requeued_at", "#rr": "requeue_reason", "#rn": "requeue_count"})
        values.update(
            {
                ":pending": {"S": "pending"},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":now": {"S": isoformat(datetime.now(UTC))},
                ":reason": {"S": self.reason(planned)},
            }
        )
        sets = [
            "#st = :pending",
            "#rc = :zero",
            "#ra = :now",
            "#rr = :reason",
            "#rn = if_not_exists(#rn, :zero) + :one",
        ]
        removes = []
        if "error_message" in item:
            names["#le"] = "last_error_message"
            values[":le"] = serialize(item["error_message"])
            sets.append("#le = :le")
            removes.append("#er")
        if "completed_at" in item:
            names["#ca"] = "completed_at"
            removes.append("#ca")
        if self.fresh_created_at and "created_at" in item:
            names.update({"#cr": "created_at", "#oc": "original_created_at"})
            values[":created"] = serialize(item["created_at"])
            sets += ["#cr = :now", "#oc = if_not_exists(#oc, :created)"]
        return "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")


def _failed(exc: Exception, doing: str, abort: Abort, endpoint_url: str | None) -> str:
    message = describe_aws_error(exc, doing, endpoint_url)
    if error_code(exc) not in RETRYABLE_ERROR_CODES:
        # The endpoint is gone or refuses us: stop starting new work.
        abort.set(message)
    return message


def send_write(
    dynamodb, plan: WritePlan, planned: Planned, abort: Abort, endpoint_url: str | None = None
) -> tuple[str, str | None, dict | None]:
    """(outcome, reason, item DynamoDB returned when it differs from the archived one) for one conditional write."""
    if abort.is_set:
        return "not_attempted", abort.reason, None
    request = plan.request(planned)
    try:
        if plan.state == "absent":
            response = dynamodb.delete_item(**request)
            # What DynamoDB deleted may differ from what was archived in attributes
            # the condition does not cover (retry_count, ...): keep it too.
            old = wire_to_json(response.get("Attributes") or {})
            return "changed", None, (old if old and old != item_to_json(planned.job.item) else None)
        dynamodb.update_item(**request)
        return "changed", None, None
    except aws_errors() as exc:
        if error_code(exc) == CONDITION_FAILED:
            return "skipped", describe_change(planned.job.item, exc.response.get("Item")), None
        return "failed", _failed(exc, f"change job {planned.job_id}", abort, endpoint_url), None


def put_back(
    dynamodb,
    table: str,
    key: TableKey,
    job_id: str,
    archived: dict,
    check_mode: bool,
    abort: Abort,
    endpoint_url: str | None = None,
) -> tuple[str, str | None]:
    """Put one archived item (DynamoDB JSON) back unless an item with its key exists.

    ("changed" | "unchanged" | "skipped" | "failed" | "not_attempted", reason); check mode reads instead of writing.
    """
    if abort.is_set:
        return "not_attempted", abort.reason
    wire = json_to_wire(archived)
    try:
        if check_mode:
            current = dynamodb.get_item(
                TableName=table, Key={name: wire[name] for name in key.names()}, ConsistentRead=True
            ).get("Item")
            if current is None:
                return "changed", None
        else:
            dynamodb.put_item(
                TableName=table,
                Item=wire,
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": key.hash_key},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return "changed", None
    except aws_errors() as exc:
        if error_code(exc) != CONDITION_FAILED:
            return "failed", _failed(exc, f"restore job {job_id}", abort, endpoint_url)
        current = exc.response.get("Item")
    if deserialize_item(current) == json_to_item(archived):
        return "unchanged", "already present, equal to the archive"
    return "skipped", "an item with this job_id exists and differs from the archive: not overwritten"
