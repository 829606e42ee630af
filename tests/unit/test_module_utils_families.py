"""The shape of module_utils/panzoto (docs/DESIGN.md): the core imports no family; no family imports another."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ansible.module_utils.panzoto"


def family_of(path: Path, root: Path) -> str:
    """`core` for a file at the package's top, else the name of the family package it is in."""
    parts = path.relative_to(root).parts
    return "core" if len(parts) == 1 else parts[0]


def imported_families(path: Path) -> set[str]:
    """The panzoto packages a file imports from: `core` or a family name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name.startswith(PACKAGE + "."):
                rest = name[len(PACKAGE) + 1 :].split(".")
                found.add(rest[0] if len(rest) > 1 and (path_root(path) / rest[0]).is_dir() else "core")
    return found


def path_root(path: Path) -> Path:
    return next(parent for parent in path.parents if parent.name == "panzoto")


def family_violations(root: Path) -> list[str]:
    """One line per import that crosses the rule."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        mine = family_of(path, root)
        for family in sorted(imported_families(path) - {"core", mine}):
            who = "the core" if mine == "core" else f"family {mine}"
            problems.append(f"{path.relative_to(root)}: {who} imports family {family}")
    return problems


def test_the_core_imports_no_family_and_no_family_imports_another():
    root = REPO_ROOT / "module_utils" / "panzoto"
    families = sorted(p.parent.name for p in root.glob("*/__init__.py"))
    assert families == ["audit", "cleanup", "diagnosis"]
    assert family_violations(root) == []


def test_every_package_has_an_empty_init():
    root = REPO_ROOT / "module_utils" / "panzoto"
    for directory in [root, *[p for p in root.iterdir() if p.is_dir() and p.name != "__pycache__"]]:
        init = directory / "__init__.py"
        assert init.is_file() and init.read_text() == "", f"{init} must exist and be empty"


def test_the_rule_names_each_crossing_import(tmp_path):
    root = tmp_path / "panzoto"
    for family in ("audit", "cleanup"):
        (root / family).mkdir(parents=True)
        (root / family / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "jobs.py").write_text(f"from {PACKAGE}.audit.tally import Tally\n")
    (root / "scan.py").write_text(f"from {PACKAGE}.jobs import Job\n")
    (root / "audit" / "tally.py").write_text(f"from {PACKAGE} import scan\nfrom {PACKAGE}.cleanup import plan\n")
    (root / "cleanup" / "plan.py").write_text(f"import {PACKAGE}.cleanup.writes\nfrom {PACKAGE}.scan import x\n")
    assert family_violations(root) == [
        "audit/tally.py: family audit imports family cleanup",
        "jobs.py: the core imports family audit",
    ]
