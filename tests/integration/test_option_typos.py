"""A misspelt audit_*, retention_jobs_* or preflight_* variable is refused, through ansible-playbook, before anything
runs: one line naming what was typed and the close match, a non-zero exit, nothing written or changed.

The names each playbook accepts come from one place (its play vars, or preflight's preflight__settings), and
the test at the end fails when a playbook reads a variable of its prefix that is missing from that place.
"""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
import seed_jobs
import yaml
from support.playbook import REPO_ROOT, PlaybookRun, run_playbook

PLAYBOOKS = REPO_ROOT / "playbooks"
# A run that got past the check would read the snapshot and write its reports; the typo stops it first.
TYPOS = {
    "audit_report_dirr": ("audit_jobs.yml", "audit_report_dir", {}),
    "audit_fail_on_breech": ("audit_jobs.yml", "audit_fail_on_breach", {}),
    "retention_jobs_failed_aftr": ("retention_jobs.yml", "retention_jobs_failed_after", {}),
    "preflight_bukcet": ("preflight.yml", "preflight_bucket", {"preflight_aws_only": True}),
}
# Where each playbook writes, set to the test's directory so that "nothing written" is checked there.
OUTPUT_VARS = {
    "audit_jobs.yml": lambda out: {"audit_report_dir": str(out), "audit_state_dir": str(out)},
    "retention_jobs.yml": lambda out: {
        "retention_jobs_report_dir": str(out),
        "retention_jobs_archive_path": str(out / "archive.jsonl"),
    },
    "preflight.yml": lambda out: {"preflight_report_dir": str(out)},
}


@pytest.fixture
def snapshot(aws) -> str:
    seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    return aws.endpoint_url


def table_items(endpoint_url: str) -> list[dict]:
    client = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")
    pages = client.get_paginator("scan").paginate(TableName="panzoto-processing-jobs", ConsistentRead=True)
    return sorted((item for page in pages for item in page["Items"]), key=lambda item: item["job_id"]["S"])


def refusal_lines(run: PlaybookRun, typed: str) -> list[str]:
    """The lines of the output that refuse `typed` (the error line on stderr holds the whole message)."""
    return [line for line in run.output.splitlines() if f"{typed} is not a variable of this playbook" in line]


@pytest.mark.parametrize("typed", TYPOS)
def test_a_misspelt_variable_is_refused_in_one_line_with_its_close_match(typed: str, snapshot: str, tmp_path: Path):
    playbook, meant, extra = TYPOS[typed]
    out = tmp_path / "out"
    before = table_items(snapshot)
    run = run_playbook(
        playbook,
        extra_vars={**OUTPUT_VARS[playbook](out), **extra, typed: "1d"},
        env={"AWS_ENDPOINT_URL": snapshot},
    )
    assert run.returncode != 0, run.output[-3000:]
    lines = refusal_lines(run, typed)
    assert any(f"(did you mean {meant}?)" in line and "; nothing was" in line for line in lines), run.output[-3000:]
    # Refused before anything ran: no task after the check, no report directory, the table as it was.
    assert run.stats["localhost"]["ok"] <= 1 and run.stats["localhost"]["failed"] == 1, run.output[-3000:]
    assert not out.exists()
    assert table_items(snapshot) == before


def test_a_name_close_to_none_and_a_working_variable_are_refused_too(snapshot: str, tmp_path: Path):
    out = tmp_path / "out"
    run = run_playbook(
        "retention_jobs.yml",
        extra_vars={
            **OUTPUT_VARS["retention_jobs.yml"](out),
            "retention_jobs_everything": True,
            "retention_jobs__selections": [],
        },
        env={"AWS_ENDPOINT_URL": snapshot},
    )
    assert run.returncode != 0 and not out.exists()
    for typed in ("retention_jobs_everything", "retention_jobs__selections"):
        (line, *_) = refusal_lines(run, typed)
        assert "none of its retention_jobs_* variables is close" in line, line
        assert "playbooks/retention_jobs.yml" in line


def test_the_audit_schedule_role_variables_an_inventory_shares_are_not_audit_typos(snapshot: str, tmp_path: Path):
    """audit_schedule_* start with audit_ but belong to roles/audit_schedule: an inventory for both holds them."""
    run = run_playbook(
        "audit_jobs.yml",
        extra_vars={
            **OUTPUT_VARS["audit_jobs.yml"](tmp_path),
            "audit_schedule_on_calendar": "hourly",
            "audit_fail_on_breach": False,
            "audit_outputs": ["json"],
        },
        env={"AWS_ENDPOINT_URL": snapshot},
    )
    assert run.returncode == 0, run.output[-3000:]
    assert (tmp_path / "job-audit.json").is_file()


# --- The known names are what the playbooks read -------------------------------------------------------------

