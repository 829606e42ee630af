"""The liveness timer's script (roles/panzoto_service/files/panzoto-liveness.py) where a host test cannot pick the
moment: a restart caught half-way, and a webhook URL edited by hand. tests/hosts/test_liveness.py runs it on a
deployed host."""

from __future__ import annotations

import importlib.util
import json
from contextlib import nullcontext
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "panzoto_service" / "files" / "panzoto-liveness.py"


def liveness_script():
    spec = importlib.util.spec_from_file_location("panzoto_liveness", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_lost_processor_is_not_posted_to_a_url_with_credentials(tmp_path: Path, monkeypatch) -> None:
    script = liveness_script()
    posted = []
    monkeypatch.setattr(script.urllib.request, "urlopen", lambda *args, **kwargs: posted.append(args) or nullcontext())
    state, webhook = tmp_path / "state.json", tmp_path / "webhook"
    state.write_text(json.dumps({"alive": True}))
    webhook.write_text("https://alerts:hunter2@hooks.example.invalid/T0\n")

    with pytest.raises(SystemExit) as refused:
        script.alert_on_change(str(state), str(webhook), {"starting": False, "alive": False, "detail": "no heartbeat"})

    assert posted == []
    assert str(refused.value) == f"{webhook}: the webhook URL holds credentials (user:password@); not posted"
    assert json.loads(state.read_text())["alive"] is True  # still to be alerted once the URL is fixed


@pytest.mark.parametrize(
    ("active_state", "sub_state", "restarting"),
    [
        ("deactivating", "stop-sigterm", True),  # systemctl restart stopping the old run
        ("activating", "start", True),  # ... and starting the new one
        ("activating", "auto-restart", False),  # a crash loop waiting to start again: a loss
        ("failed", "failed", False),
        ("inactive", "dead", False),
    ],
)
def test_a_restart_under_way_is_no_verdict_and_alerts_nothing(
    tmp_path: Path, monkeypatch, active_state: str, sub_state: str, restarting: bool
) -> None:
    script = liveness_script()
    posted = []
    monkeypatch.setattr(script.urllib.request, "urlopen", lambda *args, **kwargs: posted.append(args) or nullcontext())
    monkeypatch.setattr(
        script, "systemctl_show", lambda unit: {"ActiveState": active_state, "SubState": sub_state, "InvocationID": ""}
    )
    result = script.verdict("panzoto.service", str(tmp_path / "no-env-file"), intervals=3, min_age=0)
    state, webhook = tmp_path / "state.json", tmp_path / "webhook"
    state.write_text(json.dumps({"alive": True}))
    webhook.write_text("http://127.0.0.1:9/hook\n")

    script.alert_on_change(str(state), str(webhook), result)

    assert result["alive"] is False and result["starting"] is restarting
    assert (posted == []) is restarting  # a loss is posted once; a restart is not one
    # A restart leaves the last verdict as it was; a loss is recorded.
    assert json.loads(state.read_text())["alive"] is restarting
