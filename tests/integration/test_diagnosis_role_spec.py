"""The job_diagnosis role's argument specs cover exactly its public variables, each typed and described,
and every name playbooks/diagnose_jobs.yml took before it was a role still reaches the role."""

from __future__ import annotations

import yaml
from support.playbook import REPO_ROOT

ROLE = REPO_ROOT / "roles" / "job_diagnosis"
# The playbook's command-line and host variables when its plays held the logic (before the role).
PLAYBOOK_NAMES = {
    "table", "region", "endpoint_url", "categories", "statuses", "older_than", "job_types", "user_ids", "job_ids",
    "stuck_after", "user_index", "classification_rules", "window_margin", "max_jobs", "segments", "now", "servers",
    "become", "unit", "read_journal", "log_dir", "log_globs", "max_records_per_job", "max_record_lines",
    "redact_patterns", "cause_rules", "evidence_limit", "report_dir", "fail_on_unread_hosts", "server_names",
}  # fmt: skip


def entry_points() -> dict[str, dict]:
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def test_every_public_variable_is_in_a_steps_argument_spec_typed_and_described():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    specs = entry_points()
    assert set(specs) == {"select", "read", "classify"}
    assert all((ROLE / "tasks" / f"{step}.yml").is_file() for step in specs)
    options = {name: spec for step in specs.values() for name, spec in step["options"].items()}
    assert set(defaults) == set(options)
    for name, spec in options.items():
        assert name.startswith("job_diagnosis_") and not name.startswith("job_diagnosis__"), name
        assert spec.get("type") and spec.get("description"), name


def test_each_default_reads_the_playbooks_name_and_no_name_was_dropped():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    for name, value in defaults.items():
        assert f"diagnose_jobs_{name.removeprefix('job_diagnosis_')} |" in str(value), name
    assert {name.removeprefix("job_diagnosis_") for name in defaults} >= PLAYBOOK_NAMES
