"""Conditional writes of the cleanup: building them and sending them, one job per request.

Every delete, requeue or expiry is conditional on the job's `status` and
`error_message` still being what was selected; a job that changed in between
fails the condition and is skipped with what changed. A restore puts an item
back only where no item with its key exists. BatchWriteItem cannot be
conditional, so it is never used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ansible.module_utils.panzoto.aws import RETRYABLE_ERROR_CODES, aws_errors, describe_aws_error, error_code
from ansible.module_utils.panzoto.cleanup.archive import item_to_json, json_to_item, json_to_wire, wire_to_json
from ansible.module_utils.panzoto.cleanup.batches import Abort
from ansible.module_utils.panzoto.cleanup.plan import Planned, TableKey
from ansible.module_utils.panzoto.jobs import isoformat

try:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
except ImportError:  # the modules report a missing boto3 themselves
    TypeDeserializer = TypeSerializer = None

CONDITION_FAILED = "ConditionalCheckFailedException"


def serialize(value: object) -> dict:
    return TypeSerializer().serialize(value)


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


def describe_change(selected: dict, current: dict | None) -> str:
    """Why a conditional write failed, from the item DynamoDB returned with the failure."""
    if not current:
        return "changed since selection: the job no longer exists"
    now_item = deserialize_item(current)
    changes = [
        f"{name} is now {now_item.get(name)!r}"
        for name in ("status", "error_message")
        if selected.get(name) != now_item.get(name)
    ]
    return "changed since selection: " + ("; ".join(changes) or "status or error_message changed")


@dataclass(frozen=True)
class WritePlan:
    """How one run changes each selected job: the action, and what it writes."""

    table: str
    key: TableKey
    state: str  # absent | requeued | expiring
    reason: Callable[[Planned], str] | None = None  # requeue_reason for a job
    ttl_attribute: str | None = None
    expires_at: datetime | None = None

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
        return "failed", _failed(exc, f"change job {planned.job.job_id}", abort, endpoint_url), None


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
