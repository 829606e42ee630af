#!/usr/bin/env python3
"""Check the modules' documentation as Ansible's own tools read it, offline.

    tests/harness/check_module_docs.py            # every module in library/: one line per error, exit 1 if any
    tests/harness/check_module_docs.py --json     # {module: [{"check", "code", "msg"}, ...]}

Two checks, on every module:

validate-modules   ansible-core's own sanity test (what `ansible-test sanity --test validate-modules`
                   runs), on a throwaway collection copy: plugins/modules from library/,
                   plugins/module_utils from module_utils/, plugins/doc_fragments from
                   plugins/doc_fragments/. `ansible-test sanity` itself needs a git work tree and
                   wants to install its requirements, so the test's script (shipped inside
                   ansible-core, ansible_test/_util/controller/sanity/validate-modules) is run
                   directly, with --arg-spec (documentation compared with the argument spec).
                   Findings the project accepts on purpose are listed, with why, in ACCEPTED.
                   Needs voluptuous and antsibull-docs-parser (ansible-core pins them in
                   ansible_test/_data/requirements/sanity.validate-modules.txt).
ansible-doc        `ansible-doc --json` of each module, as users read it: every option and return
                   value holds only known fields, and descriptions are text. An unquoted comma or
                   `: ` inside a flow mapping (`{description: Keys, sorted., type: list}`) silently
                   adds a field ("sorted.": null) and cuts the description short.

The copy rewrites only what a collection spells differently: `ansible.module_utils.<ours>`
imports become `ansible_collections.panzoto.ops.plugins.module_utils.<ours>`, and our own module
and doc fragment names in the documentation get the collection prefix (M(processing_jobs_audit)
becomes M(panzoto.ops.processing_jobs_audit)). Everything else is checked as written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE, COLLECTION = "panzoto", "ops"
PREFIX = f"{NAMESPACE}.{COLLECTION}"
VALIDATE_REQUIREMENTS = ("voluptuous", "antsibull_docs_parser")
# Fields an option or a return value may have (ansible-core's validate-modules schema, for modules).
OPTION_FIELDS = {
    "description", "required", "default", "choices", "type", "elements", "aliases", "version_added",
    "version_added_collection", "suboptions", "options", "no_log", "deprecated", "apply_defaults",
}  # fmt: skip
# validate-modules findings this project accepts, each for a stated reason ("*": every module).
ACCEPTED = {
    ("*", "missing-gplv3-license"): "the modules are this project's own, not contributed to an Ansible collection",
    ("job_log_evidence", "use-run-command-not-popen"): (
        "journalctl's output is streamed and filtered line by line, so a large journal is never held in memory"
    ),
}
RETURN_FIELDS = {
    "description", "returned", "type", "elements", "sample", "example", "contains", "choices",
    "version_added", "version_added_collection",
}  # fmt: skip


# --------------------------------------------------------------------------- the collection copy


def build_collection(root: Path, library: Path, module_utils: Path, doc_fragments: Path) -> Path:
    """ansible_collections/panzoto/ops under `root`, from the project's directories; returns its path."""
    collection = root / "ansible_collections" / NAMESPACE / COLLECTION
    # Top-level module_utils names: plain files and packages (module_utils/panzoto/).
    utils = {path.stem for path in module_utils.glob("*.py")} | {
        path.parent.name for path in module_utils.glob("*/__init__.py")
    }
    modules = {path.stem for path in library.glob("*.py")}
    fragments = {path.stem for path in doc_fragments.glob("*.py")}

    def rewrite(text: str) -> str:
        for name in utils:
            text = re.sub(
                rf"\bansible\.module_utils\.{name}\b", f"ansible_collections.{PREFIX}.plugins.module_utils.{name}", text
            )
        for name in modules:
            text = re.sub(rf"\bM\({name}\)", f"M({PREFIX}.{name})", text)
        for name in fragments:
            text = re.sub(rf"^(\s*-\s*){name}\s*$", rf"\g<1>{PREFIX}.{name}", text, flags=re.MULTILINE)
            text = re.sub(
                rf"^(extends_documentation_fragment:\s*){name}\s*$", rf"\g<1>{PREFIX}.{name}", text, flags=re.M
            )
        return text

    for source, target in (
        (library, "plugins/modules"),
        (module_utils, "plugins/module_utils"),
        (doc_fragments, "plugins/doc_fragments"),
    ):
        (collection / target).mkdir(parents=True, exist_ok=True)
        for path in sorted(source.rglob("*.py")):
            copy = collection / target / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(rewrite(path.read_text()))
    (collection / "meta").mkdir(exist_ok=True)
    (collection / "meta" / "runtime.yml").write_text('requires_ansible: ">=2.16"\n')
    (collection / "galaxy.yml").write_text(
        f"namespace: {NAMESPACE}\nname: {COLLECTION}\nversion: 1.0.0\nreadme: README.md\nauthors: [panzoto-ops]\n"
    )
    return collection


