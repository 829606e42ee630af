"""Conditional writes sent in transactions: up to 100 jobs per TransactWriteItems request.

Why TransactWriteItems and not PartiQL BatchExecuteStatement (25 statements): the
local endpoint the tests run against implements transactions faithfully where it
counts (the 100-element limit, one CancellationReason per element, the current
item with ReturnValuesOnConditionCheckFailure), and BatchExecuteStatement not at
all (benchmarks/check_partiql_batch_delete.py), so only transactions can be tested.

A transaction is all or nothing. When it is cancelled, its CancellationReasons
say, element by element, why: a failed condition skips that job (with what
changed, from the item DynamoDB returns), a conflict or throttling retries it,
and the elements that were not at fault are sent again in the next request.
Throttling and 5xx answers of the whole request are retried by botocore with the
same ClientRequestToken, which DynamoDB uses to apply a retried transaction once.
A transaction writes twice the write units of the same single writes.

An endpoint that does not know the operation (UnknownOperationException) gets the
rest of the run one job per request (cleanup/writes.py), and the run says so; a
transaction DynamoDB refuses as a whole (ValidationException) has its jobs sent
one per request, each then answered on its own.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ansible.module_utils.panzoto.aws import RETRYABLE_ERROR_CODES, aws_errors, describe_aws_error, error_code
from ansible.module_utils.panzoto.cleanup.batches import Abort, backoff_delay
from ansible.module_utils.panzoto.cleanup.encoded import EncodedItems, encode_element
from ansible.module_utils.panzoto.cleanup.plan import Planned
from ansible.module_utils.panzoto.cleanup.writes import WritePlan, describe_change, send_write

TRANSACT_LIMIT = 100  # elements per TransactWriteItems request
# DynamoDB refuses a transaction over 4 MB; exact conditions carry the whole item, so
# batches are also cut by size (the elements' JSON as sent, with room to spare).
TRANSACT_BYTES = 3_500_000
CANCELLED = "TransactionCanceledException"
# Endpoints without transactions answer these: the run falls back to one request per job.
REFUSED_CODES = frozenset({"UnknownOperationException", "NotImplemented", "NotImplementedException"})
# Cancellation reasons that say "try again", not "this job changed".
RETRY_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
STALLED_ROUNDS = 6  # requests in a row that settle no job before the rest is reported failed

Outcome = tuple[str, str | None, dict | None]  # (outcome, reason, item DynamoDB returned): as send_write


@dataclass
class TransactStats:
    """What the transactions cost, for the module's result."""

    requests: int = 0  # TransactWriteItems requests sent (botocore's own retries not counted)
    resubmitted: int = 0  # elements sent again after a cancellation
    refused: str | None = None  # why the run fell back to one request per job

    def report(self) -> dict:
        return {"transactions": self.requests, "resubmitted": self.resubmitted, "fallback": self.refused}


# Each job with its TransactWriteItems element and that element's JSON as sent, both built once;
# ({}, "") for a job sent on its own.
Batch = list[tuple[Planned, dict, str]]


def batches(plan: WritePlan, changes: list[Planned], size: int) -> list[Batch]:
    """The jobs in transaction-sized batches: at most `size` jobs and TRANSACT_BYTES each, in order."""
    result: list[Batch] = []
    batch: Batch = []
    used = 0
    for planned in changes:
        element = plan.transact_item(planned) if plan.exact(planned) else {}
        encoded = encode_element(element) if element else ""
        if batch and (len(batch) == size or used + len(encoded) > TRANSACT_BYTES):
            result.append(batch)
            batch, used = [], 0
        batch.append((planned, element, encoded))
        used += len(encoded)
    if batch:
        result.append(batch)
    return result


def request_token(run_id: str, encoded: str, attempt: int) -> str:
    """A ClientRequestToken (at most 36 characters) for one request of a run: same elements, same token.

    `encoded` is the elements' JSON as sent (EncodedItems.json): hashing it names the request
    without encoding anything again. Each resubmission is a new attempt.
    """
    digest = hashlib.sha256(f"{run_id}\n{attempt}\n{encoded}".encode())
    return digest.hexdigest()[:36]


