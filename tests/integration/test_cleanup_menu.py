"""The guide's interactive menu, driven through a pseudo-terminal as a person would answer it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.playbook import REPO_ROOT, VENV_BIN
from test_cleanup_playbook import GUIDE_NOW, audio_key_of, guide, job, object_keys, put_jobs, table_items

ANSWER_WAIT = 180  # seconds to wait for each prompt before giving up (a bound, not an assertion on speed)
CONFIRM_PROMPT = "Type DELETE to confirm"


def _own_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty (Ansible's prompts need one)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """ansible-playbook attached to a pty; answers prompts in order."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            command, stdin=slave, stdout=slave, stderr=slave, cwd=REPO_ROOT, env=env, preexec_fn=_own_terminal
        )
        os.close(slave)
        self.output = ""

    def read_until(self, text: str) -> str:
        while text not in self.output:
            ready, _, _ = select.select([self.master], [], [], ANSWER_WAIT)
            assert ready, f"no {text!r} prompt; output so far:\n{self.output[-3000:]}"
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"ansible-playbook ended before {text!r}:\n{self.output[-3000:]}"
            self.output += chunk.decode("utf-8", "replace")
        return self.output

    def answer(self, prompt: str, reply: str) -> None:
        """Type `reply` once Ansible reads the terminal, retyping if it was flushed away.

        Ansible shows the prompt, then switches the terminal to raw mode and
        flushes pending input, so an answer typed too early is discarded. It
        acknowledges an answer by clearing the line (an escape sequence).
        """
        self.read_until(prompt)
        for _ in range(3):
            self._wait_for_raw_mode()
            mark = len(self.output)
            os.write(self.master, reply.encode() + b"\r")
            if self._acknowledged(mark):
                return
        raise AssertionError(f"the answer {reply!r} to {prompt!r} was never taken:\n{self.output[-3000:]}")

    def _wait_for_raw_mode(self) -> None:
        for _ in range(int(ANSWER_WAIT / 0.05)):
            if not termios.tcgetattr(self.master)[3] & termios.ICANON:
                time.sleep(0.2)  # setraw and the input flush are two calls: let the flush pass
                return
            time.sleep(0.05)
        raise AssertionError(f"Ansible never read the terminal:\n{self.output[-3000:]}")

    def _acknowledged(self, mark: int) -> bool:
        for _ in range(20):
            if "\x1b[" in self.output[mark:]:
                return True
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    self.output += os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:
                    return True
        return False

    def finish(self) -> int:
        while True:
            ready, _, _ = select.select([self.master], [], [], ANSWER_WAIT)
            assert ready, f"ansible-playbook did not finish:\n{self.output[-3000:]}"
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk.decode("utf-8", "replace")
        code = self.process.wait(timeout=ANSWER_WAIT)
        os.close(self.master)
        return code


def menu_run(tmp_path: Path, endpoint_url: str, variables: dict | None = None) -> Terminal:
    extra = {
        "cleanup_jobs_now": GUIDE_NOW,
        "cleanup_jobs_archive_path": str(tmp_path / "archive.jsonl"),
        "cleanup_jobs_report_path": str(tmp_path / "report.json"),
        **(variables or {}),
    }
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "AWS_ENDPOINT_URL": endpoint_url,
    }
    command = [str(VENV_BIN / "ansible-playbook"), "playbooks/cleanup_jobs.yml", "-e", json.dumps(extra)]
    return Terminal(command, env)


@dataclass
class GuideSnapshot:
    """The ops guide's snapshot, seeded on the endpoint, as it was before the menu ran."""

    endpoint_url: str
    jobs: dict[str, dict]  # job_id -> item
    legacy: set[str]  # the legacy_encryption jobs procedure 1 deletes
    audio_keys: set[str]

    def legacy_audio(self) -> set[str]:
        return {audio_key_of(self.jobs[job_id]) for job_id in self.legacy}


@pytest.fixture
def snapshot(aws) -> GuideSnapshot:
    expected, before = guide(aws.endpoint_url)
    legacy = set(expected["job_ids"]["by_category"]["legacy_encryption"])
    return GuideSnapshot(aws.endpoint_url, before, legacy, object_keys(aws.endpoint_url))


def menu_at_the_confirmation(tmp_path: Path, endpoint_url: str, choice: str, delete_audio: str) -> tuple[Terminal, str]:
    """The menu answered up to its DELETE prompt (the procedure, then the audio question); the screen so far."""
    terminal = menu_run(tmp_path, endpoint_url)
    terminal.answer("Choice", choice)
    terminal.answer("[yes/no]", delete_audio)
    return terminal, terminal.read_until(CONFIRM_PROMPT)


def confirm_and_finish(terminal: Terminal, reply: str) -> None:
    terminal.answer(CONFIRM_PROMPT, reply)
    assert terminal.finish() == 0, terminal.output[-3000:]


def test_menu_choice_1_with_audio_and_delete_confirmation_runs_procedure_1(snapshot, tmp_path):
    endpoint = snapshot.endpoint_url

    terminal, screen = menu_at_the_confirmation(tmp_path, endpoint, "1", delete_audio="yes")
    # The dry-run counts are shown before the confirmation, and nothing has changed yet.
    assert "[DRY RUN] 34 jobs would be deleted" in screen and "legacy_encryption: 34" in screen
    assert "S3 audio files: 34" in screen
    assert table_items(endpoint) == snapshot.jobs
    confirm_and_finish(terminal, "DELETE")

    assert set(table_items(endpoint)) == set(snapshot.jobs) - snapshot.legacy
    assert object_keys(endpoint) == snapshot.audio_keys - snapshot.legacy_audio()


def test_menu_without_the_delete_confirmation_changes_nothing(snapshot, tmp_path):
    endpoint = snapshot.endpoint_url

    terminal, screen = menu_at_the_confirmation(tmp_path, endpoint, "4", delete_audio="no")
    assert "[DRY RUN] 49 jobs would be deleted" in screen and "S3 audio files: 0" in screen
    confirm_and_finish(terminal, "delete")

    assert "Not confirmed (DELETE was not typed): nothing was changed." in terminal.output
    assert table_items(endpoint) == snapshot.jobs and len(object_keys(endpoint)) == 60
    assert not (tmp_path / "archive.jsonl").exists()


def test_the_delete_confirmation_binds_the_real_run_to_the_jobs_the_dry_run_counted(snapshot, tmp_path):
    endpoint = snapshot.endpoint_url
    terminal, screen = menu_at_the_confirmation(tmp_path, endpoint, "1", delete_audio="yes")
    assert "[DRY RUN] 34 jobs would be deleted" in screen
    assert "DELETE deletes only these 34 jobs" in screen

    # While the prompt waits, three more jobs fail the same way: the confirmation did not cover them.
    late = [
        job(f"late-{index}", "failed", "2025-10-19T17:59:00Z", error_message="Automatic decryption not yet implemented")
        for index in range(3)
    ]
    put_jobs(endpoint, late)
    confirm_and_finish(terminal, "DELETE")
    assert "the cleanup acts on the 34 previewed jobs only" in " ".join(terminal.output.split())

    report = json.loads((tmp_path / "report.json").read_text())
    assert report["counts"]["changed"] == 34 and set(report["job_ids"]) == snapshot.legacy
    after = table_items(endpoint)
    late_ids = {item["job_id"] for item in late}
    assert set(after) == (set(snapshot.jobs) - snapshot.legacy) | late_ids, "only the confirmed jobs were deleted"
    assert object_keys(endpoint) == snapshot.audio_keys - snapshot.legacy_audio()
