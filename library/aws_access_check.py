#!/usr/bin/python
"""Ansible module: check the AWS side of the server deployment checklist (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: aws_access_check
short_description: Check that the Panzoto DynamoDB tables, S3 bucket and encryption keys are there and accessible
description:
  - Verifies the AWS items of the ops guide's "Server Deployment Checklist" with the credentials the service uses,
    and returns one pass/fail result per item, each with a one-line detail.
  - DynamoDB tables exist, are C(ACTIVE), have the expected key and indexes, and can be read; each required index is
    C(ACTIVE) (not backfilling) and answers a Query (the backend's job list comes back empty, its error swallowed,
    while an index is missing or backfilling).
  - The S3 bucket exists and the audio prefix can be listed; optionally a probe object is written, read back and deleted.
  - AWS Secrets Manager has an encryption key for every user in the users table, and the keys it reads are well formed
    (JSON with a base64 C(encryption_key) of 32 bytes). Key material is never returned.
  - Never fails because a check failed; the caller decides (see RV(failed_checks)). Fails only on bad options.
version_added: "1.0.0"
author: panzoto-ops maintainers (@panzoto-ops)
options:
  dynamodb_tables:
    description:
      - The tables to check.
      - Defaults to the tables the backend's code uses, C(panzoto-processing-jobs) (key C(job_id), indexes
        C(user-jobs-index) and C(user-jobs-by-created-at)), C(panzoto-audio-files) (key C(file_id)),
        C(panzoto-transcripts) (key C(transcript_id), index C(user-transcripts-index)), C(panzoto-users) and
        C(panzoto-user-preferences) (key C(user_id)), C(panzoto-daily-summaries), C(panzoto-daily-summary-tracking),
        and the cost-tracking tables C(panzoto-usage-records), C(panzoto-cost-summaries) and C(panzoto-user-credits)
        in C(us-east-1), where the backend always writes them.
      - An empty list is refused (no table would be checked).
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - The table's name.
        type: str
        required: true
      key:
        description:
          - The hash key attribute the table must have. Not checked when omitted.
        type: str
      indexes:
        description:
          - Names of global secondary indexes the table must have.
          - A single name may be given as a string.
        type: list
        elements: str
        default: []
      region:
        description:
          - The region the table is in, when not the module's O(region) (the cost-tracking tables are in us-east-1).
        type: str
  s3_bucket:
    description:
      - The audio bucket. Empty to skip the S3 checks.
    type: str
    default: panzoto
  s3_prefix:
    description:
      - The prefix the service reads audio under.
    type: str
    default: audio_upload/
  s3_write_probe:
    description:
      - Also write, read back and delete a small probe object under O(s3_prefix) to prove write access.
      - Skipped in check mode, which changes nothing.
    type: bool
    default: false
  users_table:
    description:
      - The users table whose users must each have an encryption key.
      - Empty to only require that some key exists.
    type: str
    default: panzoto-users
  encryption_key_prefix:
    description:
      - Name prefix of the per-user encryption-key secrets, each named C({prefix}{user_id}).
    type: str
    default: panzoto/encryption-keys/
  key_samples:
    description:
      - How many encryption-key secrets to read and validate. Zero reads none.
    type: int
    default: 3
  max_attempts:
    description:
      - Attempts per AWS request, retries of throttling and 5xx included.
      - Low, so that a dead endpoint fails the preflight fast.
    type: int
    default: 3
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - action_common_attributes
  - panzoto_aws
"""

EXAMPLES = r"""
- name: Check the AWS side of the deployment checklist
  aws_access_check:
    region: us-east-1
  register: aws_access

- name: Check two tables only, one of them with its index
  aws_access_check:
    dynamodb_tables:
      - name: panzoto-processing-jobs
        key: job_id
        indexes: user-jobs-index
      - name: panzoto-transcripts
    users_table: ""
  register: aws_access

- name: Fail on any failed item
  ansible.builtin.fail:
    msg: "{{ aws_access.failed_checks | join('; ') }}"
  when: aws_access.failed_checks | length > 0
"""

