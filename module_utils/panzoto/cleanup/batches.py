"""Bulk writes that report every item: S3 DeleteObjects batches (sent concurrently) and bounded parallel calls.

botocore's standard retry mode retries a whole request on throttling and 5xx.
It cannot retry part of a request: DeleteObjects answers 200 with per-key
errors (S3 SlowDown under load), so what is left is retried here, with
jittered backoff, and every key ends up either deleted or reported.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise

from ansible.module_utils.panzoto.aws import RETRYABLE_ERROR_CODES, aws_errors, error_code, error_summary

S3_DELETE_BATCH = 1000  # DeleteObjects' limit per request
# DeleteObjects requests in flight at once. A 1,000-key request takes about half a second,
# so 4 at once delete some 8,000 keys a second: above S3's 3,500 deletes per second per
# prefix only where keys spread over several prefixes (audio_upload/<user>/); SlowDown per
# key beyond that is retried below.
DELETE_WORKERS = 4
# S3 answers these per key inside a 200 response when it is overloaded.
RETRYABLE_KEY_CODES = RETRYABLE_ERROR_CODES | {"InternalError", "ServiceUnavailable", "SlowDown"}


def chunks(values: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def backoff_delay(attempt: int, base: float = 0.1, cap: float = 5.0) -> float:
    """Full-jitter exponential backoff (the AWS architecture blog's recommendation)."""
    return random.uniform(0, min(cap, base * 2**attempt))


@dataclass
class DeleteOutcome:
    deleted: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # {key, code, message}
    requests: int = 0
    retried_keys: int = 0


def _delete_batch(client, bucket: str, keys: list[str]) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """One DeleteObjects request: (deleted keys, {key: (code, message)} for the rest)."""
    response = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True})
    errors = {entry["Key"]: (entry.get("Code", ""), entry.get("Message", "")) for entry in response.get("Errors", [])}
    return [key for key in keys if key not in errors], errors


def delete_objects(
    client,
    bucket: str,
    keys: Iterable[str],
    batch_size: int = S3_DELETE_BATCH,
    rounds: int = 6,
    sleep: Callable[[float], None] = time.sleep,
    workers: int = DELETE_WORKERS,
) -> DeleteOutcome:
    """Delete `keys` in batches of at most `batch_size`, `workers` batches at once, retrying retryable errors.

    Returns which keys were deleted and which were not (with S3's error code).
    A whole-request error that is not retryable (NoSuchBucket, AccessDenied) is
    reported against every key of that batch; the other batches still run.
    """
    outcome = DeleteOutcome()
    pending = list(keys)
    if any(later <= earlier for earlier, later in pairwise(pending)):
        pending = list(dict.fromkeys(pending))  # each key once; sorted distinct keys (the cleanup's) need no dict
    last_error: dict[str, tuple[str, str]] = {}

    def send(batch: list[str]) -> tuple[list[str], dict[str, tuple[str, str]]]:
        try:
            return _delete_batch(client, bucket, batch)
        except aws_errors() as exc:
            # botocore already retried the request itself; a connection
            # error here is not retried again (the endpoint is gone).
            code = error_code(exc) or type(exc).__name__
            return [], dict.fromkeys(batch, (code, error_summary(exc)))

    for attempt in range(rounds):
        if not pending:
            break
        if attempt:
            sleep(backoff_delay(attempt))
            outcome.retried_keys += len(pending)
        retry: list[str] = []
        batches = list(chunks(pending, min(batch_size, S3_DELETE_BATCH)))
        outcome.requests += len(batches)
        # Results come back in batch order, so the outcome does not depend on which answer came first.
        for deleted, errors in run_bounded(send, batches, workers):
            outcome.deleted.extend(deleted)
            for key, (code, message) in errors.items():
                last_error[key] = (code, message)
                if code in RETRYABLE_KEY_CODES:
                    retry.append(key)
                else:
                    outcome.errors.append({"key": key, "code": code, "message": message})
        pending = retry
    # Still failing after every round: reported with the last error seen.
    outcome.errors.extend({"key": key, "code": last_error[key][0], "message": last_error[key][1]} for key in pending)
    return outcome


def delete_requests_needed(key_count: int) -> int:
    """DeleteObjects requests for `key_count` keys when none fails (what a dry run predicts)."""
    return -(-key_count // S3_DELETE_BATCH)


@dataclass
class Abort:
    """Set when the endpoint is unusable, so no new work starts; work in flight finishes and is reported."""

    reason: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason

    @property
    def is_set(self) -> bool:
        return self.reason is not None


def run_bounded(function: Callable, values: list, workers: int) -> list:
    """function(value) for every value, at most `workers` at once; results in input order."""
    if workers <= 1 or len(values) <= 1:
        return [function(value) for value in values]
    with ThreadPoolExecutor(max_workers=min(workers, len(values)), thread_name_prefix="write") as pool:
        return list(pool.map(function, values))
