"""A lease every control node sees: one cleanup at a time per table, across hosts, HOMEs and endpoint spellings.

The file locks (locks.py) only stop runs of one machine and one lock directory. The lease is an item in a
DynamoDB lock table (never the jobs table: every tool would read it as a malformed job), keyed by the
jobs table's ARN from DescribeTable (account, region, name), so `http://127.0.0.1:P` and `http://localhost:P/`
contend for the same item. As in the DynamoDB lock client, the item carries its owner and a record version;
unlike it, expiry is a wall-clock time written by the holder (control nodes are NTP-synced hosts), so a
refusal can say when the lease ends. It is:

- taken by a conditional PutItem: no item, or the held one has expired (or was released), or its owner is
  a run on this host whose process is gone (a killed run's lease need not be waited out);
- renewed by a heartbeat thread every third of its duration, conditional on still being ours; a renewal
  that finds it taken sets the run's abort, so no new write starts;
- released at the end by an UpdateItem that sets its expiry to 0 and keeps who held it last.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ansible.module_utils.panzoto.aws import aws_errors, describe_aws_error, error_code, is_not_found

DEFAULT_LOCK_TABLE = "panzoto-ops-locks"
LOCK_KEY = "lock_id"
# Run ids of the leases this process holds: a lease naming this pid but none of these is left by an
# earlier run in the same process (the in-process test runner) and is as dead as a killed process's.
_HELD_HERE: set[str] = set()


class LeaseHeld(RuntimeError):
    """Another run holds the lease; the message is one line naming the owner and the expiry."""


class LeaseSetupError(RuntimeError):
    """The lock table is missing and cannot be created; the message says how to create it."""


def create_command(lock_table: str) -> str:
    return (
        f"aws dynamodb create-table --table-name {lock_table} --billing-mode PAY_PER_REQUEST "
        f"--attribute-definitions AttributeName={LOCK_KEY},AttributeType=S "
        f"--key-schema AttributeName={LOCK_KEY},KeyType=HASH"
    )


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def owner_gone(item: dict, host: str) -> bool:
    """Whether the lease's owner is a run on this host that no longer runs."""
    if item.get("host", {}).get("S") != host:
        return False
    try:
        pid = int(item.get("pid", {}).get("N", "0"))
    except ValueError:
        return False
    if pid == os.getpid():
        return item.get("run_id", {}).get("S") not in _HELD_HERE
    return pid > 0 and not _pid_alive(pid)


def describe_owner(item: dict) -> str:
    def text(name: str) -> str:
        value = item.get(name, {})
        return str(value.get("S") or value.get("N") or "?")

    until = item.get("lease_until", {}).get("N")
    expiry = _iso(int(until)) if until else "?"
    return f"host {text('host')}, pid {text('pid')}, run {text('run_id')}, lease until {expiry}"