RETURN = r"""
checks:
  description:
    - One result per checklist item, in order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description:
        - The item checked.
      type: str
      sample: DynamoDB table panzoto-processing-jobs
    ok:
      description:
        - Whether it passed.
      type: bool
      sample: true
    detail:
      description:
        - One line on what was found or what to do.
      type: str
      sample: ACTIVE, key job_id, indexes user-jobs-index, readable
failed_checks:
  description:
    - One line per failed check, its name and detail.
  returned: always
  type: list
  elements: str
  sample:
    - >-
      DynamoDB table panzoto-transcripts: ResourceNotFoundException while trying to read table
      panzoto-transcripts: Requested resource not found (check the table name and region).
"""

import base64
import binascii
import json
import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.panzoto.aws import (
    AWS_ARGUMENT_SPEC,
    aws_client,
    aws_errors,
    describe_aws_error,
    require_boto3,
    validate_aws_params,
)
from ansible.module_utils.panzoto.scan import scan_items

# The backend's code (not the guide) decides this list: both job indexes are required since 2025-10-29, and the
# cost-tracking tables are always in us-east-1, whatever region the rest is in.
COST_REGION = "us-east-1"
DEFAULT_TABLES = [
    {"name": "panzoto-processing-jobs", "key": "job_id", "indexes": ["user-jobs-index", "user-jobs-by-created-at"]},
    {"name": "panzoto-audio-files", "key": "file_id"},
    {"name": "panzoto-transcripts", "key": "transcript_id", "indexes": ["user-transcripts-index"]},
    {"name": "panzoto-users", "key": "user_id"},
    {"name": "panzoto-user-preferences", "key": "user_id"},
    {"name": "panzoto-daily-summaries"},
    {"name": "panzoto-daily-summary-tracking"},
    {"name": "panzoto-usage-records", "region": COST_REGION},
    {"name": "panzoto-cost-summaries", "region": COST_REGION},
    {"name": "panzoto-user-credits", "region": COST_REGION},
]
# Any value serves: a Query answers (with no item) only when the index exists and can be read.
INDEX_PROBE_VALUE = "panzoto-ops-preflight-probe"


def check(name: str, ok: bool, detail: str) -> dict:
    return {"name": name, "ok": ok, "detail": detail}


def check_table(client, spec: dict, endpoint: str | None) -> dict:
    where = f" in {spec['region']}" if spec.get("region") else ""
    name = f"DynamoDB table {spec['name']}{where}"
    try:
        table = client.describe_table(TableName=spec["name"])["Table"]
        client.scan(TableName=spec["name"], Limit=1, Select="COUNT")
    except aws_errors() as exc:
        return check(name, False, describe_aws_error(exc, f"read table {spec['name']}", endpoint))
    hash_key = next((key["AttributeName"] for key in table["KeySchema"] if key["KeyType"] == "HASH"), None)
    indexes = {index["IndexName"]: index for index in table.get("GlobalSecondaryIndexes", [])}
    problems = []
    if table["TableStatus"] != "ACTIVE":
        problems.append(f"status is {table['TableStatus']}")
    if spec.get("key") and hash_key != spec["key"]:
        problems.append(f"hash key is {hash_key}, expected {spec['key']}")
    missing = [index for index in spec.get("indexes", []) if index not in indexes]
    if missing:
        problems.append(f"missing index {', '.join(missing)}: create it (the backend's job list is empty without it)")
    for index_name in spec.get("indexes", []):
        if index_name in indexes:
            problems += index_problems(client, spec["name"], indexes[index_name], endpoint)
    if problems:
        return check(name, False, "; ".join(problems))
    required = list(spec.get("indexes", []))
    detail = f"ACTIVE, key {hash_key}, indexes {', '.join(sorted(indexes)) or 'none'}, readable"
    if required:
        detail += f"; {', '.join(required)} ACTIVE and answering a Query"
    return check(name, True, detail)


