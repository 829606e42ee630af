"""Conditional writes: what each action sends, and what a failed condition means."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from ansible.module_utils.panzoto.cleanup.archive import item_to_json, json_to_wire
from ansible.module_utils.panzoto.cleanup.batches import Abort
from ansible.module_utils.panzoto.cleanup.plan import Planned, TableKey, group_of
from ansible.module_utils.panzoto.cleanup.writes import WritePlan, put_back, send_write
from ansible.module_utils.panzoto.jobs import inspect_job
from cleanup_fixtures import LEGACY, NOW, RULES, FakeDynamoDB, client_error, item

JOBS = TableKey("job_id")


def planned(entry: dict) -> Planned:
    job = inspect_job(entry, RULES)
    return Planned(job, group_of(job), None)


def test_deletes_are_conditional_on_status_and_error_message_as_selected():
    dynamodb = FakeDynamoDB()
    failed = item("j1", "failed", timedelta(days=1), error_message=LEGACY)
    assert send_write(dynamodb, WritePlan("jobs", JOBS, "absent"), planned(failed), Abort())[0] == "changed"
    operation, request = dynamodb.requests[0]
    assert operation == "DeleteItem" and request["Key"] == {"job_id": {"S": "j1"}}
    assert request["ConditionExpression"] == "attribute_exists(#k) AND #st = :st AND #er = :er"
    assert request["ExpressionAttributeValues"] == {":st": {"S": "failed"}, ":er": {"S": LEGACY}}

    dynamodb = FakeDynamoDB()
    pending = item("j2", "pending", timedelta(days=1))
    send_write(dynamodb, WritePlan("jobs", JOBS, "absent"), planned(pending), Abort())
    assert dynamodb.requests[0][1]["ConditionExpression"].endswith("AND attribute_not_exists(#er)")


def test_requeue_resets_the_job_and_records_why():
    dynamodb = FakeDynamoDB()
    failed = item("j1", "failed", timedelta(days=1), error_message="timeout", retry_count=Decimal(3), completed_at="x")
    plan = WritePlan("jobs", JOBS, "requeued", reason=lambda p: "after the fix")
    send_write(dynamodb, plan, planned(failed), Abort())
    request = dynamodb.requests[0][1]
    assert request["UpdateExpression"].startswith("SET #st = :pending, #rc = :zero, #ra = :now, #rr = :reason")
    assert request["UpdateExpression"].endswith("REMOVE #er, #ca")
    assert request["ExpressionAttributeValues"][":reason"] == {"S": "after the fix"}
    assert request["ExpressionAttributeValues"][":le"] == {"S": "timeout"}


def test_a_fresh_requeue_sets_created_at_to_now_and_keeps_the_first_original():
    failed = item("j1", "failed", timedelta(days=3), error_message="timeout")
    for fresh in (False, True):
        dynamodb = FakeDynamoDB()
        plan = WritePlan("jobs", JOBS, "requeued", reason=lambda p: "fixed", fresh_created_at=fresh)
        send_write(dynamodb, plan, planned(failed), Abort())
        request = dynamodb.requests[0][1]
        sets = request["UpdateExpression"].partition(" REMOVE ")[0]
        if not fresh:
            assert "#cr" not in sets and "created_at" not in request["ExpressionAttributeNames"].values()
            continue
        assert sets.endswith("#cr = :now, #oc = if_not_exists(#oc, :created)")
        assert request["ExpressionAttributeNames"]["#cr"] == "created_at"
        assert request["ExpressionAttributeNames"]["#oc"] == "original_created_at"
        assert request["ExpressionAttributeValues"][":created"] == {"S": failed["created_at"]}
        assert request["UpdateExpression"].endswith("REMOVE #er")


def test_expiry_sets_the_ttl_attribute_only_where_it_is_missing():
    dynamodb = FakeDynamoDB()
    plan = WritePlan("jobs", JOBS, "expiring", ttl_attribute="expires_at", expires_at=NOW + timedelta(days=1))
    send_write(dynamodb, plan, planned(item("j1", "failed", timedelta(days=1))), Abort())
    request = dynamodb.requests[0][1]
    assert request["UpdateExpression"] == "SET #ttl = :ttl" and request["ConditionExpression"].endswith(
        "attribute_not_exists(#ttl)"
    )
    assert request["ExpressionAttributeValues"][":ttl"] == {"N": str(int((NOW + timedelta(days=1)).timestamp()))}


def test_a_changed_job_is_skipped_with_what_changed():
    current = {"job_id": {"S": "j1"}, "status": {"S": "pending"}}
    failed = item("j1", "failed", timedelta(days=1), error_message=LEGACY)
    outcome, reason, _ = send_write(
        FakeDynamoDB(current, fail=True), WritePlan("t", JOBS, "absent"), planned(failed), Abort()
    )
    assert outcome == "skipped" and "status is now 'pending'" in reason and "error_message is now None" in reason
    gone = FakeDynamoDB(fail=True)
    assert "no longer exists" in send_write(gone, WritePlan("t", JOBS, "absent"), planned(failed), Abort())[1]


def test_a_refusal_stops_new_work_and_a_stopped_run_sends_nothing():
    class Refusing(FakeDynamoDB):
        def delete_item(self, **request):
            self.requests.append(("DeleteItem", request))
            raise client_error("AccessDeniedException", "DeleteItem")

    abort = Abort()
    failed = planned(item("j1", "failed", timedelta(days=1), error_message=LEGACY))
    outcome, reason, _ = send_write(Refusing(), WritePlan("t", JOBS, "absent"), failed, abort)
    assert outcome == "failed" and "AccessDeniedException while trying to change job j1" in reason and abort.is_set
    idle = FakeDynamoDB()
    assert send_write(idle, WritePlan("t", JOBS, "absent"), failed, abort)[0] == "not_attempted" and not idle.requests


def test_restore_never_overwrites_and_is_idempotent():
    archived = item_to_json({"job_id": "j1", "status": "failed", "retry_count": Decimal(1)})
    absent = FakeDynamoDB()
    assert put_back(absent, "t", JOBS, "j1", archived, False, Abort()) == ("changed", None)
    assert absent.requests[0][1]["ConditionExpression"] == "attribute_not_exists(#k)"
    same = FakeDynamoDB(current=json_to_wire(archived), fail=True)
    assert put_back(same, "t", JOBS, "j1", archived, False, Abort())[0] == "unchanged"
    other = FakeDynamoDB(current=json_to_wire(item_to_json({"job_id": "j1", "status": "pending"})), fail=True)
    assert put_back(other, "t", JOBS, "j1", archived, False, Abort())[0] == "skipped"


def test_restore_puts_back_by_the_whole_key_of_any_table():
    archived = item_to_json({"user_id": "u1", "sequence": Decimal(3), "text": "x"})
    table = FakeDynamoDB()
    assert put_back(table, "t", TableKey("user_id", "sequence"), '["u1", "3"]', archived, False, Abort()) == (
        "changed",
        None,
    )
    assert table.requests[0][1]["Item"] == json_to_wire(archived)
