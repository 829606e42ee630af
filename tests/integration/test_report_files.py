"""library/report_files.py through ansible-playbook: a report's directory and files in one module run, written
atomically and only when they differ, check mode honest, the directory's mode never widened by a symbolic mode,
bad names refused in one line with nothing written."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from support.playbook import PlaybookRun, run_playbook

FILES = [{"name": "report.json", "content": '{\n    "counts": 3\n}'}, {"name": "report.txt", "content": "3 jobs\n"}]


def write_reports(
    tmp_path: Path, files: list[dict], *, directory_mode: str = "0750", check: bool = False, verbosity: int = 0
) -> PlaybookRun:
    playbook = tmp_path / "reports.yml"
    options = {"directory": "{{ report_dir }}", "directory_mode": directory_mode, "mode": "0600"}
    options["files"] = "{{ files }}"
    task = {"report_files": options, "register": "written"}
    show = {"ansible.builtin.debug": {"msg": "written={{ written.written | map('basename') | list }}"}}
    play = [{"name": "Write reports", "hosts": "localhost", "gather_facts": False, "tasks": [task, show]}]
    playbook.write_text(json.dumps(play))
    extra = {"report_dir": str(tmp_path / "out" / "reports"), "files": files}
    return run_playbook(str(playbook), extra_vars=extra, check=check, verbosity=verbosity)


def test_written_once_then_unchanged_with_check_mode_honest(tmp_path: Path) -> None:
    directory = tmp_path / "out" / "reports"

    predicted = write_reports(tmp_path, FILES, check=True)
    assert predicted.returncode == 0, predicted.output
    assert predicted.changed() == 1 and not directory.exists()
    assert "written=['report.json', 'report.txt']" in predicted.stdout

    first = write_reports(tmp_path, FILES, verbosity=3)
    assert first.returncode == 0, first.output
    assert '"counts": 3' not in first.output and "3 jobs" not in first.output  # as copy's content: never echoed
    assert first.changed() == 1
    assert stat.S_IMODE(directory.stat().st_mode) == 0o750
    for file in FILES:
        path = directory / file["name"]
        assert path.read_text() == file["content"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(directory.glob(".*.tmp"))

    again = write_reports(tmp_path, FILES)
    assert again.returncode == 0 and again.changed() == 0, again.output
    assert "written=[]" in again.stdout

    # One file differs: only it is written.
    changed = [FILES[0], {**FILES[1], "content": "4 jobs\n"}]
    second = write_reports(tmp_path, changed)
    assert second.returncode == 0 and second.changed() == 1, second.output
    assert "written=['report.txt']" in second.stdout
    assert (directory / "report.txt").read_text() == "4 jobs\n"


def test_a_symbolic_directory_mode_never_widens_an_existing_directory(tmp_path: Path) -> None:
    directory = tmp_path / "out" / "reports"
    directory.mkdir(parents=True, mode=0o700)
    directory.chmod(0o700)
    run = write_reports(tmp_path, FILES, directory_mode="u+rwx")
    assert run.returncode == 0, run.output
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(path.name for path in directory.iterdir()) == ["report.json", "report.txt"]


def test_bad_names_are_refused_in_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    directory = tmp_path / "out" / "reports"
    for files, error in (
        ([{"name": "../escape.json", "content": "x"}], "files[0].name '../escape.json' is not a file name"),
        ([FILES[0], FILES[0]], "files[1].name 'report.json' is given twice"),
    ):
        run = write_reports(tmp_path, files)
        assert run.returncode != 0
        assert error in run.output, run.output
        assert not directory.exists() and not (tmp_path / "out" / "escape.json").exists()