def index_problems(client, table: str, index: dict, endpoint: str | None) -> list[str]:
    """An index the backend queries must be ACTIVE, not backfilling, and answer a Query of one item."""
    name = index["IndexName"]
    status = index.get("IndexStatus", "ACTIVE")
    if status != "ACTIVE" or index.get("Backfilling"):
        return [f"index {name} is {'backfilling' if index.get('Backfilling') else status}: wait until it is ACTIVE"]
    hash_key = next(key["AttributeName"] for key in index["KeySchema"] if key["KeyType"] == "HASH")
    try:
        client.query(
            TableName=table,
            IndexName=name,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": hash_key},
            ExpressionAttributeValues={":v": {"S": INDEX_PROBE_VALUE}},
            Limit=1,
        )
    except aws_errors() as exc:
        return [f"index {name} cannot be queried: {describe_aws_error(exc, f'query {table} index {name}', endpoint)}"]
    return []


def dynamodb_in_region(module, region: str | None):
    """A DynamoDB client of the module's connection options in `region` (None: the module's own)."""
    if not region or region == module.params.get("region"):
        return aws_client(module, "dynamodb")
    own = module.params.get("region")
    module.params["region"] = region
    try:
        return aws_client(module, "dynamodb")
    finally:
        module.params["region"] = own


def bucket_checklist_items(client, bucket: str, prefix: str, write_probe: bool, endpoint: str | None) -> list[dict]:
    """The preflight's S3 items as results, never an exception: the bucket exists and `prefix` can be listed, and
    with `write_probe` a probe object is written, read back and deleted. (The cleanup's precondition, which refuses
    to start instead, is cleanup/audio.py's require_listable_bucket.)"""
    results = []
    try:
        client.head_bucket(Bucket=bucket)
        client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        results.append(check(f"S3 bucket {bucket}", True, f"exists; {prefix} can be listed"))
    except aws_errors() as exc:
        return [check(f"S3 bucket {bucket}", False, describe_aws_error(exc, f"list s3://{bucket}/{prefix}", endpoint))]
    if write_probe:
        key = f"{prefix}.panzoto-ops-probe-{uuid.uuid4().hex}"
        body = b"panzoto-ops access probe"
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body)
            read_back = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            client.delete_object(Bucket=bucket, Key=key)
            ok = read_back == body
            results.append(
                check(
                    f"S3 write access {bucket}",
                    ok,
                    "put, get and delete a probe object" if ok else "probe read back differs",
                )
            )
        except aws_errors() as exc:
            results.append(
                check(
                    f"S3 write access {bucket}", False, describe_aws_error(exc, f"write s3://{bucket}/{key}", endpoint)
                )
            )
    return results


