"""The selection options' spec and model, the audio key template, the table's key schema and the read plan."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import processing_jobs_cleanup
import processing_jobs_diagnose
import pytest
import yaml
from ansible.module_utils.panzoto.cleanup.plan import (
    AudioKeyTemplate,
    JobSpool,
    Selected,
    TableKey,
    cleanup_read_plan,
    key_text,
    plan_action,
    select_jobs,
)
from ansible.module_utils.panzoto.cleanup.tally import Tally
from ansible.module_utils.panzoto.jobs import inspect_job
from ansible.module_utils.panzoto.options import OptionError
from ansible.module_utils.panzoto.selection import (
    SELECTION_ARGUMENT_SPEC,
    Selection,
    expand_categories,
    refuse_empty_lists,
)
from boto3.dynamodb.types import Binary
from cleanup_fixtures import DELETABLE_BY_DEFAULT, LEGACY, NOW, RULES, item

TEMPLATE = AudioKeyTemplate.parse("audio_upload/{user_id}/{audio_file_id}.3gp_encrypted")


def selected(selection: Selection, *items: dict) -> list[str]:
    return [entry["job_id"] for entry in items if selection.matches(inspect_job(entry, RULES))]


def selection(**options) -> Selection:
    return Selection(now=NOW, stuck_after=timedelta(hours=1), **options)


def selection_fragment() -> dict:
    """The selection options as plugins/doc_fragments/panzoto_selection.py documents them."""
    path = Path(__file__).resolve().parents[2] / "plugins" / "doc_fragments" / "panzoto_selection.py"
    spec = importlib.util.spec_from_file_location("panzoto_selection_fragment", path)
    fragment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fragment)
    return yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"]


@pytest.mark.parametrize("module", [processing_jobs_cleanup, processing_jobs_diagnose], ids=lambda m: m.__name__)
def test_every_module_that_selects_jobs_takes_the_one_selection_spec_and_documents_it(module):
    spec = module.argument_spec()
    documentation = yaml.safe_load(module.DOCUMENTATION)
    documented = documentation["options"]
    if "panzoto_selection" in documentation.get("extends_documentation_fragment", []):
        # As ansible-doc merges it: the fragment's fields, with what the module says of an option on top.
        fragment = selection_fragment()
        documented = {**fragment, **{name: {**fragment.get(name, {}), **doc} for name, doc in documented.items()}}
    for name, option in SELECTION_ARGUMENT_SPEC.items():
        assert spec[name] is option, f"{name} is declared again in {module.__name__}"
        doc = documented[name]
        assert (doc["type"], doc.get("elements"), doc.get("choices")) == (
            option["type"], option.get("elements"), option.get("choices")
        ), name  # fmt: skip
        assert doc.get("default") == option.get("default"), name


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


def test_deletable_is_expanded_once_to_the_rules_that_allow_deletion():
    assert expand_categories(["deletable", "timeout"], RULES) == {*DELETABLE_BY_DEFAULT, "timeout"}
    with pytest.raises(OptionError, match="unknown categories nope: use one of"):
        expand_categories(["nope"], RULES)
    no_deletable = tuple(rule for rule in RULES if not rule.deletable)
    with pytest.raises(OptionError, match="no classification rule is deletable"):
        expand_categories(["deletable"], no_deletable)


def test_plan_action_skips_what_cannot_be_requeued_and_leaves_done_work_unchanged():
    def plan(entry: dict, state: str) -> tuple[str, str | None]:
        return plan_action(inspect_job(entry, RULES), state, "expires_at")

    assert plan(item("c", "completed", timedelta(days=1)), "requeued")[0] == "skipped"
    assert plan(item("p", "pending", timedelta(days=1), retry_count=Decimal(0)), "requeued")[0] == "unchanged"
    assert plan(item("p", "pending", timedelta(days=1), retry_count=Decimal(2)), "requeued")[0] == "changed"
    assert plan(item("m", None, timedelta(days=1)), "requeued")[0] == "skipped"
    assert plan(item("e", "failed", timedelta(days=1), expires_at=Decimal(1)), "expiring")[0] == "unchanged"
    assert plan(item("f", "failed", timedelta(days=1)), "absent") == ("changed", None)


def test_audio_key_needs_every_field_of_the_template():
    assert TEMPLATE.key_for({"user_id": "u", "audio_file_id": "a"}) == "audio_upload/u/a.3gp_encrypted"
    assert TEMPLATE.key_for({"user_id": "u"}) is None
    assert TEMPLATE.key_for({"user_id": "u", "audio_file_id": Decimal(3)}) is None
    assert TEMPLATE.has_user and not AudioKeyTemplate.parse("a/{job_id}").has_user


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("audio/{user}", "must use only"),
        ("audio/{user_id", "not a valid template"),
        ("audio/plain", "at least one"),
        ("audio/{user_id[0]}", "must use only"),
    ],
)
def test_bad_templates_are_refused_with_one_line(template, message):
    with pytest.raises(OptionError, match="audio_key_template") as error:
        AudioKeyTemplate.parse(template)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_items_of_any_table_are_named_and_keyed_by_its_key_schema():
    transcripts = TableKey("transcript_id")
    assert not transcripts.jobs_table and TableKey("job_id").jobs_table
    assert not TableKey("job_id", "created_at").jobs_table
    entry = {"transcript_id": "t-1", "user_id": "u1", "text": "hello"}
    job = transcripts.as_job(entry, RULES)
    assert job.job_id == "t-1" and job.malformed is None
    assert selection(wipe_all=True).matches(job)

    ranged = TableKey.from_description(
        {
            "KeySchema": [
                {"AttributeName": "user_id", "KeyType": "HASH"},
                {"AttributeName": "sequence", "KeyType": "RANGE"},
            ]
        }
    )
    row = {"user_id": "u1", "sequence": Decimal("7"), "blob": Binary(b"\x00")}
    assert ranged.item_id(row) == '["u1", "7"]' and ranged.names() == ("user_id", "sequence")
    assert key_text(Binary(b"\x00\xff")) == "AP8="
    assert ranged.report() == {"hash": "user_id", "range": "sequence", "jobs_table": False}


@pytest.mark.parametrize(
    ("used", "state", "message"),
    [
        (["categories"], "absent", "categories: only for a jobs table"),
        (["delete_audio"], "absent", "delete_audio: only for a jobs table"),
        (["statuses", "older_than"], "absent", "statuses, older_than: only for"),
        ([], "requeued", "state=requeued: only for a jobs table"),
        ([], "expiring", "state=expiring: only for a jobs table"),
    ],
)
def test_selections_that_need_jobs_are_refused_on_other_tables(used, state, message):
    with pytest.raises(OptionError) as error:
        TableKey("transcript_id").refuse_jobs_only("t", state, used)
    assert message in str(error.value) and "keyed by transcript_id" in str(error.value)
    TableKey("job_id").refuse_jobs_only("t", state, used)  # a jobs table takes them
    TableKey("transcript_id").refuse_jobs_only("t", "absent", [])  # wipe_all, job_ids, restore


USER_INDEX = {
    "IndexName": "user-jobs-index",
    "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}],
    "Projection": {"ProjectionType": "ALL"},
    "IndexStatus": "ACTIVE",
}


@pytest.mark.parametrize(
    ("state", "user_ids", "index", "delete_audio", "template", "indexes", "method", "reason"),
    [
        ("absent", None, "user-jobs-index", False, TEMPLATE, [USER_INDEX], "scan", ""),
        ("absent", {"u1"}, "user-jobs-index", False, TEMPLATE, [USER_INDEX], "query", "Query on user-jobs-index"),
        ("absent", {"u1"}, "user-jobs-index", True, TEMPLATE, [USER_INDEX], "query", "Query"),
        ("absent", {"u1"}, "user-jobs-index", True, AudioKeyTemplate.parse("a/{job_id}"), [USER_INDEX], "scan",
         "has no {user_id}"),
        ("absent", {"u1"}, "user-jobs-index", False, AudioKeyTemplate.parse("a/{job_id}"), [USER_INDEX], "query", ""),
        ("absent", {"u1"}, "", False, TEMPLATE, [USER_INDEX], "scan", "user_index is empty"),
        ("absent", {"u1"}, "user-jobs-index", False, TEMPLATE, [], "scan", "has no index user-jobs-index"),
        ("absent", {"u1"}, "user-jobs-index", False, TEMPLATE,
         [{**USER_INDEX, "Projection": {"ProjectionType": "KEYS_ONLY"}}], "scan", "does not project ALL"),
        ("absent", {"u1"}, "user-jobs-index", False, TEMPLATE,
         [{**USER_INDEX, "KeySchema": [{"AttributeName": "job_type", "KeyType": "HASH"}]}], "scan",
         "keyed by job_type"),
        ("restored", {"u1"}, "user-jobs-index", False, TEMPLATE, [USER_INDEX], "archive", "reads the archive"),
    ],
)  # fmt: skip
def test_user_ids_are_read_through_the_index_only_when_that_sees_every_job_the_run_needs(
    state, user_ids, index, delete_audio, template, indexes, method, reason
):
    users = frozenset(user_ids) if user_ids is not None else None
    plan = cleanup_read_plan(state, users, index, delete_audio, template, {"GlobalSecondaryIndexes": indexes})
    assert plan.method == method and reason in plan.reason
    assert plan.index == ("user-jobs-index" if method == "query" else None)


def test_one_pass_keeps_at_most_max_changes_and_the_audio_of_every_kept_job():
    items = [
        item("legacy-1", "failed", timedelta(days=1), error_message=LEGACY, audio_file_id="shared"),
        item("legacy-2", "failed", timedelta(days=1), error_message=LEGACY),
        item("legacy-3", "failed", timedelta(days=1), error_message=LEGACY),
        item("kept", "completed", timedelta(days=1), audio_file_id="shared"),
        item("earlier", "completed", timedelta(days=1)),
    ]
    tally = Tally(10)
    scan = select_jobs(
        items, TableKey("job_id"), RULES, selection(categories=frozenset({"legacy_encryption"})), "absent",
        "expires_at", TEMPLATE, 2, tally, {"earlier"},
    )  # fmt: skip
    assert scan.change_count == 3 and [p.job.job_id for p in scan.changes] == ["legacy-1", "legacy-2"]
    assert scan.changes[0].audio_key == "audio_upload/u1/shared.3gp_encrypted"
    assert "audio_upload/u1/shared.3gp_encrypted" in scan.kept_keys and scan.seen_pending_jobs == {"earlier"}
    assert tally.report()["selected"] == 3


@pytest.mark.parametrize("template", ["a/{user_id:d}", "a/{user_id!r}/{job_id}", "a/{job_id:>10}", "a/{job_id!s}"])
def test_format_specs_and_conversions_are_refused_before_any_key_is_built(template):
    with pytest.raises(OptionError, match="has a format spec or conversion") as error:
        AudioKeyTemplate.parse(template)
    assert str(error.value).startswith("audio_key_template") and "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["job_types", "user_ids", "job_ids"])
def test_an_empty_narrowing_list_is_refused_by_the_shared_selection_for_both_modules(name):
    from ansible.module_utils.panzoto.classification import build_rules
    from ansible.module_utils.panzoto.options import OptionError
    from ansible.module_utils.panzoto.selection import SELECTION_ARGUMENT_SPEC, selection_from_params

    params = {option: spec.get("default") for option, spec in SELECTION_ARGUMENT_SPEC.items()}
    rules = build_rules()
    now = inspect_job({"job_id": "x", "created_at": "2025-10-19T18:00:00Z"}).created_at
    assert selection_from_params(params, rules, now).job_ids is None  # None: not given, no narrowing
    with pytest.raises(OptionError, match=f"^{name} is an empty list: it would select nothing"):
        selection_from_params({**params, name: []}, rules, now)
    # The diagnosis reads the same options through the same function (its own category default).
    with pytest.raises(OptionError, match=f"^{name} is an empty list"):
        selection_from_params({**params, name: []}, rules, now, ["max_retries"])


def test_selected_items_wait_in_the_spool_and_come_back_exactly_whatever_the_cache(monkeypatch):
    # Every type a real item may hold: numbers, sets, binary, nested maps and lists, None.
    extra = {
        "retry_count": Decimal("3"),
        "size": Decimal("12345678901234567890123456789012345678"),
        "tags": {"a", "b"},
        "sizes": {Decimal("1"), Decimal("2.5")},
        "blob": Binary(b"\x00\x01"),
        "meta": {"steps": [Decimal("1"), "two", None, True]},
    }
    items = [item(f"legacy-{n}", "failed", timedelta(days=1), error_message=LEGACY, **extra) for n in range(7)]
    monkeypatch.setattr(JobSpool, "CACHE", 2)  # read back from the file, not from the cache, most of the time
    scan = select_jobs(
        items, TableKey("job_id"), RULES, selection(categories=frozenset({"legacy_encryption"})), "absent",
        "expires_at", TEMPLATE, 10, Tally(10),
    )  # fmt: skip
    assert [p.job_id for p in scan.changes] == [f"legacy-{n}" for n in range(7)]
    assert all(p._job is None for p in scan.changes)  # the heap holds ids, groups and keys, not the items
    for _ in range(2):  # twice: evicted jobs are read again
        for planned, original in zip(scan.changes, items, strict=True):
            assert planned.job == inspect_job(original, RULES)
            assert {name: type(value) for name, value in planned.job.item.items()} == {
                name: type(value) for name, value in original.items()
            }
    assert scan.changes[0].audio_key == "audio_upload/u1/a-legacy-0.3gp_encrypted"
    assert len(scan.spool._cache) == 2


@pytest.mark.parametrize("name", ["job_types", "user_ids", "job_ids"])
@pytest.mark.parametrize("value", [[], [""], ["  "]])
def test_a_narrowing_list_of_nothing_is_refused_as_empty(name: str, value: list) -> None:
    with pytest.raises(OptionError, match=rf"^{name} is an empty list: it would select nothing"):
        refuse_empty_lists({name: value})


def test_a_selection_holds_no_python_object_per_job(monkeypatch):
    # A Planned (80 B) with its id and audio key strings (about 60 + 90 B here) per job, held for the whole run,
    # was most of a large run's memory; packed, a job costs its id's and key's bytes and a few offsets.
    import tracemalloc

    jobs = 3_000
    items = [item(f"legacy-{n}", "failed", timedelta(days=1), error_message=LEGACY) for n in range(jobs)]
    monkeypatch.setattr(JobSpool, "CACHE", 16)  # the held items are not what this measures
    tracemalloc.start()
    try:
        scan = select_jobs(
            items, TableKey("job_id"), RULES, selection(categories=frozenset({"legacy_encryption"})), "absent",
            "expires_at", TEMPLATE, jobs, Tally(10),
        )  # fmt: skip
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(scan.changes, Selected) and len(scan.changes) == jobs
    assert held / jobs < 160, f"{held / jobs:.0f} B held per selected job"
    assert scan.changes[jobs - 1].job_id == f"legacy-{jobs - 1}"
    assert [p.audio_key for p in scan.changes][:1] == ["audio_upload/u1/a-legacy-0.3gp_encrypted"]
    scan.spool.close()


def test_the_changed_ids_reported_are_the_smallest_whatever_how_many_changed():
    tally = Tally(3)
    ids = [f"job-{n:05d}" for n in range(5_000)]
    for job_id in reversed(ids):
        tally.select("g")
        tally.outcome("g", job_id, "changed")
    assert tally.report()["job_ids"] == ids[:3]
    assert len(tally.changed_ids) < 2 * 3 + 1024
    assert tally.report()["counts"]["changed"] == 5_000


def test_the_spool_holds_one_chunk_of_jobs_and_decodes_each_once_per_chunk(monkeypatch):
    # Each job in the heap costs its item: the module sizes the spool to its write chunk, not more, not less.
    items = [item(f"legacy-{n}", "failed", timedelta(days=1), error_message=LEGACY) for n in range(50)]
    scan = select_jobs(
        items, TableKey("job_id"), RULES, selection(categories=frozenset({"legacy_encryption"})), "absent",
        "expires_at", TEMPLATE, 50, Tally(10), chunk_size=8,
    )  # fmt: skip
    assert len(scan.spool._held) == 8
    decoded = []
    as_job = TableKey.as_job
    monkeypatch.setattr(
        TableKey, "as_job", lambda key, raw, rules: decoded.append(raw["job_id"]) or as_job(key, raw, rules)
    )
    chunk = [scan.changes[index] for index in range(16, 24)]
    for _ in range(3):  # a chunk's archive records, its writes and its outcomes each read its jobs
        assert [planned.job.job_id for planned in chunk] == [f"legacy-{n}" for n in range(16, 24)]
    assert decoded == [f"legacy-{n}" for n in range(16, 24)]
    scan.spool.close()


def test_after_the_writes_a_selection_keeps_only_its_audio_keys():
    items = [item(f"legacy-{n}", "failed", timedelta(days=1), error_message=LEGACY) for n in range(40)]
    scan = select_jobs(
        items, TableKey("job_id"), RULES, selection(categories=frozenset({"legacy_encryption"})), "absent",
        "expires_at", TEMPLATE, 40, Tally(10), chunk_size=8,
    )  # fmt: skip
    spool_file = scan.spool._file
    assert spool_file is not None and scan.spool._held
    scan.changes.drop_jobs()
    assert not scan.spool._held and not scan.spool._cache and spool_file.closed
    assert len(scan.changes) == 40
    assert [scan.changes.audio_key(n) for n in (0, 39)] == [
        "audio_upload/u1/a-legacy-0.3gp_encrypted",
        "audio_upload/u1/a-legacy-39.3gp_encrypted",
    ]
    with pytest.raises(TypeError):
        scan.changes[0]