# --------------------------------------------------------------------------- validate-modules


def validate_modules_script() -> Path:
    import ansible_test

    return Path(ansible_test.__file__).parent / "_util" / "controller" / "sanity" / "validate-modules" / "validate.py"


def missing_requirements() -> list[str]:
    missing = []
    for name in VALIDATE_REQUIREMENTS:
        try:
            __import__(name)
        except ImportError:
            missing.append(name.replace("_", "-"))
    return missing


def run_validate_modules(root: Path, collection: Path, config: Path) -> dict[str, list[dict[str, str]]]:
    """{module: [{"code", "msg"}]} from ansible-core's validate-modules on the collection copy."""
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(root),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        "ANSIBLE_CONFIG": str(config),  # the project's ansible.cfg does not apply to a collection
    }
    relative = collection.relative_to(root)
    command = [
        sys.executable,
        str(validate_modules_script()),
        "--format", "json",
        "--arg-spec",
        "--collection", str(relative),
        "--collection-version", "1.0.0",
        "plugins/modules",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=collection, env=env, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode not in (0, 3) or done.stderr.strip():
        raise RuntimeError(f"validate-modules failed to run (rc {done.returncode}): {done.stderr.strip()[-2000:]}")
    found: dict[str, list[dict[str, str]]] = {}
    for path, output in json.loads(done.stdout or "{}").items():
        module = Path(path).stem
        errors = [
            {"code": error["code"], "msg": error["msg"]}
            for error in output.get("errors", [])
            if (module, error["code"]) not in ACCEPTED and ("*", error["code"]) not in ACCEPTED
        ]
        found.setdefault(module, []).extend(errors)
    return found


# --------------------------------------------------------------------------- ansible-doc


def garbled_fields(entries: dict[str, Any], allowed: set[str], nested: str, where: str) -> list[str]:
    """Fields that are not part of the schema, and descriptions that are not text, recursively."""
    problems = []
    for name, entry in (entries or {}).items():
        path = f"{where}{name}"
        if not isinstance(entry, dict):
            problems.append(f"{path}: is {type(entry).__name__}, not a mapping")
            continue
        for field in sorted(set(entry) - allowed):
            problems.append(
                f"{path}: unknown field {field!r} (value {entry[field]!r}): an unquoted comma or ': ' "
                "inside a flow mapping splits its description; quote it or use block style"
            )
        description = entry.get("description")
        parts = description if isinstance(description, list) else [description]
        if description is None or not all(isinstance(part, str) and part.strip() for part in parts):
            problems.append(f"{path}: description is not text ({description!r}): an unquoted ': ' in it?")
        for key in nested:
            if isinstance(entry.get(key), dict):
                problems.extend(garbled_fields(entry[key], allowed, nested, f"{path}."))
    return problems


def run_ansible_doc(
    module: str, library: Path, module_utils: Path, doc_fragments: Path, config: Path
) -> tuple[dict[str, Any] | None, str]:
    """(`ansible-doc --json` of one module, or None; ansible-doc's complaint). One at a time: a module
    whose documentation does not parse makes ansible-doc print nothing for all of them."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(config),  # only the paths below, whatever ansible.cfg is nearby
        "ANSIBLE_LIBRARY": str(library),
        "ANSIBLE_MODULE_UTILS": str(module_utils),
        "ANSIBLE_DOC_FRAGMENT_PLUGINS": str(doc_fragments),
    }
    ansible_doc = shutil.which("ansible-doc", path=str(Path(sys.executable).parent)) or "ansible-doc"
    done = subprocess.run(
        [ansible_doc, "--json", "-t", "module", module], env=env, capture_output=True, text=True, check=False
    )
    try:
        doc = json.loads(done.stdout).get(module)
    except ValueError:
        doc = None
    return doc, " ".join(done.stderr.split())[:1000]


def ansible_doc_problems(doc: dict[str, Any] | None, complaint: str = "") -> list[dict[str, str]]:
    if not doc:
        return [{"code": "not-rendered", "msg": f"ansible-doc cannot render this module: {complaint or 'no output'}"}]
    problems = garbled_fields(doc["doc"].get("options") or {}, OPTION_FIELDS, ("suboptions", "options"), "options.")
    problems += garbled_fields(doc.get("return") or {}, RETURN_FIELDS, ("contains",), "RETURN.")
    return [{"code": "garbled-documentation", "msg": problem} for problem in problems]


# --------------------------------------------------------------------------- both


def empty_config(directory: Path) -> Path:
    config = directory / "ansible.cfg"
    config.write_text("[defaults]\n")
    return config


def rendering_problems(
    library: Path = REPO_ROOT / "library",
    module_utils: Path = REPO_ROOT / "module_utils",
    doc_fragments: Path = REPO_ROOT / "plugins" / "doc_fragments",
) -> dict[str, list[dict[str, str]]]:
    """{module: [{"check", "code", "msg"}]}: what ansible-doc shows garbled, for every module of `library`."""
    modules = sorted(path.stem for path in library.glob("*.py"))
    results = {}
    with tempfile.TemporaryDirectory(prefix="module-docs-") as tmp:
        config = empty_config(Path(tmp))
        for module in modules:
            problems = ansible_doc_problems(*run_ansible_doc(module, library, module_utils, doc_fragments, config))
            results[module] = [{"check": "ansible-doc", **problem} for problem in problems]
    return results


def validate_modules(
    library: Path = REPO_ROOT / "library",
    module_utils: Path = REPO_ROOT / "module_utils",
    doc_fragments: Path = REPO_ROOT / "plugins" / "doc_fragments",
) -> dict[str, list[dict[str, str]]]:
    """{module: [{"check", "code", "msg"}]}: validate-modules on a collection copy, for every module of `library`."""
    missing = missing_requirements()
    if missing:
        raise RuntimeError(
            f"validate-modules needs {', '.join(missing)}: pip install the versions pinned in "
            "ansible_test/_data/requirements/sanity.validate-modules.txt"
        )
    results: dict[str, list[dict[str, str]]] = {path.stem: [] for path in sorted(library.glob("*.py"))}
    with tempfile.TemporaryDirectory(prefix="module-docs-") as tmp:
        collection = build_collection(Path(tmp), library, module_utils, doc_fragments)
        for module, errors in run_validate_modules(Path(tmp), collection, empty_config(Path(tmp))).items():
            results.setdefault(module, []).extend({"check": "validate-modules", **error} for error in errors)
    return results


def check(*paths: Path) -> dict[str, list[dict[str, str]]]:
    """Both checks: {module: [{"check", "code", "msg"}]} (empty lists when clean)."""
    results = rendering_problems(*paths)
    for module, errors in validate_modules(*paths).items():
        results.setdefault(module, []).extend(errors)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", type=Path, default=REPO_ROOT / "library")
    parser.add_argument("--module-utils", type=Path, default=REPO_ROOT / "module_utils")
    parser.add_argument("--doc-fragments", type=Path, default=REPO_ROOT / "plugins" / "doc_fragments")
    parser.add_argument("--json", action="store_true", help="print {module: [errors]} as JSON")
    args = parser.parse_args(argv)
    try:
        results = check(args.library.resolve(), args.module_utils.resolve(), args.doc_fragments.resolve())
    except RuntimeError as exc:
        print(f"check_module_docs: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        for module, errors in results.items():
            for error in errors:
                print(f"{module}: {error['check']}: {error['code']}: {error['msg']}")
        total = sum(len(errors) for errors in results.values())
        print(f"{len(results)} modules, {total} errors", file=sys.stderr)
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