def key_is_well_formed(secret_string: str) -> bool:
    try:
        key = base64.b64decode(json.loads(secret_string)["encryption_key"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return False
    return len(key) == 32


def list_key_secret_names(client, prefix: str) -> set[str]:
    names = set()
    paginator = client.get_paginator("list_secrets")
    for page in paginator.paginate(Filters=[{"Key": "name", "Values": [prefix]}]):
        # The name filter matches prefixes on AWS and moto, but also words elsewhere on AWS: keep exact prefixes.
        names.update(secret["Name"] for secret in page["SecretList"] if secret["Name"].startswith(prefix))
    return names


def check_encryption_keys(module, dynamodb, secrets, endpoint: str | None) -> list[dict]:
    params = module.params
    prefix = params["encryption_key_prefix"]
    try:
        names = list_key_secret_names(secrets, prefix)
    except aws_errors() as exc:
        return [
            check(
                "Encryption keys in Secrets Manager",
                False,
                describe_aws_error(exc, f"list secrets {prefix}*", endpoint),
            )
        ]
    results = []
    if params["users_table"]:
        try:
            users = {
                item["user_id"]
                for item in scan_items(dynamodb, params["users_table"], ["user_id"])
                if "user_id" in item
            }
        except aws_errors() as exc:
            users = None
            results.append(
                check(
                    "Encryption keys in Secrets Manager",
                    False,
                    describe_aws_error(exc, f"scan {params['users_table']}", endpoint),
                )
            )
        if users is not None:
            missing = sorted(user for user in users if f"{prefix}{user}" not in names)
            detail = f"{len(users) - len(missing)} of {len(users)} users have a key under {prefix}"
            if missing:
                detail += f"; missing for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            results.append(
                check(
                    "Encryption keys in Secrets Manager",
                    not missing and bool(names),
                    detail if names else f"no secret under {prefix}",
                )
            )
    else:
        results.append(check("Encryption keys in Secrets Manager", bool(names), f"{len(names)} secrets under {prefix}"))
    sampled = sorted(names)[: params["key_samples"]]
    bad = []
    for name in sampled:
        try:
            if not key_is_well_formed(secrets.get_secret_value(SecretId=name).get("SecretString", "")):
                bad.append(name)
        except aws_errors() as exc:
            results.append(
                check("Encryption keys are readable", False, describe_aws_error(exc, f"read secret {name}", endpoint))
            )
            return results
    if sampled:
        detail = (
            f"{len(sampled) - len(bad)} of {len(sampled)} sampled keys are JSON with a 32-byte base64 encryption_key"
        )
        if bad:
            detail += f"; malformed: {', '.join(bad)}"
        results.append(check("Encryption keys are well formed", not bad, detail))
    return results


def run_module() -> None:
    argument_spec = dict(
        dynamodb_tables=dict(
            type="list",
            elements="dict",
            options=dict(
                name=dict(type="str", required=True),
                key=dict(type="str", no_log=False),
                indexes=dict(type="list", elements="str", default=[]),
                region=dict(type="str"),
            ),
        ),
        s3_bucket=dict(type="str", default="panzoto"),
        s3_prefix=dict(type="str", default="audio_upload/"),
        s3_write_probe=dict(type="bool", default=False),
        users_table=dict(type="str", default="panzoto-users"),
        encryption_key_prefix=dict(type="str", default="panzoto/encryption-keys/", no_log=False),
        key_samples=dict(type="int", default=3, no_log=False),
        **AWS_ARGUMENT_SPEC,
    )
    argument_spec["max_attempts"] = dict(type="int", default=3)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    require_boto3(module)
    validate_aws_params(module)
    params = module.params
    tables = params["dynamodb_tables"] if params["dynamodb_tables"] is not None else DEFAULT_TABLES
    if not tables:
        # No table line at all would read as a checklist that passed: a check that checks nothing.
        module.fail_json(
            msg="dynamodb_tables is empty: no table would be checked; leave it unset for the backend's tables."
        )
    for position, spec in enumerate(tables):
        if not spec["name"]:
            module.fail_json(msg=f"dynamodb_tables[{position}].name cannot be empty.")
    if params["key_samples"] < 0:
        module.fail_json(msg="key_samples cannot be negative.")

    endpoint = params.get("endpoint_url")
    dynamodb = aws_client(module, "dynamodb")
    clients = {None: dynamodb}
    results = []
    for spec in tables:
        region = spec.get("region")
        if region not in clients:
            clients[region] = dynamodb_in_region(module, region)
        results.append(check_table(clients[region], spec, endpoint))
    if params["s3_bucket"]:
        write_probe = params["s3_write_probe"] and not module.check_mode
        results += bucket_checklist_items(
            aws_client(module, "s3"), params["s3_bucket"], params["s3_prefix"], write_probe, endpoint
        )
    results += check_encryption_keys(module, dynamodb, aws_client(module, "secretsmanager"), endpoint)
    module.exit_json(
        changed=False,
        checks=results,
        failed_checks=[f"{result['name']}: {result['detail']}" for result in results if not result["ok"]],
    )


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
