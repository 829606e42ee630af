"""Every command the README and the manuals it links show works as written.

A fenced block whose info string starts with bash/sh/shell is a command block. Its second word says
where it runs:

- none: it runs, in order with the page's other blocks, in a fresh copy of the repository against the
  sandbox (`tools/sandbox.sh`: moto seeded with the guide's snapshot, `.local-aws/env` sourced), with
  the placeholders filled from the seeded data;
- `production`: it needs the production hosts, so it is checked without running;
- `setup`: it installs or runs the test suite on this machine, so it is checked without running.

Every command, run or not, and every `ansible-playbook` command quoted inline, is checked: the
playbook and the repository paths it names exist, `--syntax-check` passes, every `-e` variable is one
a playbook, role or inventory defines, and every make target exists. Pages are found from the README's
links, so a manual is covered as soon as the README links it.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import boto3
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_COMMAND = re.compile(r"`((?:\.venv/bin/)?ansible-playbook [^`]+)`")
PAGE_LINK = re.compile(r"\]\((docs/[\w.-]+\.md)(?:#[^)]*)?\)")
COMMAND_LANGUAGES = {"bash", "sh", "shell"}
MARKERS = {"production", "setup"}
PLACEHOLDER = re.compile(r"<[a-z][a-z ]*>")
EXPECTED_EXIT = re.compile(r"#.*\bexits (\d+)\b")
# Paths under these folders are the repository's own: a command naming one that is missing is wrong.
REPO_FOLDERS = ("playbooks/", "inventory/", "roles/", "examples/", "tools/", "docs/", "requirements/", "collections/")
# Where a playbook's variables are defined: its vars, role defaults and argument specs, the inventories.
VARIABLE_SOURCES = ("playbooks", "roles", "inventory")
# Placeholders that need no data: a host of the example production inventory.
STATIC_PLACEHOLDERS = {"HOST": "api-1.example.invalid"}


def linked_pages() -> list[Path]:
    """README.md and every docs/*.md page it links that exists (the topic manuals arrive with their owners)."""
    links = dict.fromkeys(PAGE_LINK.findall(README.read_text()))
    return [README] + [REPO_ROOT / link for link in links if (REPO_ROOT / link).is_file()]


def command_blocks(page: Path) -> list[tuple[str | None, str]]:
    """(marker, body) of each command block of a page, in order."""
    blocks = []
    for match in FENCE.finditer(page.read_text()):
        words = match["info"].split()
        if words and words[0] in COMMAND_LANGUAGES:
            blocks.append((words[1] if len(words) > 1 else None, match["body"]))
    return blocks


def command_lines(body: str) -> list[list[str]]:
    """The commands of a block as argument lists: continuations joined, comments dropped, `&&`/`;` split."""
    commands = []
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in [*words, ";"]:
            if word in ("&&", ";", "||", "|"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(word)
    return commands


def as_script(body: str) -> str:
    """The block as a shell script that stops at the first command that fails.

    A command commented `# exits N` must exit N (the audit's 2 on a breach): the docs say so to the
    reader, and anything else fails the block.
    """
    lines = []
    for line in body.replace("\\\n", " ").splitlines():
        expected = EXPECTED_EXIT.search(line)
        if expected:
            said = expected[1]
            line = (
                f'set +e; {line}\nrc=$?; set -e; [ "$rc" -eq {said} ] || {{ echo "exit $rc, not {said}" >&2; exit 1; }}'
            )
        lines.append(line)
    return "\n".join(lines)


def fill(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


@cache
def defined_words() -> frozenset[str]:
    words: set[str] = set()
    for folder in VARIABLE_SOURCES:
        for path in (REPO_ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".yml", ".yaml", ".j2", ".md"):
                words.update(re.findall(r"\w+", path.read_text(errors="replace")))
    return frozenset(words)


def extra_var_names(value: str) -> list[str]:
    if value.startswith("@"):
        return []
    if value.lstrip().startswith("{"):
        return list(yaml.safe_load(value))
    return [pair.split("=", 1)[0] for pair in shlex.split(value)]


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE))


def problems_with(command: list[str]) -> list[str]:
    """What is wrong with one command, without running it; [] when it is sound."""
    problems = []
    for word in command:
        path = word.split("=", 1)[-1]
        if path.startswith(REPO_FOLDERS) and not (REPO_ROOT / path.rstrip("/")).exists():
            problems.append(f"{path} does not exist")
    program = Path(command[0]).name
    if program == "make":
        problems += [
            f"make has no target {t!r}" for t in command[1:] if not t.startswith("-") and t not in make_targets()
        ]
    if program != "ansible-playbook":
        return problems
    arguments = command[1:]
    playbooks = [word for word in arguments if word.endswith(".yml") and word.startswith("playbooks/")]
    if len(playbooks) != 1:
        return [*problems, f"names {len(playbooks)} playbooks"]
    for option, value in itertools.pairwise(arguments):
        if option in ("-e", "--extra-vars"):
            problems += [
                f"-e {name}: no playbook, role or inventory defines it"
                for name in extra_var_names(value)
                if name not in defined_words()
            ]
    inventory = next((value for option, value in itertools.pairwise(arguments) if option == "-i"), None)
    problems += syntax_problems(playbooks[0], inventory)
    return problems


@cache
def syntax_problems(playbook: str, inventory: str | None) -> list[str]:
    command = [str(VENV_BIN / "ansible-playbook"), "--syntax-check", playbook] + (
        ["-i", inventory] if inventory else []
    )
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    return [] if result.returncode == 0 else [f"--syntax-check fails: {result.stdout[-500:]}{result.stderr[-1500:]}"]


def all_commands(page: Path) -> list[tuple[str, list[str]]]:
    """(where, command) for every command of a page: its blocks' and its inline ansible-playbook commands."""
    found = []
    static_fill = {**STATIC_PLACEHOLDERS, **dict.fromkeys(PLACEHOLDER.findall(page.read_text()), "placeholder")}
    for number, (_, body) in enumerate(command_blocks(page), start=1):
        found += [(f"block {number}", command) for command in command_lines(fill(body, static_fill))]
    for text in INLINE_COMMAND.findall(page.read_text()):
        found += [(f"`{text}`", command) for command in command_lines(fill(text, static_fill))]
    return found


PAGES = linked_pages()
PAGE_IDS = [page.relative_to(REPO_ROOT).as_posix() for page in PAGES]
# The pages with blocks to run in the sandbox (a page of production commands only is checked above).
RUNNABLE = [page for page in PAGES if any(marker is None for marker, _ in command_blocks(page))]


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_command_block_is_marked_with_a_known_marker(page: Path) -> None:
    markers = [marker for marker, _ in command_blocks(page)]
    assert set(markers) - {None} <= MARKERS, f"{page.name}: unknown markers {set(markers) - {None} - MARKERS}"


def test_the_readme_links_its_manuals_and_has_commands_to_run() -> None:
    # The check below is only worth something if it finds commands: the README has runnable blocks.
    assert any(marker is None for marker, _ in command_blocks(README))
    assert len(all_commands(README)) >= 10


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_command_names_what_exists(page: Path) -> None:
    problems = [
        f"{where}: {' '.join(command)}: {problem}"
        for where, command in all_commands(page)
        for problem in problems_with(command)
    ]
    assert not problems, "\n".join(problems)


def test_a_wrong_name_is_caught() -> None:
    """The checker fails a renamed variable, a missing playbook, a missing make target, a broken playbook."""
    assert problems_with(["ansible-playbook", "playbooks/audit_jobs.yml", "-e", "audit_no_such_option=1"])
    assert problems_with(["ansible-playbook", "playbooks/audit_jobz.yml"])
    assert problems_with(["make", "sandboxes"])
    assert problems_with(["ansible-playbook", "-i", "inventory/nowhere", "playbooks/audit_jobs.yml"])
    assert not problems_with(["ansible-playbook", "playbooks/audit_jobs.yml", "-e", '{"audit_examples": 2}'])


# --- Running the sandbox blocks ----------------------------------------------------------------------


def fresh_copy(tmp_path: Path) -> Path:
    """The tracked files as this working tree has them, with the project venv linked in.

    The copies are dated in the past so make sees the venv as up to date and never reinstalls it.
    """
    copy = tmp_path / "repo"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (REPO_ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, copy / name)
            os.utime(copy / name, (0, 0))
    (copy / ".venv").symlink_to(VENV_BIN.parent)
    return copy


def clean_environment() -> dict[str, str]:
    """The user's shell: none of this test run's AWS, Ansible or venv settings."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "ANSIBLE_", "PYTEST", "VIRTUAL_ENV")) and key != "PYTHONPATH"
    }


def seeded_placeholders(copy: Path) -> dict[str, str]:
    """<job id> and <user uuid>: a failed job of the seeded snapshot and its user."""
    env = dict(
        line.removeprefix("export ").split("=", 1)
        for line in (copy / ".local-aws/env").read_text().splitlines()
        if line.startswith("export AWS_ENDPOINT_URL")
    )
    table = boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL"].strip('"'),
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    items = table.scan(TableName="panzoto-processing-jobs")["Items"]
    failed = next(item for item in items if item.get("status", {}).get("S") == "failed")
    return {"<job id>": failed["job_id"]["S"], "<user uuid>": failed["user_id"]["S"], **STATIC_PLACEHOLDERS}


@pytest.mark.parametrize("page", RUNNABLE, ids=[page.relative_to(REPO_ROOT).as_posix() for page in RUNNABLE])
def test_the_sandbox_blocks_run(page: Path, tmp_path: Path) -> None:
    blocks = [body for marker, body in command_blocks(page) if marker is None]
    copy = fresh_copy(tmp_path)
    env = clean_environment()
    start = "tools/sandbox.sh start >/dev/null && source .local-aws/env"
    try:
        # The placeholders come from the snapshot as seeded, before any block changes it (a page may wipe the table).
        subprocess.run(["bash", "-c", start], cwd=copy, env=env, check=True, capture_output=True, timeout=120)
        placeholders = seeded_placeholders(copy)
        for number, body in enumerate(blocks, start=1):
            subprocess.run(["bash", "-c", start], cwd=copy, env=env, check=True, capture_output=True, timeout=120)
            script = as_script(fill(body, placeholders))
            assert not PLACEHOLDER.findall(script), f"block {number}: no value for {PLACEHOLDER.findall(script)}"
            result = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", f"{start}\n{script}"],
                cwd=copy,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert result.returncode == 0, (
                f"{page.name} block {number} failed:\n{script}\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
            )
            assert "[WARNING]: Could not match supplied host pattern" not in result.stderr, result.stderr
    finally:
        subprocess.run(["tools/sandbox.sh", "stop"], cwd=copy, env=env, capture_output=True, timeout=60, check=False)


def test_a_failing_block_fails_the_run(tmp_path: Path) -> None:
    """The runner stops on an exit the docs do not announce, and on a command that fails (a refused option)."""
    copy = fresh_copy(tmp_path)
    env = clean_environment()
    block = (
        "ansible-playbook playbooks/audit_jobs.yml   # exits 0 (wrong: the snapshot breaches)\necho after-the-failure\n"
        "ansible-playbook playbooks/cleanup_jobs.yml --check -e cleanup_jobs_max_changes=abc\necho after-the-failure"
    )
    script = "tools/sandbox.sh start >/dev/null && source .local-aws/env\n" + as_script(block)
    try:
        result = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", script],
            cwd=copy,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        subprocess.run(["tools/sandbox.sh", "stop"], cwd=copy, env=env, capture_output=True, timeout=60, check=False)
    assert result.returncode != 0 and "after-the-failure" not in result.stdout
    assert "exit 2, not 0" in result.stderr
    # Without the wrong exit comment, the refused option stops the block.
    script = "tools/sandbox.sh start >/dev/null && source .local-aws/env\n" + as_script(block.split("\n", 2)[2])
    try:
        result = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", script],
            cwd=copy,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        subprocess.run(["tools/sandbox.sh", "stop"], cwd=copy, env=env, capture_output=True, timeout=60, check=False)
    assert result.returncode != 0 and "after-the-failure" not in result.stdout
    assert "cleanup_jobs_max_changes" in result.stdout + result.stderr


# The topic manuals their owners write; they land beside this test, so their links are not yet checked here.
ARRIVING_PAGES = {"docs/audit.md", "docs/diagnosis.md", "docs/cleanup.md", "docs/host-checks.md", "docs/releases.md"}


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readmes_links_lead_somewhere() -> None:
    text = README.read_text()
    anchors = {github_anchor(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert len(links) >= 10
    for link in links:
        path, _, anchor = link.partition("#")
        if not path:
            assert anchor in anchors, f"#{anchor} is no heading of README.md"
        elif path not in ARRIVING_PAGES:
            assert (REPO_ROOT / path).exists(), f"{path} does not exist"
