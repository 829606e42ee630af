"""Transactions of conditional writes: what each answer of TransactWriteItems settles, and what it sends again.

moto answers the common cases (tests/integration/test_cleanup_batched.py); the answers it never
gives (conflicts, throttling reasons, refusals, a transaction refused whole) come from a scripted client.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from ansible.module_utils.panzoto.cleanup.batches import Abort
from ansible.module_utils.panzoto.cleanup.encoded import encode_element
from ansible.module_utils.panzoto.cleanup.plan import Planned, TableKey, group_of
from ansible.module_utils.panzoto.cleanup.transact import (
    STALLED_ROUNDS,
    TRANSACT_BYTES,
    TransactWriter,
    batches,
    request_token,
)
from ansible.module_utils.panzoto.cleanup.writes import JOB_ATTRIBUTES, WritePlan, exact_condition
from ansible.module_utils.panzoto.jobs import inspect_job
from cleanup_fixtures import LEGACY, RULES, client_error, item

JOBS = TableKey("job_id")
DELETE = WritePlan("jobs", JOBS, "absent")


def planned(job_id: str, **attributes) -> Planned:
    job = inspect_job(item(job_id, "failed", timedelta(days=9), error_message=LEGACY, **attributes), RULES)
    return Planned(job, group_of(job), None)


def cancelled(*codes: str, current: dict | None = None):
    reasons = [{"Code": code, **({"Item": current} if current and code == "ConditionalCheckFailed" else {})}
               for code in codes]  # fmt: skip
    return client_error("TransactionCanceledException", "TransactWriteItems", CancellationReasons=reasons)


class ScriptedDynamoDB:
    """Answers each TransactWriteItems with the next scripted exception (None: success); records every request."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.transactions: list[dict] = []
        self.singles: list[dict] = []

    def transact_write_items(self, **request) -> dict:
        self.transactions.append(request)
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return {}

    def delete_item(self, **request) -> dict:
        self.singles.append(request)
        return {"Attributes": {}}


def writer(dynamodb, plan: WritePlan = DELETE) -> TransactWriter:
    return TransactWriter(dynamodb, plan, Abort(), "run-1", sleep=lambda _seconds: None)


def batch(*jobs: Planned, plan: WritePlan = DELETE) -> list:
    """The jobs as one batch of batches(), each with its element."""
    (only,) = batches(plan, list(jobs), 100)
    return only


def job_ids(request: dict) -> list[str]:
    return [next(iter(element.values()))["Key"]["job_id"]["S"] for element in request["TransactItems"]]


# --------------------------------------------------------------------------- the condition