@dataclass
class Lease:
    """One run's lease on one table. `acquire`, then `release` (in a finally)."""

    dynamodb: object
    lock_table: str
    resource: str  # the jobs table's ARN
    scope: str  # for messages: "table X"
    duration_s: int
    run_id: str
    endpoint_url: str | None = None
    host: str = field(default_factory=socket.gethostname)
    version: str = ""
    held: bool = False
    lost: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- reading (check mode too)

    def current(self) -> dict | None:
        """The lease item, or None when there is none (or no lock table yet)."""
        try:
            answer = self.dynamodb.get_item(
                TableName=self.lock_table, Key={LOCK_KEY: {"S": self.resource}}, ConsistentRead=True
            )
        except aws_errors() as exc:
            if is_not_found(exc):
                return None
            raise
        return answer.get("Item")

    def refuse_if_held(self, now: datetime | None = None) -> None:
        """LeaseHeld when a live run holds the lease (what a dry run checks; it takes nothing)."""
        item = self.current()
        if item and self._live(item, now or datetime.now(UTC)):
            raise self._held_error(item)

    def _live(self, item: dict, now: datetime) -> bool:
        until = int(item.get("lease_until", {}).get("N", "0") or 0)
        return until > _epoch(now) and not owner_gone(item, self.host)

    def _held_error(self, item: dict) -> LeaseHeld:
        return LeaseHeld(
            f"Another cleanup run holds the lease on {self.scope} ({describe_owner(item)}; lock table "
            f"{self.lock_table}): wait until it finishes or its lease expires, then run again; nothing was changed."
        )

    # ---------------------------------------------------------------- taking, renewing, releasing

    def acquire(self, abort=None) -> Lease:
        """Take the lease (creating the lock table on first use) and start the heartbeat; LeaseHeld if taken."""
        now = datetime.now(UTC)
        item = self.current()
        if item is None:
            self._ensure_table()
            condition, values = f"attribute_not_exists({LOCK_KEY})", {}
        elif self._live(item, now):
            raise self._held_error(item)
        else:  # expired, released or orphaned: take it over exactly as it was read
            condition, values = "record_version = :seen", {":seen": item.get("record_version", {"S": ""})}
        self.version = uuid.uuid4().hex
        request = {"TableName": self.lock_table, "Item": self._item(now), "ConditionExpression": condition}
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            self.dynamodb.put_item(**request)
        except aws_errors() as exc:
            if error_code(exc) == "ConditionalCheckFailedException":  # another run took it between read and put
                raise self._held_error(self.current() or {}) from None
            raise
        self.held = True
        _HELD_HERE.add(self.run_id)
        self._thread = threading.Thread(target=self._heartbeat, args=(abort,), name="lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _item(self, now: datetime) -> dict:
        return {
            LOCK_KEY: {"S": self.resource},
            "host": {"S": self.host},
            "pid": {"N": str(os.getpid())},
            "run_id": {"S": self.run_id},
            "record_version": {"S": self.version},
            "acquired_at": {"S": _iso(_epoch(now))},
            "lease_until": {"N": str(_epoch(now) + self.duration_s)},
            "lease_duration_s": {"N": str(self.duration_s)},
        }

    def _ensure_table(self) -> None:
        try:
            self.dynamodb.describe_table(TableName=self.lock_table)
            return
        except aws_errors() as exc:
            if not is_not_found(exc):
                raise
        try:
            self.dynamodb.create_table(
                TableName=self.lock_table,
                AttributeDefinitions=[{"AttributeName": LOCK_KEY, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": LOCK_KEY, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except aws_errors() as exc:
            if error_code(exc) != "ResourceInUseException":  # another run created it meanwhile
                raise LeaseSetupError(
                    f"The lock table {self.lock_table} does not exist and could not be created "
                    f"({describe_aws_error(exc, 'create it', self.endpoint_url)}): create it with: "
                    f"{create_command(self.lock_table)}"
                ) from None
        self.dynamodb.get_waiter("table_exists").wait(
            TableName=self.lock_table, WaiterConfig={"Delay": 2, "MaxAttempts": 30}
        )

    def _heartbeat(self, abort) -> None:
        interval = max(self.duration_s / 3, 1)
        while not self._stop.wait(interval):
            now = datetime.now(UTC)
            try:
                self.dynamodb.update_item(
                    TableName=self.lock_table,
                    Key={LOCK_KEY: {"S": self.resource}},
                    UpdateExpression="SET lease_until = :until, heartbeat_at = :now",
                    ConditionExpression="record_version = :mine",
                    ExpressionAttributeValues={
                        ":until": {"N": str(_epoch(now) + self.duration_s)},
                        ":now": {"S": _iso(_epoch(now))},
                        ":mine": {"S": self.version},
                    },
                )
            except aws_errors() as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    self.lost = f"the lease on {self.scope} was taken over by another run"
                    if abort is not None:
                        abort.set(f"{self.lost}: stopped before the next write")
                    return
                # A missed renewal is retried at the next beat; the lease outlives two of them.

    def release(self) -> str | None:
        """Stop the heartbeat and mark the lease free; returns a warning when it could not be released."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        _HELD_HERE.discard(self.run_id)
        if not self.held:
            return None
        self.held = False
        try:
            self.dynamodb.update_item(
                TableName=self.lock_table,
                Key={LOCK_KEY: {"S": self.resource}},
                UpdateExpression="SET lease_until = :zero, released_at = :now",
                ConditionExpression="record_version = :mine",
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":now": {"S": _iso(_epoch(datetime.now(UTC)))},
                    ":mine": {"S": self.version},
                },
            )
        except aws_errors() as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None  # someone took it over after it expired: nothing of ours to release
            return (
                f"The lease on {self.scope} could not be released "
                f"({describe_aws_error(exc, 'release it', self.endpoint_url)}); it expires by itself."
            )
        return None
