"""Run the project's real playbooks through `ansible-playbook`, as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


@dataclass
class PlaybookRun:
    returncode: int
    stdout: str
    stderr: str
    stats: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def changed(self, host: str = "localhost") -> int:
        return self.stats[host]["changed"]


def checklist_verdicts(stdout: str) -> dict[str, str]:
    """{item: "PASS" | "FAIL"} from the lines playbooks/preflight.yml prints ("PASS  item (detail)")."""
    verdicts = {}
    for line in stdout.splitlines():
        verdict, _, rest = line.strip().partition("  ")
        if verdict in ("PASS", "FAIL"):
            verdicts[rest.split(" (")[0]] = verdict
    return verdicts


def parse_recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines as {host: {"ok": n, "changed": n, ...}}."""
    stats: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in stdout.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = RECAP_LINE.match(line.strip()) if in_recap else None
        if match:
            counts = dict(pair.split("=") for pair in match["counts"].split())
            stats[match["host"]] = {key: int(value) for key, value in counts.items()}
    return stats


def run_playbook(
    playbook: str,
    *,
    extra_vars: dict | None = None,
    inventory: str | Path | None = None,
    limit: str | None = None,
    check: bool = False,
    diff: bool = False,
    verbosity: int = 0,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    args: list[str] | None = None,
) -> PlaybookRun:
    """Run playbooks/<playbook> from the repository root and return its outcome.

    Extra vars go through a JSON argument so types survive (numbers, lists, booleans).
    """
    command = [str(VENV_BIN / "ansible-playbook"), str(REPO_ROOT / "playbooks" / playbook)]
    if inventory:
        command += ["-i", str(inventory)]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    if limit:
        command += ["--limit", limit]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    if verbosity:
        command.append("-" + "v" * verbosity)
    command += args or []
    run_env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        **(env or {}),
    }
    completed = subprocess.run(
        command, cwd=REPO_ROOT, env=run_env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return PlaybookRun(completed.returncode, completed.stdout, completed.stderr, parse_recap(completed.stdout))
