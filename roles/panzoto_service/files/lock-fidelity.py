"""Does the service's venv hold what its poetry.lock pins? Run by the venv's own Python (stdlib only).

The real backend must be installed strictly from its lock: with httpx 0.28 or later (a plain pip install, a re-lock)
its OpenAI client fails every transcription with `Client.__init__() got an unexpected keyword argument 'proxies'`.
So: every locked package that is installed must be at its locked version, and when the project depends on openai,
its client must construct (no request is made). Prints one JSON verdict.

    <venv>/bin/python lock-fidelity.py /opt/panzoto/app/poetry.lock
"""

from __future__ import annotations

import json
import re
import sys
from importlib import metadata

try:
    import tomllib
except ImportError:  # Python < 3.11: no TOML reader in the standard library
    tomllib = None


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(lock_path: str) -> dict:
    if tomllib is None:
        return {"error": f"Python {sys.version.split()[0]} cannot read TOML (needs 3.11+)"}
    try:
        with open(lock_path, "rb") as lock_file:
            lock = tomllib.load(lock_file)
    except (OSError, ValueError) as error:
        return {"error": f"cannot read {lock_path}: {error}"}
    pinned = {canonical(package["name"]): package["version"] for package in lock.get("package", [])}
    installed = {canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
    mismatched = sorted(
        f"{name} {installed[name]} (lock {version})"
        for name, version in pinned.items()
        if name in installed and installed[name] != version
    )
    result = {
        "pinned": len(pinned),
        "checked": sum(1 for name in pinned if name in installed),
        "mismatched": mismatched,
        "openai": "not applicable",
    }
    if "openai" in pinned:
        try:
            import openai

            openai.OpenAI(api_key="sk-lock-fidelity-check-not-a-key")
            result["openai"] = f"constructs (openai {installed.get('openai')}, httpx {installed.get('httpx')})"
        except Exception as error:  # what the backend would hit on every transcription
            result["openai"] = f"fails: {type(error).__name__}: {error}"
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
