#!/usr/bin/env python3
"""Install the Ansible collections a requirements.yml names, from the pinned `ansible` wheel on PyPI.

Galaxy is not reachable from where this project is built and tested, but PyPI is, and the `ansible`
package carries every community collection. Installing that package would bring 40-odd collections
the project never uses (about 470 MB), so this takes only the named ones out of its wheel:

    .venv/bin/python tools/install-collections.py collections/requirements.yml [more.yml ...]

- The wheel's version is pinned in requirements/collections-source.txt; the wheel is kept in
  .cache/wheels, so a second install downloads nothing.
- Each collection is extracted into the running Python's site-packages/ansible_collections (the
  venv's, when run with the venv's python), where ansible-core finds it without any ansible.cfg
  setting, and must have exactly the version the file asks for.
- Dependencies a collection declares must be named too, so requirements.yml stays the whole list
  (what AWX and `ansible-galaxy collection install -r` read where Galaxy is reachable).
A collection already installed at the wanted version is left alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_PIN = REPO_ROOT / "requirements" / "collections-source.txt"
WHEEL_DIR = REPO_ROOT / ".cache" / "wheels"


class InstallError(RuntimeError):
    pass


def wanted_collections(files: list[Path]) -> dict[str, str]:
    """{'amazon.aws': '10.1.2', ...} from requirements.yml files; every entry needs an exact version."""
    wanted: dict[str, str] = {}
    for path in files:
        document = yaml.safe_load(path.read_text()) or {}
        for entry in document.get("collections", []):
            name, version = entry.get("name"), str(entry.get("version", ""))
            if not name or not version or any(op in version for op in "<>=!*,"):
                raise InstallError(f"{path}: every collection needs a name and an exact version, got {entry!r}")
            if wanted.get(name, version) != version:
                raise InstallError(f"{path}: {name} is asked for at {version} and at {wanted[name]}")
            wanted[name] = version
    return wanted


def source_wheel() -> Path:
    """The pinned `ansible` wheel, downloaded once into .cache/wheels."""
    pin = next(line.strip() for line in SOURCE_PIN.read_text().splitlines() if line.strip() and line[0] != "#")
    distribution, _, version = pin.partition("==")
    matches = sorted(WHEEL_DIR.glob(f"{distribution}-{version}-*.whl"))
    if not matches:
        WHEEL_DIR.mkdir(parents=True, exist_ok=True)
        print(f"Downloading the {pin} wheel (the collections' source) into {WHEEL_DIR.relative_to(REPO_ROOT)}")
        download = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*download, "--no-deps", "--only-binary", ":all:", "--dest", str(WHEEL_DIR), pin], check=True)
        matches = sorted(WHEEL_DIR.glob(f"{distribution}-{version}-*.whl"))
    if not matches:
        raise InstallError(f"pip downloaded no wheel for {pin}")
    return matches[-1]


def installed_version(target: Path, name: str) -> str | None:
    manifest = target.joinpath(*name.split("."), "MANIFEST.json")
    try:
        return json.loads(manifest.read_text())["collection_info"]["version"]
    except (OSError, ValueError, KeyError):
        return None


def extract(wheel: zipfile.ZipFile, name: str, version: str, target: Path) -> dict[str, str]:
    """Extract one collection; return the dependencies its manifest declares."""
    prefix = "ansible_collections/" + name.replace(".", "/") + "/"
    members = [member for member in wheel.namelist() if member.startswith(prefix)]
    if not members:
        raise InstallError(f"{name} is not in {Path(wheel.filename or '').name}")
    manifest = json.loads(wheel.read(prefix + "MANIFEST.json"))["collection_info"]
    if manifest["version"] != version:
        raise InstallError(
            f"{name}: requirements ask for {version}, {Path(wheel.filename or '').name} carries {manifest['version']}"
        )
    destination = target.joinpath(*name.split("."))
    if destination.exists():
        shutil.rmtree(destination)
    # Extract beside the final place and rename, so a killed install never leaves half a collection.
    staging = target / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    for member in members:
        if member.endswith("/"):
            continue
        path = staging / member[len(prefix) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wheel.read(member))
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(destination)
    return manifest.get("dependencies") or {}


def install(files: list[Path]) -> list[str]:
    wanted = wanted_collections(files)
    target = Path(sysconfig.get_paths()["purelib"]) / "ansible_collections"
    missing = {name: version for name, version in wanted.items() if installed_version(target, name) != version}
    done = [f"{name} {version} (already installed)" for name, version in wanted.items() if name not in missing]
    if missing:
        with zipfile.ZipFile(source_wheel()) as wheel:
            for name, version in sorted(missing.items()):
                for dependency in extract(wheel, name, version, target):
                    if dependency not in wanted:
                        raise InstallError(f"{name} needs {dependency}: add it to {files[-1]}")
                done.append(f"{name} {version}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", nargs="+", type=Path, help="requirements.yml files")
    args = parser.parse_args(argv)
    try:
        installed = install(args.requirements)
    except (InstallError, OSError, subprocess.CalledProcessError, yaml.YAMLError) as error:
        print(f"install-collections: {error}", file=sys.stderr)
        return 1
    print("Collections: " + ", ".join(installed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