def test_a_transactional_delete_compares_every_attribute_and_requires_the_missing_job_attributes_absent():
    job = planned("j1", retry_count=Decimal(3), tags={"a", "b"}, note=None)
    element = DELETE.transact_item(job)["Delete"]
    names, values = element["ExpressionAttributeNames"], element["ExpressionAttributeValues"]
    compared = {names[part.split(" = ")[0]] for part in element["ConditionExpression"].split(" AND ") if " = " in part}
    assert compared == set(job.job.item) - {"note"}
    assert "attribute_type(" in element["ConditionExpression"] and values[":null"] == {"S": "NULL"}  # note is NULL
    absent = {names[part[len("attribute_not_exists(") : -1]] for part in element["ConditionExpression"].split(" AND ")
              if part.startswith("attribute_not_exists(")}  # fmt: skip
    assert absent == set(JOB_ATTRIBUTES) - set(job.job.item)
    assert {"last_attempt_at", "completed_at"} <= absent
    assert element["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD" and "ReturnValues" not in element


def test_requeues_keep_their_status_condition_in_a_transaction():
    plan = WritePlan("jobs", JOBS, "requeued", reason=lambda p: "fixed")
    element = plan.transact_item(planned("j1"))["Update"]
    assert element["ConditionExpression"] == "attribute_exists(#k) AND #st = :st AND #er = :er"
    assert element["UpdateExpression"].startswith("SET #st = :pending")


def test_other_tables_and_huge_items_are_not_batched():
    transcripts = WritePlan("transcripts", TableKey("transcript_id"), "absent")
    assert not transcripts.exact(planned("j1"))
    many = planned("j1", **{f"extra_{index}": index for index in range(120)})
    assert not DELETE.exact(many) and DELETE.exact(planned("j2"))
    dynamodb = ScriptedDynamoDB()
    assert writer(dynamodb).send(batch(planned("j0"), many)) == [("changed", None, None)] * 2
    assert dynamodb.transactions == [] and len(dynamodb.singles) == 2


def test_exact_condition_of_an_empty_absent_list_compares_only_what_the_item_holds():
    expression, names, _ = exact_condition({"job_id": "j1", "status": "failed"})
    assert expression == "#a0 = :v0 AND #a1 = :v1" and names == {"#a0": "job_id", "#a1": "status"}


# --------------------------------------------------------------------------- batches and tokens


def test_batches_hold_at_most_the_size_and_stay_under_the_byte_limit():
    jobs = [planned(f"j{index:03d}") for index in range(250)]
    assert [len(part) for part in batches(DELETE, jobs, 100)] == [100, 100, 50]
    big = [planned(f"b{index}", blob="x" * 390_000) for index in range(20)]
    sized = batches(DELETE, big, 100)
    assert sum(len(part) for part in sized) == 20 and len(sized) > 1
    assert all(sum(len(encoded) for _, _, encoded in part) <= TRANSACT_BYTES for part in sized)


def test_a_request_token_is_the_same_for_the_same_request_and_differs_otherwise():
    elements = encode_element(DELETE.transact_item(planned("j1")))
    token = request_token("run-1", elements, 0)
    assert len(token) == 36 and token == request_token("run-1", elements, 0)
    assert token != request_token("run-1", elements, 1) and token != request_token("run-2", elements, 0)


# --------------------------------------------------------------------------- what each answer settles


def test_a_failed_condition_skips_that_job_and_the_rest_is_sent_again():
    current = {"job_id": {"S": "j1"}, "status": {"S": "pending"}}
    dynamodb = ScriptedDynamoDB(cancelled("None", "ConditionalCheckFailed", "None", current=current))
    jobs = [planned("j0"), planned("j1"), planned("j2")]
    outcomes = writer(dynamodb).send(batch(*jobs))
    assert [outcome for outcome, _, _ in outcomes] == ["changed", "skipped", "changed"]
    assert "status is now 'pending'" in outcomes[1][1]
    assert [job_ids(request) for request in dynamodb.transactions] == [["j0", "j1", "j2"], ["j0", "j2"]]
    tokens = {request["ClientRequestToken"] for request in dynamodb.transactions}
    assert len(tokens) == 2, "a different request gets a different token"


def test_conflicts_and_throttling_reasons_are_retried_until_they_pass():
    dynamodb = ScriptedDynamoDB(cancelled("TransactionConflict", "None"), cancelled("None", "ThrottlingError"), None)
    w = writer(dynamodb)
    assert w.send(batch(planned("j0"), planned("j1"))) == [("changed", None, None)] * 2
    assert len(dynamodb.transactions) == 3 and w.stats.report() == {
        "transactions": 3,
        "resubmitted": 4,
        "fallback": None,
    }


def test_a_transaction_that_never_stops_conflicting_is_reported_failed_not_lost():
    dynamodb = ScriptedDynamoDB(*[cancelled("TransactionConflict", "None")] * (STALLED_ROUNDS + 2))
    outcomes = writer(dynamodb).send(batch(planned("j0"), planned("j1")))
    assert [outcome for outcome, _, _ in outcomes] == ["failed", "failed"]
    assert "still cancelled" in outcomes[0][1] and len(dynamodb.transactions) == STALLED_ROUNDS


def test_an_element_refused_on_its_own_fails_alone():
    dynamodb = ScriptedDynamoDB(cancelled("None", "ValidationError"))
    outcomes = writer(dynamodb).send(batch(planned("j0"), planned("j1")))
    assert outcomes[0] == ("changed", None, None) and outcomes[1][0] == "failed" and "ValidationError" in outcomes[1][1]


def test_an_endpoint_without_transactions_gets_one_request_per_job_for_the_rest_of_the_run():
    dynamodb = ScriptedDynamoDB(client_error("UnknownOperationException", "TransactWriteItems"))
    w = writer(dynamodb)
    assert w.send(batch(planned("j0"), planned("j1"))) == [("changed", None, None)] * 2
    assert w.send(batch(planned("j2"))) == [("changed", None, None)]
    assert len(dynamodb.transactions) == 1 and [r["Key"]["job_id"]["S"] for r in dynamodb.singles] == ["j0", "j1", "j2"]
    assert "UnknownOperationException" in w.stats.refused


def test_a_transaction_refused_whole_sends_its_jobs_one_by_one_and_later_batches_still_as_transactions():
    dynamodb = ScriptedDynamoDB(client_error("ValidationException", "TransactWriteItems"), None)
    w = writer(dynamodb)
    assert w.send(batch(planned("j0"), planned("j1"))) == [("changed", None, None)] * 2
    assert w.send(batch(planned("j2"), planned("j3"))) == [("changed", None, None)] * 2
    assert len(dynamodb.singles) == 2 and len(dynamodb.transactions) == 2 and w.stats.refused is None


def test_a_dead_endpoint_fails_the_batch_and_stops_new_work():
    abort_writer = writer(ScriptedDynamoDB(client_error("AccessDeniedException", "TransactWriteItems")))
    outcomes = abort_writer.send(batch(planned("j0"), planned("j1")))
    assert [outcome for outcome, _, _ in outcomes] == ["failed", "failed"] and abort_writer.abort.is_set
    assert "j0 to j1" in outcomes[0][1]
    later = abort_writer.send(batch(planned("j2")))
    assert later[0][0] == "not_attempted"


def test_throttling_after_botocores_retries_fails_the_batch_but_does_not_stop_the_run():
    w = writer(ScriptedDynamoDB(client_error("ThrottlingException", "TransactWriteItems")))
    assert [outcome for outcome, _, _ in w.send(batch(planned("j0")))] == ["failed"] and not w.abort.is_set


def test_transactions_go_through_their_own_client_and_a_refused_ones_jobs_through_the_validating_one():
    transactions = ScriptedDynamoDB(client_error("ValidationException", "TransactWriteItems"), None)
    dynamodb = ScriptedDynamoDB()
    w = TransactWriter(dynamodb, DELETE, Abort(), "run-1", transactions=transactions, sleep=lambda _seconds: None)
    assert w.send(batch(planned("j0"), planned("j1"))) == [("changed", None, None)] * 2
    assert w.send(batch(planned("j2"))) == [("changed", None, None)]
    assert len(transactions.transactions) == 2 and transactions.singles == []
    assert [r["Key"]["job_id"]["S"] for r in dynamodb.singles] == ["j0", "j1"] and dynamodb.transactions == []


def test_a_request_token_names_the_jobs_it_sends():
    one, two = (encode_element(DELETE.transact_item(planned(job_id))) for job_id in ("j1", "j2"))
    assert request_token("run-1", one, 0) != request_token("run-1", two, 0)
    assert request_token("run-1", f"{one}, {two}", 0) != request_token("run-1", one, 0)
