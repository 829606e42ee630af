"""What the role's venv tasks decide from, printed as one JSON object (run by the host's python3, changes nothing).

    venv_state.py VENV_DIR NAME==VERSION ...

- python, abi, platforms: the host's Python and the wheel tags it installs, for the control node's
  `pip download --python-version --abi --platform` (C extensions such as PyYAML differ per Python).
- venv_python: the Python version the venv was built with (pyvenv.cfg), null when there is no venv.
- rebuild: the venv cannot be used as it is (built for another Python, or its pip does not run).
- missing: the pins the venv lacks (all of them when there is no usable venv);
  extra: what the venv has that no pin names. Both empty and no rebuild: nothing to do.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys


def canonical_name(requirement: str) -> str:
    """PEP 503 name of "name==version", so "PyYAML" in the pins matches "pyyaml" from pip."""
    return re.sub(r"[-_.]+", "-", requirement.partition("==")[0]).lower()


def canonical(requirement: str) -> tuple[str, str]:
    return canonical_name(requirement), requirement.partition("==")[2]


def venv_python(venv: str) -> str | None:
    try:
        with open(os.path.join(venv, "pyvenv.cfg")) as cfg:
            settings = {key.strip(): value.strip() for key, _, value in (line.partition("=") for line in cfg)}
    except OSError:
        return None
    version = settings.get("version_info") or settings.get("version") or ""
    return ".".join(version.split(".")[:2]) or None


def installed(venv: str) -> list[str] | None:
    """The venv's packages as name==version (pip and its build tools left out); None when its pip cannot run."""
    freeze = subprocess.run(
        [os.path.join(venv, "bin", "python"), "-m", "pip", "--disable-pip-version-check", "freeze"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in freeze.stdout.splitlines() if "==" in line] if freeze.returncode == 0 else None


def main(venv: str, pins: list[str]) -> dict:
    python = "{}.{}".format(*sys.version_info[:2])
    machine = platform.machine()
    glibc_minor = int(os.confstr("CS_GNU_LIBC_VERSION").split()[1].split(".")[1])
    # Every manylinux tag this glibc runs (PEP 600), newest first as pip ranks them, and manylinux2014's old name.
    platforms = [f"manylinux_2_{minor}_{machine}" for minor in range(glibc_minor, 16, -1)]
    platforms.append(f"manylinux2014_{machine}")
    built_with = venv_python(venv)
    have = installed(venv) if built_with == python else None
    present = {canonical(line) for line in have or []}
    pinned_names = {canonical_name(pin) for pin in pins}
    return {
        "python": python,
        "abi": "cp{}{}".format(*sys.version_info[:2]),
        "platforms": platforms,
        "venv_python": built_with,
        # A venv of another Python (e.g. after an upgrade to the next Debian) or with a broken pip is built anew.
        "rebuild": built_with is not None and have is None,
        "missing": [pin for pin in pins if canonical(pin) not in present],
        # By name: a pinned package at another version is upgraded or downgraded by the install, not removed.
        "extra": sorted(line.partition("==")[0] for line in have or [] if canonical_name(line) not in pinned_names),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2:])))
