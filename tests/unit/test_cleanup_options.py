"""processing_jobs_cleanup's argument spec, typed options and documentation."""

from __future__ import annotations

from pathlib import Path

import processing_jobs_cleanup as cleanup
import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.panzoto.aws import AWS_ARGUMENT_SPEC
from ansible.module_utils.panzoto.options import OptionError
from ansible.plugins.loader import fragment_loader
from cleanup_fixtures import DELETABLE_BY_DEFAULT, NOW

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection options fall back to AWS_* variables, which the local AWS endpoint's fixture
    exports for the whole session; the spec is judged here on what each test gives, nothing else."""
    for option in AWS_ARGUMENT_SPEC.values():
        for name in option.get("fallback", (None, []))[1]:
            monkeypatch.delenv(name, raising=False)


def params(**overrides) -> dict:
    values = {name: option.get("default") for name, option in cleanup.argument_spec().items()}
    values.update(archive_path="/tmp/archive.jsonl", now="2025-10-19T18:00:00Z")
    values.update(overrides)
    return values


def validate_spec(**given) -> list[str]:
    """What the argument spec alone refuses (as AnsibleModule runs it), as messages."""
    validator = ArgumentSpecValidator(cleanup.argument_spec(), **cleanup.SPEC_CONSTRAINTS)
    return [str(error) for error in validator.validate(given).errors]


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
        ({"categories": ["timeout"], "archive_path": ""}, "archive_path is required"),
        ({"state": "restored", "archive_path": None}, "needs archive_path or archive_s3_prefix"),
        ({"state": "restored", "statuses": ["failed"]}, "statuses does not apply to state=restored"),
        ({"categories": ["timeout"], "job_ids": []}, "job_ids is an empty list"),
        ({"categories": ["timeout"], "max_changes": 0}, "max_changes must be 1 or more"),
        ({"categories": ["timeout"], "parallel": 65}, "parallel must be between 1 and 64"),
        ({"categories": ["timeout"], "audio_key_template": "audio/{user}"}, "must use only"),
        ({"categories": ["timeout"], "audio_key_template": "audio/{user_id"}, "not a valid template"),
        ({"categories": ["timeout"], "stuck_after": "soon"}, "stuck_after: invalid duration"),
        ({"categories": ["timeout"], "now": "yesterday"}, "invalid now"),
        ({"categories": ["x"], "classification_rules": [{"category": "X"}]}, "classification_rules[0].category"),
    ],
)
def test_bad_option_combinations_are_refused_with_one_line(overrides, message):
    with pytest.raises(OptionError) as error:
        cleanup.CleanupOptions.from_params(params(**overrides))
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
        {"categories": ["quota"], "classification_rules": [{"category": "quota", "match": "insufficient_quota"}]},
    ],
)
def test_good_options_pass(overrides):
    cleanup.CleanupOptions.from_params(params(**overrides))


def test_options_are_parsed_once_into_typed_values():
    opts = cleanup.CleanupOptions.from_params(params(categories=["deletable"], older_than="7d", user_ids=["u1"]))
    assert opts.categories == frozenset(DELETABLE_BY_DEFAULT)
    assert opts.selection.older_than.days == 7 and opts.user_ids == frozenset({"u1"}) and opts.now == NOW
    assert opts.archive_path == Path("/tmp/archive.jsonl") and opts.jobs_only_used == (
        "categories",
        "older_than",
        "user_ids",
    )
    assert opts.template.fields == ("user_id", "audio_file_id")


def test_user_rules_inherit_what_they_leave_out_through_the_sub_spec():
    # The sub-spec fills left-out keys with None; they must not erase the default rule's values.
    rules = [
        {"category": "timeout", "match": None, "regex": None, "solution": "wait", "deletable": True, "remove": None}
    ]
    opts = cleanup.CleanupOptions.from_params(params(categories=["deletable"], classification_rules=rules))
    timeout = next(rule for rule in opts.rules if rule.category == "timeout")
    assert timeout.pattern == "timeout" and timeout.deletable and "timeout" in opts.categories


def test_the_argument_spec_states_the_constraints_it_can_express():
    assert "state is absent but all of the following are missing: archive_path" in validate_spec(categories=["x"])
    assert any("archive_path, archive_s3_prefix" in m for m in validate_spec(state="restored"))
    assert validate_spec(state="restored", archive_s3_prefix="ops/") == []
    assert any("required together" in m for m in validate_spec(archive_path="a", access_key="AKIA"))
    refused = validate_spec(archive_path="a", classification_rules=[{"category": "x", "matches": "typo"}])
    assert any("classification_rules.matches" in m for m in refused)
    assert any("category" in m for m in validate_spec(archive_path="a", classification_rules=[{"match": "x"}]))


def fragment_options(name: str) -> dict:
    """The options a fragment adds, found as Ansible finds it: the project's (plugins/doc_fragments) or its own."""
    fragment_loader.add_directory(str(REPO_ROOT / "plugins" / "doc_fragments"))
    fragment = fragment_loader.get(name)
    assert fragment is not None, f"no documentation fragment {name}"
    return yaml.safe_load(fragment.DOCUMENTATION).get("options", {})


def test_documentation_lists_exactly_the_module_options_and_suboptions():
    documented = yaml.safe_load(cleanup.DOCUMENTATION)
    options = dict(documented["options"])
    for fragment in documented["extends_documentation_fragment"]:
        options.update(fragment_options(fragment))
    spec = cleanup.argument_spec()
    assert set(options) == set(spec)
    for name, option in spec.items():
        assert options[name].get("default") == option.get("default"), name
        assert options[name].get("type", "str") == option.get("type", "str"), name
        assert sorted(options[name].get("aliases", [])) == sorted(option.get("aliases", [])), name
        if "options" in option:
            assert set(options[name]["suboptions"]) == set(option["options"]), name


# Keys Ansible gives a meaning to in a task result: a module must not return them for anything else.
RESERVED_RESULT_KEYS = {
    "skipped", "failed", "unreachable", "rc", "stdout", "stdout_lines", "stderr", "stderr_lines", "results",
    "invocation", "ansible_facts", "warnings", "deprecations", "exception", "attempts", "retries", "backup_file",
    "skip_reason", "item", "ansible_loop_var", "ansible_index_var", "censored", "module_stdout", "module_stderr",
}  # fmt: skip


def test_no_result_key_is_one_ansible_reserves():
    returned = set(yaml.safe_load(cleanup.RETURN))
    assert not returned & RESERVED_RESULT_KEYS, returned & RESERVED_RESULT_KEYS
