"""The job_cleanup role's argument spec covers exactly its public variables, each typed and described."""

from __future__ import annotations

import yaml
from support.playbook import REPO_ROOT

ROLE = REPO_ROOT / "roles" / "job_cleanup"


def test_every_public_variable_is_in_the_argument_spec_typed_and_described():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    options = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, spec in options.items():
        assert name.startswith("job_cleanup_") and not name.startswith("job_cleanup__"), name
        assert spec.get("type") and spec.get("description"), name
    # The playbook's command-line names stay the documented way in: each default reads cleanup_jobs_<option>.
    for name, value in defaults.items():
        if name not in ("job_cleanup_enabled", "job_cleanup_menu"):
            assert f"cleanup_jobs_{name.removeprefix('job_cleanup_')}" in str(value), name
