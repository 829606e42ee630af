"""The cleanup module's pure parts: selection, option checks, archive encoding, S3 batch deletes."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import processing_jobs_cleanup as cleanup
import pytest
import yaml
from ansible.module_utils.panzoto_archive import (
    ARCHIVE_FORMAT,
    ArchiveWriter,
    ReadStats,
    item_to_json,
    json_to_item,
    json_to_wire,
    latest_jobs,
    read_archive,
    unresolved_audio,
    unresolved_audio_owners,
)
from ansible.module_utils.panzoto_batches import delete_objects
from ansible.module_utils.panzoto_job_classification import build_rules
from ansible.module_utils.panzoto_jobs import inspect_job
from ansible.module_utils.panzoto_scan import ScanStats, query_items
from boto3.dynamodb.types import Binary
from botocore.exceptions import ClientError

NOW = datetime(2025, 10, 19, 18, 0, 0, tzinfo=UTC)
RULES = build_rules()
LEGACY = "Automatic decryption not yet implemented - requires manual trigger"


def item(job_id: str, status: str | None, age: timedelta, **attributes) -> dict:
    value = {"job_id": job_id, "user_id": "u1", "job_type": "transcription", "audio_file_id": f"a-{job_id}"}
    if status is not None:
        value["status"] = status
    value["created_at"] = (NOW - age).isoformat()
    value.update(attributes)
    return value


def selected(selection: cleanup.Selection, *items: dict) -> list[str]:
    return [entry["job_id"] for entry in items if selection.matches(inspect_job(entry, RULES))]


def selection(**options) -> cleanup.Selection:
    return cleanup.Selection(now=NOW, stuck_after=timedelta(hours=1), **options)


# --------------------------------------------------------------------------- selection


def test_categories_and_statuses_are_alternatives_and_other_options_narrow():
    jobs = [
        item("legacy", "failed", timedelta(days=10), error_message=LEGACY),
        item("retries", "failed", timedelta(days=10), error_message="Exceeded maximum retries (3)"),
        item("stuck", "pending", timedelta(hours=2)),
        item("fresh", "pending", timedelta(minutes=2)),
        item("done", "completed", timedelta(days=10)),
        item("other-user", "failed", timedelta(days=10), error_message=LEGACY, user_id="u2"),
    ]
    both = selection(categories=frozenset({"legacy_encryption"}), statuses=frozenset({"pending"}))
    assert selected(both, *jobs) == ["legacy", "stuck", "other-user"]
    narrowed = selection(categories=frozenset({"legacy_encryption"}), user_ids=frozenset({"u2"}))
    assert selected(narrowed, *jobs) == ["other-user"]
    typed = selection(statuses=frozenset({"failed"}), job_types=frozenset({"daily_summary"}))
    assert selected(typed, *jobs) == []


def test_older_than_and_stuck_after_are_strict():
    week = timedelta(days=7)
    jobs = [
        item("exactly", "failed", week, error_message=LEGACY),
        item("older", "failed", week + timedelta(seconds=1), error_message=LEGACY),
        item("stuck-exactly", "processing", timedelta(hours=1)),
        item("stuck-older", "processing", timedelta(hours=1, seconds=1)),
    ]
    assert selected(selection(statuses=frozenset({"failed"}), older_than=week), *jobs) == ["older"]
    assert selected(selection(statuses=frozenset({"processing"})), *jobs) == ["stuck-older"]


def test_malformed_items_are_selected_only_by_job_ids_alone_or_a_wipe():
    junk = item("junk", None, timedelta(days=1))
    also_junk = item("also-junk", "cancelled", timedelta(days=1))
    assert selected(selection(statuses=frozenset({"failed", "pending"})), junk, also_junk) == []
    assert selected(selection(job_ids=frozenset({"junk"})), junk, also_junk) == ["junk"]
    assert selected(selection(job_ids=frozenset({"junk"}), statuses=frozenset({"failed"})), junk) == []
    assert selected(selection(wipe_all=True), junk, also_junk) == ["junk", "also-junk"]


def test_plan_action_skips_what_cannot_be_requeued_and_leaves_done_work_unchanged():
    def plan(entry: dict, state: str) -> tuple[str, str | None]:
        return cleanup.plan_action(inspect_job(entry, RULES), state, "expires_at")

    assert plan(item("c", "completed", timedelta(days=1)), "requeued")[0] == "skipped"
    assert plan(item("p", "pending", timedelta(days=1), retry_count=Decimal(0)), "requeued")[0] == "unchanged"
    assert plan(item("p", "pending", timedelta(days=1), retry_count=Decimal(2)), "requeued")[0] == "changed"
    assert plan(item("m", None, timedelta(days=1)), "requeued")[0] == "skipped"
    assert plan(item("e", "failed", timedelta(days=1), expires_at=Decimal(1)), "expiring")[0] == "unchanged"
    assert plan(item("f", "failed", timedelta(days=1)), "absent") == ("changed", None)


def test_audio_key_needs_every_field_of_the_template():
    template = "audio_upload/{user_id}/{audio_file_id}.3gp_encrypted"
    assert cleanup.audio_key({"user_id": "u", "audio_file_id": "a"}, template) == "audio_upload/u/a.3gp_encrypted"
    assert cleanup.audio_key({"user_id": "u"}, template) is None
    assert cleanup.audio_key({"user_id": "u", "audio_file_id": Decimal(3)}, template) is None


# --------------------------------------------------------------------------- options


def params(**overrides) -> dict:
    spec = cleanup.argument_spec()
    values = {name: option.get("default") for name, option in spec.items()}
    values.update(archive_path="/tmp/archive.jsonl")
    values.update(overrides)
    return values


CATEGORIES = [rule.category for rule in RULES]
DELETABLE = [rule.category for rule in RULES if rule.deletable]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "Nothing selected"),
        ({"user_ids": ["u"]}, "Nothing selected"),
        ({"older_than": "7d"}, "Nothing selected"),
        ({"wipe_all": True}, "set confirm to the table's name"),
        ({"wipe_all": True, "confirm": "yes"}, "set confirm to the table's name"),
        ({"wipe_all": True, "confirm": "panzoto-processing-jobs", "statuses": ["failed"]}, "do not combine it with"),
        ({"wipe_all": True, "confirm": "panzoto-processing-jobs", "state": "requeued"}, "only works with state=absent"),
        ({"categories": ["legacy_encryption"], "confirm": "x"}, "confirm is only used with wipe_all"),
        ({"categories": ["nope"]}, "unknown categories nope"),
        ({"categories": ["timeout"], "delete_audio": True, "state": "requeued"}, "delete_audio only works"),
        ({"categories": ["timeout"], "archive_audio_prefix": "old/"}, "archive_audio_prefix needs delete_audio"),
        ({"categories": ["timeout"], "archive_path": None}, "archive_path is required"),
        ({"state": "restored", "archive_path": None}, "needs archive_path or archive_s3_prefix"),
        ({"categories": ["timeout"], "job_ids": []}, "job_ids is an empty list"),
        ({"categories": ["timeout"], "max_changes": 0}, "max_changes must be 1 or more"),
        ({"categories": ["timeout"], "parallel": 65}, "parallel must be between 1 and 64"),
        ({"categories": ["timeout"], "audio_key_template": "audio/{user}"}, "must use only"),
        ({"categories": ["timeout"], "audio_key_template": "audio/{user_id"}, "not a valid template"),
    ],
)
def test_bad_option_combinations_are_refused_with_one_line(overrides, message):
    with pytest.raises(cleanup.OptionError) as error:
        cleanup.validate_options(params(**overrides), CATEGORIES, DELETABLE)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"categories": ["legacy_encryption"], "delete_audio": True},
        {"categories": ["deletable"]},
        {"job_ids": ["a"]},
        {"wipe_all": True, "confirm": "panzoto-processing-jobs"},
        {"state": "restored"},
        {"state": "expiring", "statuses": ["pending"]},
    ],
)
def test_good_options_pass(overrides):
    cleanup.validate_options(params(**overrides), CATEGORIES, DELETABLE)


def test_deletable_expands_to_the_rules_that_allow_deletion():
    built = cleanup.build_selection(params(categories=["deletable"]), NOW, timedelta(hours=1), DELETABLE)
    assert built.categories == frozenset({"legacy_encryption", "decryption_error"})


def test_documentation_lists_exactly_the_module_options():
    # The AWS options are documented once, in the doc fragment the module extends.
    fragment = (Path(__file__).resolve().parents[2] / "plugins" / "doc_fragments" / "panzoto_aws.py").read_text()
    documented = yaml.safe_load(fragment.split('r"""', 1)[1].rsplit('"""', 1)[0])["options"]
    documented.update(yaml.safe_load(cleanup.DOCUMENTATION)["options"])
    assert set(documented) == set(cleanup.argument_spec())
    for name, option in cleanup.argument_spec().items():
        assert documented[name].get("default") == option.get("default"), name


# --------------------------------------------------------------------------- archive


EXOTIC = {
    "job_id": "j1",
    "duration": Decimal("1.50"),
    "huge": Decimal("12345678901234567890.123456789"),
    "tags": {"a", "b"},
    "scores": {Decimal("1"), Decimal("2.5")},
    "blob": Binary(b"\x00\xff"),
    "blobs": {Binary(b"x"), Binary(b"y")},
    "nested": {"list": [Decimal("1"), "two", None, True, {"deep": Binary(b"\x01")}]},
    "flag": False,
    "nothing": None,
}


def test_items_survive_the_archive_encoding_type_for_type():
    encoded = json.loads(json.dumps(item_to_json(EXOTIC)))
    assert encoded["duration"] == {"N": "1.50"}
    assert json_to_item(encoded) == EXOTIC
    wire = json_to_wire(encoded)
    assert wire["blob"] == {"B": b"\x00\xff"} and wire["nested"]["M"]["list"]["L"][4]["M"]["deep"] == {"B": b"\x01"}


def test_the_archive_is_private_appended_and_a_torn_last_line_is_skipped(tmp_path: Path):
    path = tmp_path / "nested" / "archive.jsonl"
    record = {"format": ARCHIVE_FORMAT, "record": "job", "table": "t", "job_id": "j1", "item": item_to_json(EXOTIC)}
    for _ in range(2):
        writer = ArchiveWriter(path).open()
        writer.append([record])
        writer.close()
    with open(path, "a") as handle:
        handle.write('{"format": 1, "record": "jo')  # a crash in the middle of a write
    assert path.stat().st_mode & 0o777 == 0o600
    stats = ReadStats()
    records = list(read_archive(path, stats))
    assert len(records) == 2 and stats.unreadable == 1
    assert json_to_item(latest_jobs(records, "t")["j1"].item) == EXOTIC


def test_latest_jobs_prefers_the_item_dynamodb_returned_on_delete():
    selected_item = item_to_json({"job_id": "j1", "retry_count": Decimal(1)})
    deleted_item = item_to_json({"job_id": "j1", "retry_count": Decimal(2)})
    records = [
        {"format": 1, "record": "job", "table": "t", "job_id": "j1", "item": selected_item},
        {"format": 1, "record": "result", "table": "t", "job_id": "j1", "outcome": "deleted", "item": deleted_item},
        {"format": 1, "record": "job", "table": "other", "job_id": "j2", "item": selected_item},
    ]
    jobs = latest_jobs(records, "t")
    assert list(jobs) == ["j1"] and jobs["j1"].item == deleted_item and jobs["j1"].outcome == "deleted"


def test_unresolved_audio_is_what_an_interrupted_run_left():
    def job(job_id: str, key: str) -> dict:
        return {"format": 1, "record": "job", "table": "t", "job_id": job_id, "audio_key": key, "delete_audio": True}

    records = [
        job("a", "k-a"),
        job("b", "k-b"),
        job("c", "k-c"),
        {"format": 1, "record": "result", "table": "t", "job_id": "c", "outcome": "skipped"},
        {"format": 1, "record": "audio", "table": "t", "deleted": ["k-a"], "kept": [], "missing": []},
        job("d", "k-a"),  # a later run selects a job with an already handled key: pending again
        {**job("e", "k-e"), "table": "other"},
    ]
    assert unresolved_audio(records, "t") == {"b": "k-b", "d": "k-a"}


# --------------------------------------------------------------------------- S3 batches


class FakeS3:
    """DeleteObjects that fails chosen keys per call, recording every request."""

    def __init__(self, key_errors=None, request_errors=None) -> None:
        self.requests: list[list[str]] = []
        self.key_errors = key_errors or (lambda call, key: None)
        self.request_errors = request_errors or (lambda call: None)

    def delete_objects(self, Bucket: str, Delete: dict) -> dict:
        keys = [entry["Key"] for entry in Delete["Objects"]]
        assert len(keys) <= 1000 and Delete["Quiet"] is True
        call = len(self.requests)
        self.requests.append(keys)
        code = self.request_errors(call)
        if code:
            raise ClientError({"Error": {"Code": code, "Message": code}}, "DeleteObjects")
        errors = [{"Key": key, "Code": code} for key in keys if (code := self.key_errors(call, key))]
        return {"Errors": errors} if errors else {}


def test_keys_are_deleted_in_batches_of_at_most_1000_once_each():
    s3 = FakeS3()
    keys = [f"k{index:05d}" for index in range(2500)]
    outcome = delete_objects(s3, "b", keys + keys[:10], sleep=lambda _: None)
    assert [len(batch) for batch in s3.requests] == [1000, 1000, 500]
    assert sorted(outcome.deleted) == keys and outcome.errors == [] and outcome.requests == 3


def test_retryable_key_errors_are_retried_and_others_reported():
    def key_errors(call: int, key: str) -> str | None:
        if key == "denied":
            return "AccessDenied"
        if key.startswith("slow") and call == 0:
            return "SlowDown"
        return None

    s3 = FakeS3(key_errors)
    outcome = delete_objects(s3, "b", ["ok", "slow1", "slow2", "denied"], sleep=lambda _: None)
    assert s3.requests == [["ok", "slow1", "slow2", "denied"], ["slow1", "slow2"]]
    assert sorted(outcome.deleted) == ["ok", "slow1", "slow2"]
    assert [(error["key"], error["code"]) for error in outcome.errors] == [("denied", "AccessDenied")]


def test_keys_still_failing_after_every_round_are_reported_not_lost():
    s3 = FakeS3(request_errors=lambda call: "SlowDown")
    outcome = delete_objects(s3, "b", ["a", "b"], rounds=3, sleep=lambda _: None)
    assert len(s3.requests) == 3 and outcome.deleted == []
    assert sorted(error["key"] for error in outcome.errors) == ["a", "b"]


def test_a_request_refused_outright_is_reported_for_its_keys_and_not_retried():
    s3 = FakeS3(request_errors=lambda call: "NoSuchBucket")
    outcome = delete_objects(s3, "b", ["a", "b"], sleep=lambda _: None)
    assert len(s3.requests) == 1
    assert {(error["key"], error["code"]) for error in outcome.errors} == {("a", "NoSuchBucket"), ("b", "NoSuchBucket")}


# --------------------------------------------------------------------------- conditional writes


class FakeModule:
    check_mode = False


class FakeDynamoDB:
    """Records write requests; answers with a conditional-check failure carrying `current` when given."""

    def __init__(self, current: dict | None = None, fail: bool = False) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.current, self.fail = current, fail

    def _answer(self, operation: str, request: dict) -> dict:
        self.requests.append((operation, request))
        if self.fail:
            response = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "failed"}}
            if self.current is not None:
                response["Item"] = self.current
            raise ClientError(response, operation)
        return {}

    def delete_item(self, **request) -> dict:
        return self._answer("DeleteItem", request)

    def update_item(self, **request) -> dict:
        return self._answer("UpdateItem", request)

    def put_item(self, **request) -> dict:
        return self._answer("PutItem", request)


def context(dynamodb: FakeDynamoDB, state: str) -> cleanup.Context:
    return cleanup.Context(FakeModule(), dynamodb, "jobs", "job_id", state, NOW, "run-1", cleanup.Abort())


def planned(entry: dict) -> cleanup.Planned:
    job = inspect_job(entry, RULES)
    return cleanup.Planned(job, cleanup.group_of(job), None)


def test_deletes_are_conditional_on_status_and_error_message_as_selected():
    dynamodb = FakeDynamoDB()
    failed = item("j1", "failed", timedelta(days=1), error_message=LEGACY)
    assert cleanup.apply_one(context(dynamodb, "absent"), planned(failed), "", params())[0] == "changed"
    operation, request = dynamodb.requests[0]
    assert operation == "DeleteItem" and request["Key"] == {"job_id": {"S": "j1"}}
    assert request["ConditionExpression"] == "attribute_exists(#k) AND #st = :st AND #er = :er"
    assert request["ExpressionAttributeValues"] == {":st": {"S": "failed"}, ":er": {"S": LEGACY}}

    dynamodb = FakeDynamoDB()
    pending = item("j2", "pending", timedelta(days=1))
    cleanup.apply_one(context(dynamodb, "absent"), planned(pending), "", params())
    assert dynamodb.requests[0][1]["ConditionExpression"].endswith("AND attribute_not_exists(#er)")


def test_requeue_resets_the_job_and_records_why():
    dynamodb = FakeDynamoDB()
    failed = item("j1", "failed", timedelta(days=1), error_message="timeout", retry_count=Decimal(3), completed_at="x")
    cleanup.apply_one(context(dynamodb, "requeued"), planned(failed), "after the fix", params())
    request = dynamodb.requests[0][1]
    assert request["UpdateExpression"].startswith("SET #st = :pending, #rc = :zero, #ra = :now, #rr = :reason")
    assert request["UpdateExpression"].endswith("REMOVE #er, #ca")
    assert request["ExpressionAttributeValues"][":reason"] == {"S": "after the fix"}
    assert request["ExpressionAttributeValues"][":le"] == {"S": "timeout"}


def test_a_changed_job_is_skipped_with_what_changed():
    current = {"job_id": {"S": "j1"}, "status": {"S": "pending"}}
    dynamodb = FakeDynamoDB(current=current, fail=True)
    failed = item("j1", "failed", timedelta(days=1), error_message=LEGACY)
    outcome, reason, _ = cleanup.apply_one(context(dynamodb, "absent"), planned(failed), "", params())
    assert outcome == "skipped" and "status is now 'pending'" in reason and "error_message is now None" in reason
    gone = FakeDynamoDB(fail=True)
    assert "no longer exists" in cleanup.apply_one(context(gone, "absent"), planned(failed), "", params())[1]


def test_restore_never_overwrites_and_is_idempotent():
    archived = {"job_id": "j1", "status": "failed", "retry_count": Decimal(1)}
    record = cleanup.ArchivedJob("j1", item_to_json(archived), "legacy_encryption", None, None, "run-0")
    absent = FakeDynamoDB()
    assert cleanup.restore_one(context(absent, "restored"), record, params()) == ("changed", None)
    assert absent.requests[0][1]["ConditionExpression"] == "attribute_not_exists(#k)"
    same = FakeDynamoDB(current=json_to_wire(item_to_json(archived)), fail=True)
    assert cleanup.restore_one(context(same, "restored"), record, params())[0] == "unchanged"
    other = FakeDynamoDB(current=json_to_wire(item_to_json({**archived, "status": "pending"})), fail=True)
    assert cleanup.restore_one(context(other, "restored"), record, params())[0] == "skipped"


# --------------------------------------------------------------------------- any table's key, and the user index


USER_INDEX = {
    "IndexName": "user-jobs-index",
    "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
    "Projection": {"ProjectionType": "ALL"},
    "IndexStatus": "ACTIVE",
}


@pytest.mark.parametrize(
    ("overrides", "indexes", "method", "reason"),
    [
        ({"categories": ["timeout"]}, [USER_INDEX], "scan", ""),
        ({"categories": ["timeout"], "user_ids": ["u1"]}, [USER_INDEX], "query", "Query on user-jobs-index"),
        ({"categories": ["timeout"], "user_ids": ["u1"], "delete_audio": True}, [USER_INDEX], "query", "Query"),
        (
            {"categories": ["timeout"], "user_ids": ["u1"], "delete_audio": True, "audio_key_template": "a/{job_id}"},
            [USER_INDEX],
            "scan",
            "has no {user_id}",
        ),
        (
            {"categories": ["timeout"], "user_ids": ["u1"], "audio_key_template": "a/{job_id}"},
            [USER_INDEX],
            "query",
            "",
        ),
        (
            {"categories": ["timeout"], "user_ids": ["u1"], "user_index": ""},
            [USER_INDEX],
            "scan",
            "user_index is empty",
        ),
        ({"categories": ["timeout"], "user_ids": ["u1"]}, [], "scan", "has no index user-jobs-index"),
        (
            {"categories": ["timeout"], "user_ids": ["u1"]},
            [{**USER_INDEX, "Projection": {"ProjectionType": "KEYS_ONLY"}}],
            "scan",
            "does not project ALL",
        ),
        (
            {"categories": ["timeout"], "user_ids": ["u1"]},
            [{**USER_INDEX, "KeySchema": [{"AttributeName": "job_type", "KeyType": "HASH"}]}],
            "scan",
            "keyed by job_type",
        ),
        ({"state": "restored", "user_ids": ["u1"]}, [USER_INDEX], "archive", "reads the archive"),
    ],
)
def test_user_ids_are_read_through_the_index_only_when_that_sees_every_job_the_run_needs(
    overrides, indexes, method, reason
):
    plan = cleanup.read_plan(params(**overrides), {"GlobalSecondaryIndexes": indexes})
    assert plan.method == method and reason in plan.reason
    assert plan.index == ("user-jobs-index" if method == "query" else None)


def any_context(hash_key: str, range_key: str | None = None, state: str = "absent") -> cleanup.Context:
    return cleanup.Context(FakeModule(), None, "t", hash_key, state, NOW, "run-1", cleanup.Abort(), None, range_key)


def test_items_of_any_table_are_named_and_keyed_by_its_key_schema():
    transcripts = any_context("transcript_id")
    assert not transcripts.jobs_table and any_context("job_id").jobs_table
    assert not any_context("job_id", "created_at").jobs_table
    entry = {"transcript_id": "t-1", "user_id": "u1", "text": "hello"}
    job = cleanup.as_job(transcripts, entry, RULES)
    assert job.job_id == "t-1" and job.malformed is None
    assert cleanup.Selection(now=NOW, stuck_after=timedelta(hours=1), wipe_all=True).matches(job)
    assert cleanup._key(transcripts, job) == {"transcript_id": {"S": "t-1"}}

    ranged = any_context("user_id", "sequence")
    row = {"user_id": "u1", "sequence": Decimal("7"), "blob": Binary(b"\x00")}
    assert cleanup.item_id(ranged, row) == '["u1", "7"]'
    assert cleanup._key(ranged, cleanup.as_job(ranged, row, RULES)) == {"user_id": {"S": "u1"}, "sequence": {"N": "7"}}
    assert cleanup.key_text(Binary(b"\x00\xff")) == "AP8="


def test_restore_puts_back_by_the_whole_key_of_any_table():
    archived = {"user_id": "u1", "sequence": Decimal(3), "text": "x"}
    record = cleanup.ArchivedJob('["u1", "3"]', item_to_json(archived), "item", None, None, "run-0")
    table = FakeDynamoDB()
    context = cleanup.Context(
        FakeModule(), table, "t", "user_id", "restored", NOW, "r", cleanup.Abort(), None, "sequence"
    )
    assert cleanup.restore_one(context, record, params()) == ("changed", None)
    assert table.requests[0][1]["Item"] == json_to_wire(item_to_json(archived))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"categories": ["legacy_encryption"]}, "categories: only for a jobs table"),
        ({"wipe_all": True, "delete_audio": True}, "delete_audio: only for a jobs table"),
        ({"job_ids": ["t-1"], "user_ids": ["u1"]}, "user_ids: only for"),
        ({"statuses": ["failed"], "older_than": "7d"}, "statuses, older_than: only for"),
    ],
)
def test_selections_that_need_jobs_are_refused_on_other_tables(overrides, message):
    error = cleanup.jobs_only_error(any_context("transcript_id"), params(**overrides))
    assert message in error and "keyed by transcript_id" in error and "\n" not in error
    assert cleanup.jobs_only_error(any_context("job_id"), params(**overrides)) is None


@pytest.mark.parametrize("state", ["requeued", "expiring"])
def test_requeue_and_expiry_are_jobs_only(state):
    error = cleanup.jobs_only_error(any_context("transcript_id", state=state), params(job_ids=["t-1"]))
    assert error.startswith(f"state={state}: only for a jobs table")


@pytest.mark.parametrize("overrides", [{"wipe_all": True}, {"job_ids": ["t-1"]}, {"state": "restored"}])
def test_wipe_job_ids_and_restore_work_on_any_table(overrides):
    assert cleanup.jobs_only_error(any_context("transcript_id"), params(**overrides)) is None


def test_unresolved_audio_owners_name_the_user_of_each_leftover():
    def job_record(job_id: str, user: str) -> dict:
        return {
            "format": ARCHIVE_FORMAT, "record": "job", "table": "jobs", "job_id": job_id, "delete_audio": True,
            "audio_key": f"audio/{user}/{job_id}", "item": item_to_json({"job_id": job_id, "user_id": user}),
        }  # fmt: skip

    records = [job_record("j1", "alice"), job_record("j2", "bob"), {**job_record("j3", "x"), "table": "other"}]
    owners = unresolved_audio_owners(records, "jobs")
    assert owners == {"j1": ("audio/alice/j1", "alice"), "j2": ("audio/bob/j2", "bob")}
    assert unresolved_audio(records, "jobs") == {"j1": "audio/alice/j1", "j2": "audio/bob/j2"}


class FakeQueries:
    """Serves `pages` pages per user on Query, recording each request."""

    def __init__(self, pages: int, fail_for: str | None = None) -> None:
        self.pages, self.fail_for = pages, fail_for
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def query(self, **request) -> dict:
        with self.lock:
            self.requests.append(request)
        user = request["ExpressionAttributeValues"][":qv"]["S"]
        if user == self.fail_for:
            raise RuntimeError(f"boom for {user}")
        page = int(request.get("ExclusiveStartKey", {}).get("page", {"N": "0"})["N"])
        answer = {"Items": [{"job_id": {"S": f"{user}-{page}-{i}"}, "user_id": {"S": user}} for i in range(3)]}
        if page + 1 < self.pages:
            answer["LastEvaluatedKey"] = {"page": {"N": str(page + 1)}}
        return answer


def test_query_items_reads_every_page_of_each_distinct_user_once_on_the_index():
    client = FakeQueries(pages=2)
    stats = ScanStats()
    items = list(query_items(client, "jobs", "user-jobs-index", "user_id", ["a", "b", "a"], None, 2, None, stats))
    assert sorted(entry["job_id"] for entry in items) == sorted(
        f"{u}-{p}-{i}" for u in "ab" for p in (0, 1) for i in range(3)
    )
    assert len(client.requests) == 4 and stats.pages == 4 and stats.items == 12
    assert {r["IndexName"] for r in client.requests} == {"user-jobs-index"}
    assert {r["KeyConditionExpression"] for r in client.requests} == {"#qk = :qv"}
    assert all(r["ExpressionAttributeNames"]["#qk"] == "user_id" for r in client.requests)
    assert list(query_items(client, "jobs", "i", "user_id", [])) == []


def test_query_items_raises_the_first_error():
    with pytest.raises(RuntimeError, match="boom for b"):
        list(query_items(FakeQueries(pages=3, fail_for="b"), "jobs", "i", "user_id", ["a", "b", "c"], None, 3))


def test_a_query_run_finishes_only_the_queried_users_leftover_audio(tmp_path: Path):
    archive = tmp_path / "archive.jsonl"
    writer = ArchiveWriter(archive).open()
    writer.append(
        {
            "format": ARCHIVE_FORMAT,
            "record": "job",
            "table": "jobs",
            "job_id": job_id,
            "delete_audio": True,
            "audio_key": f"audio/{user}/{job_id}",
            "item": item_to_json({"job_id": job_id, "user_id": user}),
        }
        for job_id, user in (("j1", "alice"), ("j2", "bob"))
    )
    writer.close()
    options = params(categories=["legacy_encryption"], delete_audio=True, user_ids=["alice"], archive_path=str(archive))
    query, scan = cleanup.ReadPlan("query", "user-jobs-index"), cleanup.ReadPlan("scan")
    # Bob's jobs are not read by the query: whether another of his jobs uses his key is unknown, so it waits.
    assert cleanup.load_pending_audio(options, "jobs", ReadStats(), query) == {"j1": "audio/alice/j1"}
    assert cleanup.load_pending_audio(options, "jobs", ReadStats(), scan) == {
        "j1": "audio/alice/j1",
        "j2": "audio/bob/j2",
    }
