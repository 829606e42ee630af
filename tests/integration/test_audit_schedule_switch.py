"""The audit_schedule role's on/off switch as users type it: `-e key=value` makes every value a string."""

from __future__ import annotations

from pathlib import Path

from support.playbook import run_playbook


def test_audit_schedule_enabled_false_given_as_a_string_turns_the_role_off(tmp_path: Path) -> None:
    playbook = tmp_path / "schedule.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles: [audit_schedule]\n")

    run = run_playbook(str(playbook), args=["-e", "audit_schedule_enabled=false"])

    # "false" is a non-empty string: without `| bool` ansible-core 2.19 refuses it as a conditional.
    assert run.returncode == 0, run.output
    # Only the role's argument check ran; every task of the role was skipped.
    assert run.stats["localhost"]["ok"] == 1 and run.stats["localhost"]["changed"] == 0
    assert run.stats["localhost"]["skipped"] > 0
