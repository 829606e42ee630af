"""Run library/processing_jobs_cleanup.py's AnsibleModule in this process, against a local endpoint.

Faster than ansible-playbook for the many small runs of the safety tests; the
module is the same code, and it talks to moto over HTTP like every other run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

from ansible.module_utils.testing import patch_module_args

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cleanup_module(endpoint_url: str, archive_dir: Path, check_mode: bool = False, **args) -> dict:
    """The module's result (with `failed` and `msg` when it failed), for `args` on top of test defaults."""
    name = "processing_jobs_cleanup"
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "library" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    module_args = {
        "endpoint_url": endpoint_url,
        "region": "us-east-1",
        "now": "2025-10-19T18:00:00Z",
        "archive_path": str(archive_dir / "archive.jsonl"),
        "lock_dir": str(archive_dir / "locks"),
        "_ansible_check_mode": check_mode,
        **args,
    }
    known = set(module.argument_spec()) | {"_ansible_check_mode"}
    module_args = {key: value for key, value in module_args.items() if value is not None and key in known}
    out = io.StringIO()
    with patch_module_args(module_args), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        module.main()
    return json.loads(out.getvalue())