@dataclass
class TransactWriter:
    """Sends one run's conditional writes as transactions, falling back to one request per job."""

    dynamodb: object
    plan: WritePlan
    abort: Abort
    run_id: str
    endpoint_url: str | None = None
    sleep: Callable[[float], None] = time.sleep
    stats: TransactStats = field(default_factory=TransactStats)
    # The client the transactions go through: one without botocore's parameter validation (aws_client's
    # parameter_validation=False), as they are built from items DynamoDB returned, sending the elements'
    # own JSON (encoded.send_encoded); None: `dynamodb`.
    transactions: object = None

    def __post_init__(self) -> None:
        self._transactions = self.transactions or self.dynamodb

    def send(self, batch: Batch) -> list[Outcome]:
        """One outcome per job of `batch` (at most TRANSACT_LIMIT jobs, from batches()), in order."""
        jobs = [planned for planned, _, _ in batch]
        if self.stats.refused is not None or any(not element for _, element, _ in batch):
            return [self.single(planned) for planned in jobs]
        return self._transact(jobs, [element for _, element, _ in batch], [encoded for _, _, encoded in batch])

    def single(self, planned: Planned) -> Outcome:
        return send_write(self.dynamodb, self.plan, planned, self.abort, self.endpoint_url)

    def _transact(self, batch: list[Planned], elements: list[dict], encoded: list[str]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        pending = list(range(len(batch)))
        attempt = stalled = 0
        while pending:
            if self.abort.is_set:
                outcomes.update(dict.fromkeys(pending, ("not_attempted", self.abort.reason, None)))
                break
            sent = EncodedItems([elements[index] for index in pending], ", ".join(encoded[index] for index in pending))
            self.stats.requests += 1
            if attempt:
                self.stats.resubmitted += len(pending)
            try:
                self._transactions.transact_write_items(
                    TransactItems=sent, ClientRequestToken=request_token(self.run_id, sent.json, attempt)
                )
            except aws_errors() as exc:
                code = error_code(exc)
                if code in REFUSED_CODES or code == "ValidationException":
                    # No transactions here, or one this batch cannot make (too large, ...):
                    # its unsettled jobs go one per request, each with its own answer.
                    if code in REFUSED_CODES:
                        self.stats.refused = describe_aws_error(exc, "send a transaction", self.endpoint_url)
                    outcomes.update({index: self.single(batch[index]) for index in pending})
                    break
                if code != CANCELLED:
                    message = self._failed(exc, batch, pending)
                    outcomes.update(dict.fromkeys(pending, ("failed", message, None)))
                    break
                settled, retry = self._cancelled(batch, pending, exc.response.get("CancellationReasons") or [])
                outcomes.update(settled)
                stalled = 0 if settled else stalled + 1
                if stalled >= STALLED_ROUNDS:
                    reason = f"transaction still cancelled after {STALLED_ROUNDS} tries (conflicting writes)"
                    outcomes.update(dict.fromkeys(retry, ("failed", reason, None)))
                    break
                if stalled:
                    self.sleep(backoff_delay(stalled))
                pending = retry
                attempt += 1
                continue
            outcomes.update(dict.fromkeys(pending, ("changed", None, None)))
            break
        return [outcomes[index] for index in range(len(batch))]

    def _cancelled(self, batch: list[Planned], pending: list[int], reasons: list[dict]):
        """({index: outcome} settled by this cancellation, indexes to send again)."""
        if len(reasons) != len(pending):
            # An answer that does not say which element failed: nothing can be settled from it.
            message = f"transaction cancelled with {len(reasons)} reasons for {len(pending)} writes"
            return dict.fromkeys(pending, ("failed", message, None)), []
        settled: dict[int, Outcome] = {}
        retry: list[int] = []
        for index, reason in zip(pending, reasons, strict=True):
            code = reason.get("Code") or "None"
            if code == "None" or code in RETRY_REASONS:
                retry.append(index)
            elif code == "ConditionalCheckFailed":
                compared = None if self.plan.state == "absent" else ("status", "error_message")
                settled[index] = ("skipped", describe_change(batch[index].job.item, reason.get("Item"), compared), None)
            else:  # ValidationError, ItemCollectionSizeLimitExceeded: this job cannot be written so
                settled[index] = ("failed", f"{code}: {reason.get('Message') or 'refused by DynamoDB'}", None)
        return settled, retry

    def _failed(self, exc: Exception, batch: list[Planned], pending: list[int]) -> str:
        first, last = batch[pending[0]].job_id, batch[pending[-1]].job_id
        doing = f"change jobs {first} to {last} ({len(pending)} in one transaction)"
        message = describe_aws_error(exc, doing, self.endpoint_url)
        if error_code(exc) not in RETRYABLE_ERROR_CODES:
            # The endpoint is gone or refuses us (botocore retried what can be): start no new work.
            self.abort.set(message)
        return message
