"""Each deploy item runs alone by its tag (docs/releases.md "One item alone"): `--list-tasks --tags TAG` on
playbooks/deploy.yml lists that item's tasks, the read-only settings checks, and nothing else."""

from __future__ import annotations

import re
import subprocess
from functools import cache

import pytest
import yaml
from support.playbook import REPO_ROOT, VENV_BIN

PLAYBOOK = REPO_ROOT / "playbooks" / "deploy.yml"
DOC = REPO_ROOT / "docs" / "releases.md"
TASK_LINE = re.compile(r"^ {6}(?P<name>.+?)\tTAGS: \[(?P<tags>[^\]]*)\]$")
SERVICE = "Ensure the service runs the current release and passes its health gate."
LIVENESS = "Prove the processor alive from its heartbeat."
PROVEN = "Record the release as healthy, prune old releases and show the deploy history."
ENV_FILE = "panzoto_app : Ensure the release's environment file holds the settings and secrets."
FFMPEG = {"ffmpeg : Ensure ffmpeg is installed.", "ffmpeg : Ensure ffmpeg converts 3gp audio to mp3 and wav."}


@cache
def listed(*tags: str) -> dict[str, set[str]]:
    """{task name: its tags} as `ansible-playbook --list-tasks [--tags ...]` prints them."""
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(REPO_ROOT / "inventory" / "production"), str(PLAYBOOK)]
    command += ["--list-tasks", *(["--tags", ",".join(tags)] if tags else [])]
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    tasks = {}
    for line in run.stdout.splitlines():
        match = TASK_LINE.match(line)
        if match:
            tasks[match["name"]] = {tag.strip() for tag in match["tags"].split(",") if tag.strip()}
    assert tasks, run.stdout
    return tasks


def is_check(name: str) -> bool:
    """The read-only checks every tag runs: the play's settings checks and each role's argument validation."""
    return name.startswith("Check ") or " : Validating arguments against arg spec " in name


def selected(tag: str) -> set[str]:
    """What the tag selects besides the checks."""
    return {name for name in listed(tag) if not is_check(name)}


def documented_tags() -> list[str]:
    section = DOC.read_text().split("### One item alone", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)


def test_the_documented_tags_are_the_ones_tested():
    assert documented_tags() == ["ffmpeg", "app", "secrets", "service", "liveness"]
    shown = re.findall(r"playbooks/deploy\.yml --tags (\w+)", DOC.read_text())
    assert shown and set(shown) <= set(documented_tags())


def test_the_settings_checks_run_with_any_tag_and_change_nothing():
    checks = {name for name, tags in listed().items() if "always" in tags}
    assert {
        "Check that at most one host runs the job processor.",
        "Check the application's settings before anything changes.",
        "Check the service's settings before anything changes.",
    } <= checks
    assert all(is_check(name) for name in checks), checks
    for tag in documented_tags():
        assert checks <= set(listed(tag)), tag


def test_ffmpeg_runs_only_the_ffmpeg_role():
    assert selected("ffmpeg") == FFMPEG


@pytest.mark.parametrize("tag", ["app", "secrets"])
def test_app_and_secrets_deploy_a_release_and_prove_it_without_touching_ffmpeg(tag):
    app_tasks = {name for name in listed() if name.startswith("panzoto_app : ") and not is_check(name)}
    assert ENV_FILE in app_tasks and "panzoto_app : Ensure current names this release." in app_tasks
    # A new release is never left switched but unproven: the service, its gate and the heartbeat come with it.
    assert selected(tag) == app_tasks | {SERVICE, LIVENESS, PROVEN}


def test_service_runs_the_unit_its_gate_and_the_heartbeat_and_builds_no_release():
    assert selected("service") == {SERVICE, LIVENESS}


def test_liveness_only_reads_the_heartbeat():
    assert selected("liveness") == {LIVENESS}


def test_every_task_belongs_to_a_documented_tag():
    everything = {name for name in listed() if not is_check(name)}
    assert everything == set().union(*(selected(tag) for tag in documented_tags()))


def test_the_rollback_runs_under_every_tag_whose_tasks_can_fail_the_gate():
    """--list-tasks does not show a rescue: its tags are read from the playbook."""
    play = yaml.safe_load(PLAYBOOK.read_text())[0]
    gate = next(task for task in play["tasks"] if "rescue" in task)
    gate_tags = set().union(*(set(task.get("tags", [])) for task in gate["block"]))
    assert gate_tags == {"service", "liveness", "app", "secrets"}
    for task in gate["rescue"]:
        assert set(task.get("tags", [])) == gate_tags, task["name"]
        applied = task.get("ansible.builtin.include_role", {}).get("apply", {}).get("tags")
        if "ansible.builtin.include_role" in task:
            assert set(applied or []) == gate_tags, task["name"]
