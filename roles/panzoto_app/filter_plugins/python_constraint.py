"""Filters for the project's Python constraint, checked before anything is built on a host.

    {{ pyproject_text | panzoto_python_constraints }}       -> [{"source": ..., "constraint": ...}, ...]
    {{ constraints | panzoto_python_refused("3.11.2") }}    -> the ones that do not allow 3.11.2

Sources: Poetry's `python` dependency (`[tool.poetry.dependencies]`) and PEP 621 `requires-python`; both
must allow the interpreter when both are set (Poetry checks each). Syntax: Poetry's caret (`^3.12`: >=3.12,<4.0;
`^0.2`: >=0.2,<0.3), tilde (`~3.12`: >=3.12,<3.13; `~3`: >=3,<4), PEP 440's compatible release (`~=3.12`:
>=3.12,<4; `~=3.12.1`: >=3.12.1,<3.13), comparisons (`>=`, `>`, `<=`, `<`, `==`, `!=`, `===`), wildcards
(`3.12.*`, `==3.12.*`, `!=3.11.*`, `*`), a bare version (`3.12`, meaning ==3.12), clauses joined by `,` or
spaces (all must hold) and alternatives by `||` or `|` (one must). Versions compare numerically, missing
components being 0 (3.12 == 3.12.0).
"""

from __future__ import annotations

import re
from collections.abc import Callable

try:
    import tomllib
except ImportError:  # Python < 3.11 on the control node
    import tomli as tomllib  # type: ignore[no-redef]

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # imported by the unit tests without Ansible in the way
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

Version = tuple[int, ...]
CLAUSE = re.compile(r"^(\^|~=|~|===|==|!=|>=|<=|>|<)?\s*(\*|\d+(?:\.\d+)*(?:\.\*)?)$")


def parse_version(text: str) -> Version:
    if not re.fullmatch(r"\d+(?:\.\d+)*", text.strip()):
        raise AnsibleFilterError(f"not a version: {text!r}")
    return tuple(int(part) for part in text.strip().split("."))


def _padded(version: Version, length: int) -> Version:
    return version + (0,) * (length - len(version))


def _compare(left: Version, right: Version) -> int:
    length = max(len(left), len(right))
    a, b = _padded(left, length), _padded(right, length)
    return (a > b) - (a < b)


def _bump(version: Version, position: int) -> Version:
    """The smallest version above every version sharing the first `position + 1` components."""
    return (*version[:position], version[position] + 1)


def _prefix_match(version: Version, prefix: Version) -> bool:
    return _padded(version, len(prefix))[: len(prefix)] == prefix


def _clause(operator: str, operand: str) -> Callable[[Version], bool]:
    if operand == "*":
        if operator not in ("", "=="):
            raise AnsibleFilterError(f"'{operator}*' is not a Python constraint")
        return lambda version: True
    if operand.endswith(".*"):
        prefix = parse_version(operand[:-2])
        if operator in ("", "=="):
            return lambda version: _prefix_match(version, prefix)
        if operator == "!=":
            return lambda version: not _prefix_match(version, prefix)
        raise AnsibleFilterError(f"a wildcard version takes == or !=, not '{operator}{operand}'")
    bound = parse_version(operand)
    if operator == "^":
        # Poetry: the first non-zero component may not change (^0.0 and ^0 bump their last given one).
        position = next((index for index, part in enumerate(bound) if part != 0), len(bound) - 1)
        upper = _bump(bound, position)
        return lambda version: _compare(version, bound) >= 0 and _compare(version, upper) < 0
    if operator == "~":
        # Poetry: ~3 is >=3,<4; ~3.12 and ~3.12.1 keep the minor version.
        upper = _bump(bound, 0 if len(bound) == 1 else 1)
        return lambda version: _compare(version, bound) >= 0 and _compare(version, upper) < 0
    if operator == "~=":
        if len(bound) < 2:
            raise AnsibleFilterError(f"'~={operand}' needs at least two version components (PEP 440)")
        upper = _bump(bound, len(bound) - 2)
        return lambda version: _compare(version, bound) >= 0 and _compare(version, upper) < 0
    tests = {
        "": lambda c: c == 0, "==": lambda c: c == 0, "===": lambda c: c == 0, "!=": lambda c: c != 0,
        ">=": lambda c: c >= 0, "<=": lambda c: c <= 0, ">": lambda c: c > 0, "<": lambda c: c < 0,
    }  # fmt: skip
    test = tests[operator]
    return lambda version: test(_compare(version, bound))


def _clauses(conjunction: str) -> list[Callable[[Version], bool]]:
    # "a,b" and "a b" both mean a and b; an operator may be followed by spaces (">= 3.11").
    text = re.sub(r"(\^|~=|~|===|==|!=|>=|<=|>|<)\s+", r"\1", conjunction.strip())
    chunks = [chunk.split() for chunk in text.split(",")]
    if any(not chunk for chunk in chunks):
        raise AnsibleFilterError("an empty clause")
    clauses = []
    for part in (part for chunk in chunks for part in chunk):
        match = CLAUSE.match(part)
        if not match:
            raise AnsibleFilterError(f"cannot read '{part}'")
        clauses.append(_clause(match[1] or "", match[2]))
    return clauses


def allows(constraint: str, version: str) -> bool:
    """Whether the Python constraint allows the interpreter version ("3.11.2")."""
    wanted = parse_version(version)
    try:
        alternatives = [_clauses(alternative) for alternative in re.split(r"\|\|?", constraint)]
    except AnsibleFilterError as error:
        raise AnsibleFilterError(f"Python constraint '{constraint}': {error}") from None
    return any(all(clause(wanted) for clause in clauses) for clauses in alternatives)


def panzoto_python_constraints(pyproject_text: str) -> list[dict[str, str]]:
    """The Python constraints a pyproject.toml declares, with where each was found."""
    try:
        project = tomllib.loads(pyproject_text or "")
    except tomllib.TOMLDecodeError as error:
        raise AnsibleFilterError(f"pyproject.toml is not valid TOML: {error}") from None
    found = []
    poetry_python = project.get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python")
    if isinstance(poetry_python, str):
        found.append({"source": "tool.poetry.dependencies.python", "constraint": poetry_python})
    requires_python = project.get("project", {}).get("requires-python")
    if isinstance(requires_python, str):
        found.append({"source": "project.requires-python", "constraint": requires_python})
    return found


def panzoto_python_refused(constraints: list[dict[str, str]], version: str) -> list[dict[str, str]]:
    """The constraints that do not allow `version`."""
    return [item for item in constraints if not allows(item["constraint"], str(version))]


class FilterModule:
    def filters(self) -> dict[str, Callable]:
        return {
            "panzoto_python_constraints": panzoto_python_constraints,
            "panzoto_python_refused": panzoto_python_refused,
        }
