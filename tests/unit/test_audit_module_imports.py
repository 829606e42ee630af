"""The audit's fixed cost: what a run imports, and the collector during a run.

Every module run compiles the module_utils it imports from source (AnsiballZ, and this project's
PYTHONDONTWRITEBYTECODE): alerts (smtplib, email), waivers and redact.py's patterns are some 10 ms
of a plain audit's fixed cost, for code it never calls, so they are imported where used; Ansible
still ships them. The collector rests while the module runs (main()) and wakes when it ends.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = REPO_ROOT / "library" / "processing_jobs_audit.py"
DEFERRED = (
    "ansible.module_utils.panzoto.audit.alerts",
    "ansible.module_utils.panzoto.audit.waivers",
    "ansible.module_utils.panzoto.redact",
    "smtplib",
)

LOAD_MODULE = f"""
import importlib.util, json, sys
import ansible.module_utils
ansible.module_utils.__path__.append({str(REPO_ROOT / "module_utils")!r})
before = set(sys.modules)
spec = importlib.util.spec_from_file_location("processing_jobs_audit", {str(MODULE)!r})
module = importlib.util.module_from_spec(spec)
sys.modules["processing_jobs_audit"] = module
spec.loader.exec_module(module)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_loading_the_module_imports_neither_alerts_nor_redaction() -> None:
    done = subprocess.run([sys.executable, "-c", LOAD_MODULE], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert "ansible.module_utils.panzoto.audit.tally" in loaded  # the probe sees the module's imports
    assert loaded.isdisjoint(DEFERRED), sorted(loaded.intersection(DEFERRED))


# Ansible's own payload builder, in a process of its own (it installs its collection finder).
LIST_PAYLOAD = f"""
import datetime, io, json, zipfile
from ansible._internal._ansiballz import _builder
from ansible.executor import module_common
from ansible.plugins.loader import module_utils_loader
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[])._install()
module_utils_loader.add_directory({str(REPO_ROOT / "module_utils")!r})
payload = zipfile.ZipFile(io.BytesIO(), "w")
module_common.recursive_finder(
    "processing_jobs_audit", "ansible.modules.processing_jobs_audit", open({str(MODULE)!r}, "rb").read(),
    payload, datetime.datetime(2026, 1, 1), _builder.ExtensionManager(),
)
print(json.dumps(payload.namelist()))
"""


def test_ansible_bundles_what_the_module_imports_inside_functions() -> None:
    done = subprocess.run([sys.executable, "-c", LIST_PAYLOAD], capture_output=True, text=True, check=True)
    shipped = set(json.loads(done.stdout))
    for path in ("audit/alerts.py", "audit/waivers.py", "redact.py", "audit/history.py", "audit/tally.py"):
        assert f"ansible/module_utils/panzoto/{path}" in shipped


def test_the_collector_rests_for_the_run_and_wakes_however_it_ends(monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("processing_jobs_audit_gc_probe", MODULE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    seen = []

    def run_module() -> None:
        seen.append(gc.isenabled())
        raise SystemExit(0)  # as exit_json and fail_json end a run

    monkeypatch.setattr(module, "run_module", run_module)
    assert gc.isenabled()
    with pytest.raises(SystemExit):
        module.main()
    assert seen == [False] and gc.isenabled()
    gc.disable()  # a caller that switched it off keeps it off
    try:
        with pytest.raises(SystemExit):
            module.main()
        assert not gc.isenabled()
    finally:
        gc.enable()