# A variable read in a template or a condition: its name, not preceded by an attribute dot, a path or a word
# (a name ending in an underscore is a prefix, such as the audit's ignore=['audit_schedule_']).
READ = r"(?<![\w./-]){prefix}[a-z0-9_]*[a-z0-9](?![\w])"


def strings_and_keys(node, strings: list[str], assigned: set[str]) -> None:
    """Every string value of a playbook, and the names it assigns (vars keys, set_fact keys, register, loop_var)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("vars", "ansible.builtin.set_fact", "set_fact") and isinstance(value, dict):
                assigned.update(map(str, value))
            if key == "register" or key == "loop_var":
                assigned.add(str(value))
            # set_stats publishes names for a later AWX job; they are not read here.
            if key in ("ansible.builtin.set_stats", "set_stats"):
                continue
            strings_and_keys(value, strings, assigned)
    elif isinstance(node, list):
        for value in node:
            strings_and_keys(value, strings, assigned)
    elif isinstance(node, str):
        strings.append(node)


def settings_read(prefix: str, documents: list, templates: list[str] = ()) -> set[str]:
    """The prefix's names the documents (and their templates' text) read and do not assign: the playbook's settings."""
    strings: list[str] = list(templates)
    assigned: set[str] = set()
    for document in documents:
        strings_and_keys(document, strings, assigned)
    pattern = re.compile(READ.format(prefix=prefix))
    read = {name for text in strings for name in pattern.findall(text)}
    return read - {name for name in assigned if name not in PLAY_VARS_ARE_SETTINGS.get(prefix, ())}


def load(*paths: Path) -> list:
    return [yaml.safe_load(path.read_text()) for path in paths]


def play_vars(playbook: str) -> dict:
    return yaml.safe_load((PLAYBOOKS / playbook).read_text())[0]["vars"]


def public(names, prefix: str) -> set[str]:
    return {name for name in names if name.startswith(prefix) and not name[len(prefix) :].startswith("_")}


# audit_jobs.yml and retention_jobs.yml keep their settings as play vars: there, assigning is declaring.
PLAY_VARS_ARE_SETTINGS = {
    "audit_": public(play_vars("audit_jobs.yml"), "audit_"),
    "retention_jobs_": public(play_vars("retention_jobs.yml"), "retention_jobs_"),
}
PREFLIGHT_FILES = [
    PLAYBOOKS / "preflight.yml",
    PLAYBOOKS / "tasks" / "preflight_openai_key.yml",
    PLAYBOOKS / "tasks" / "preflight_report.yml",
]
# Each playbook: its prefix, the documents it runs, the names its check accepts.
KNOWN = {
    "audit_jobs.yml": ("audit_", [PLAYBOOKS / "audit_jobs.yml"], PLAY_VARS_ARE_SETTINGS["audit_"]),
    "retention_jobs.yml": (
        "retention_jobs_",
        [PLAYBOOKS / "retention_jobs.yml"],
        PLAY_VARS_ARE_SETTINGS["retention_jobs_"],
    ),
    "preflight.yml": ("preflight_", PREFLIGHT_FILES, set(play_vars("preflight.yml")["preflight__settings"])),
}


@pytest.mark.parametrize("playbook", KNOWN)
def test_every_variable_a_playbook_reads_is_one_its_check_accepts(playbook: str) -> None:
    prefix, files, known = KNOWN[playbook]
    templates = [path.read_text() for path in (PLAYBOOKS / "templates").glob(f"{prefix}*.j2")]
    read = public(settings_read(prefix, load(*files), templates), prefix)
    assert read - known == set(), f"{playbook} reads these without accepting them"
    assert known - read == set(), f"{playbook} accepts these without reading them"


def test_the_comparison_finds_a_setting_read_but_not_declared() -> None:
    """The check above can fail: a task reading a new preflight setting, or the audit's, is found."""
    planted = [{"tasks": [{"name": "new", "ansible.builtin.debug": {"msg": "{{ preflight_new_thing | default(1) }}"}}]}]
    read = settings_read("preflight_", load(*PREFLIGHT_FILES) + planted)
    assert "preflight_new_thing" in read - set(play_vars("preflight.yml")["preflight__settings"])
    planted = [{"tasks": [{"when": "audit_new_thing | default(false)", "ansible.builtin.meta": "noop"}]}]
    assert "audit_new_thing" in settings_read("audit_", planted) - PLAY_VARS_ARE_SETTINGS["audit_"]
    # Attribute reads, paths and published names are not settings.
    quiet = [{"x": "{{ audit.audit_status }} tasks/preflight_openai_key.yml", "ansible.builtin.set_stats": {"data":
              {"audit_failed": 1}}}]  # fmt: skip
    assert settings_read("audit_", quiet) == set() and settings_read("preflight_", quiet) == set()
