"""The panzoto_app role's reading of a project's Python constraint (roles/panzoto_app/filter_plugins)."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "roles" / "panzoto_app" / "filter_plugins"))

from python_constraint import AnsibleFilterError, allows, panzoto_python_constraints, panzoto_python_refused


@pytest.mark.parametrize(
    ("constraint", "allowed", "refused"),
    [
        # Poetry's caret: the first non-zero component stays.
        ("^3.12", ["3.12.0", "3.13.5", "3.99"], ["3.11.2", "4.0.0", "2.7.18"]),
        ("^3", ["3.0", "3.13.1"], ["2.7", "4.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.2.2", "0.3.0"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
        ("^0.0", ["0.0.0", "0.0.9"], ["0.1.0"]),
        # Poetry's tilde: the minor version stays when given.
        ("~3.12", ["3.12.0", "3.12.9"], ["3.11.9", "3.13.0"]),
        ("~3.12.1", ["3.12.1", "3.12.7"], ["3.12.0", "3.13.0"]),
        ("~3", ["3.0", "3.13"], ["4.0", "2.9"]),
        # PEP 440 compatible release: the last given component may grow.
        ("~=3.12", ["3.12.0", "3.13.5"], ["3.11.9", "4.0"]),
        ("~=3.12.1", ["3.12.1", "3.12.9"], ["3.12.0", "3.13.0"]),
        # Comparisons, joined by commas or spaces, alternatives by || or |.
        (">=3.11,<4.0", ["3.11.2", "3.13.0"], ["3.10.12", "4.0.0"]),
        (">=3.11 <3.13", ["3.12.3"], ["3.13.0"]),
        (">= 3.12, < 4", ["3.12.0"], ["3.11.2"]),
        (">3.11", ["3.11.1", "3.12"], ["3.11", "3.11.0"]),
        ("<=3.12", ["3.12.0", "3.11"], ["3.12.1"]),
        ("==3.12", ["3.12.0"], ["3.12.1", "3.13.0"]),
        ("3.12", ["3.12.0"], ["3.12.1"]),
        ("!=3.12.0", ["3.12.1"], ["3.12.0"]),
        ("~3.9 || ^3.12", ["3.9.5", "3.13.0"], ["3.10.0", "3.11.2"]),
        ("~3.9 | >=3.12", ["3.9.1", "3.12.0"], ["3.11.0"]),
        # Wildcards.
        ("3.12.*", ["3.12.0", "3.12.7"], ["3.13.0", "3.11.9"]),
        ("==3.*", ["3.11.2", "3.13.0"], ["4.0"]),
        (">=3.11,!=3.12.*", ["3.11.2", "3.13.0"], ["3.12.4"]),
        ("*", ["3.11.2", "2.7"], []),
    ],
)
def test_constraints_allow_exactly_their_versions(constraint: str, allowed: list[str], refused: list[str]) -> None:
    assert [version for version in allowed if not allows(constraint, version)] == []
    assert [version for version in refused if allows(constraint, version)] == []


@pytest.mark.parametrize("constraint", ["~=3", "^three", ">=3.11,", ">=*", "<3.12.*", "3.12-rc1"])
def test_an_unreadable_constraint_is_one_clear_error_naming_it(constraint: str) -> None:
    with pytest.raises(AnsibleFilterError, match=re.escape(f"Python constraint '{constraint}'")):
        allows(constraint, "3.11.2")


POETRY_PROJECT = """
[tool.poetry]
name = "decision-data"

[tool.poetry.dependencies]
python = "^3.12"
fastapi = "^0.115"
"""

PEP621_PROJECT = """
[project]
name = "panzoto-fake-backend"
requires-python = ">=3.11,<4.0"
"""


def test_poetrys_python_dependency_and_pep621_requires_python_are_both_read() -> None:
    assert panzoto_python_constraints(POETRY_PROJECT) == [
        {"source": "tool.poetry.dependencies.python", "constraint": "^3.12"}
    ]
    assert panzoto_python_constraints(PEP621_PROJECT) == [
        {"source": "project.requires-python", "constraint": ">=3.11,<4.0"}
    ]
    both = panzoto_python_constraints(
        PEP621_PROJECT + POETRY_PROJECT.replace('[tool.poetry]\nname = "decision-data"\n', "")
    )
    assert [item["source"] for item in both] == ["tool.poetry.dependencies.python", "project.requires-python"]


def test_a_project_without_a_constraint_has_none_and_bad_toml_is_an_error() -> None:
    assert panzoto_python_constraints("[tool.poetry]\nname = 'x'\n") == []
    assert panzoto_python_constraints("") == []
    with pytest.raises(AnsibleFilterError, match=r"pyproject\.toml is not valid TOML"):
        panzoto_python_constraints("[tool.poetry\n")


def test_refused_lists_every_constraint_that_does_not_allow_the_interpreter() -> None:
    constraints = panzoto_python_constraints(PEP621_PROJECT + "\n[tool.poetry.dependencies]\npython = '^3.12'\n")

    assert panzoto_python_refused(constraints, "3.11.2") == [
        {"source": "tool.poetry.dependencies.python", "constraint": "^3.12"}
    ]
    assert panzoto_python_refused(constraints, "3.13.5") == []


READ_PYPROJECT = Path(__file__).resolve().parents[2] / "roles" / "panzoto_app" / "files" / "read_pyproject.py"


def read_pyproject(source: Path, strip: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, str(READ_PYPROJECT), str(source), str(strip)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout


def test_the_pyproject_of_a_local_source_is_read_from_a_directory_or_an_archive(tmp_path: Path) -> None:
    project = tmp_path / "backend"
    (project / "pkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text(POETRY_PROJECT)
    (project / "pkg" / "pyproject.toml").write_text("not the top one")
    with tarfile.open(tmp_path / "backend.tar.gz", "w:gz") as archive:
        archive.add(project, arcname="backend-1.0")
    with zipfile.ZipFile(tmp_path / "backend.zip", "w") as archive:
        archive.write(project / "pyproject.toml", "pyproject.toml")
        archive.write(project / "pkg" / "pyproject.toml", "pkg/pyproject.toml")

    assert read_pyproject(project) == POETRY_PROJECT
    assert read_pyproject(tmp_path / "backend.tar.gz", strip=1) == POETRY_PROJECT
    assert read_pyproject(tmp_path / "backend.zip") == POETRY_PROJECT
    assert read_pyproject(tmp_path / "backend.tar.gz", strip=0) == ""  # not at the top after stripping nothing
    assert read_pyproject(project / "pkg" / "..") == POETRY_PROJECT
