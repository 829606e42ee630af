#!/usr/bin/env python3
"""Does the local endpoint implement PartiQL BatchExecuteStatement faithfully enough to batch conditional deletes?

    .venv/bin/python benchmarks/check_partiql_batch_delete.py

Starts its own moto server on 127.0.0.1, writes 40 jobs (even ones failed, odd ones completed) and
checks what DynamoDB documents for `BatchExecuteStatement`:

1. `DELETE FROM "t" WHERE job_id = ? AND status = ?` with parameters is accepted;
2. 25 such statements give 25 results, an error (ConditionalCheckFailed) for each whose condition
   did not hold, and delete exactly the jobs whose condition held;
3. a 26th statement is refused (the limit is 25).

Prints one line per check and exits 1 when any fails: then batched conditional deletes cannot be
verified (or measured) against this endpoint. See benchmarks/README.md.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

TABLE = "partiql-check"


def statement(job: int, parameters: bool = True) -> dict:
    if parameters:
        return {
            "Statement": f'DELETE FROM "{TABLE}" WHERE job_id = ? AND status = ?',
            "Parameters": [{"S": f"j{job}"}, {"S": "failed"}],
        }
    return {"Statement": f"DELETE FROM \"{TABLE}\" WHERE job_id = 'j{job}' AND status = 'failed'"}


def check(client) -> list[tuple[str, bool, str]]:
    import botocore.exceptions

    def left() -> set[str]:
        return {item["job_id"]["S"] for item in client.scan(TableName=TABLE)["Items"]}

    results = []
    try:
        client.batch_execute_statement(Statements=[statement(0)])
        results.append(("parameters (?) accepted", True, ""))
    except botocore.exceptions.ClientError as exc:
        results.append(("parameters (?) accepted", False, str(exc).splitlines()[0][:120]))

    response = client.batch_execute_statement(Statements=[statement(job, parameters=False) for job in range(1, 26)])
    answers = response["Responses"]
    failed_conditions = [job for job in range(1, 26) if job % 2]  # the completed jobs
    errors = [job for job, answer in zip(range(1, 26), answers, strict=False) if "Error" in answer]
    results.append(("a result per statement", len(answers) == 25, f"{len(answers)} results"))
    results.append(
        (
            "an error for each statement whose condition did not hold",
            errors == failed_conditions,
            f"errors for {len(errors)} of the {len(failed_conditions)}; e.g. {json.dumps(answers[0])}",
        )
    )
    remaining = left()
    results.append(
        (
            "exactly the jobs whose condition held are deleted",
            all(f"j{job}" in remaining for job in failed_conditions)
            and not any(f"j{job}" in remaining for job in range(2, 26, 2)),
            f"{len(remaining)} jobs left",
        )
    )
    try:
        client.batch_execute_statement(Statements=[statement(job, parameters=False) for job in range(26, 40)] * 2)
        results.append(("more than 25 statements refused", False, "28 statements accepted"))
    except botocore.exceptions.ClientError as exc:
        results.append(("more than 25 statements refused", True, exc.response["Error"]["Code"]))
    return results


def main() -> int:
    import boto3
    import local_aws

    os.environ.update(local_aws.FAKE_CREDENTIALS)
    with local_aws.running_server() as server:
        client = boto3.client("dynamodb", endpoint_url=server.endpoint_url, config=_no_retries())
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for job in range(40):
            status = "failed" if job % 2 == 0 else "completed"
            client.put_item(TableName=TABLE, Item={"job_id": {"S": f"j{job}"}, "status": {"S": status}})
        results = check(client)
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1


def _no_retries():
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 1})


if __name__ == "__main__":
    sys.exit(main())
