"""The liveness timer's webhook sender (roles/panzoto_service/files/panzoto-liveness.py) on a URL edited by hand:
the deploy refuses user:password@ (tests/hosts/test_deploy.py), and the sender refuses it again rather than hand
the credentials to the name resolver as part of the host name."""

from __future__ import annotations

import importlib.util
import json
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
    monkeypatch.setattr(script.urllib.request, "urlopen", lambda *args, **kwargs: posted.append(args))
    state, webhook = tmp_path / "state.json", tmp_path / "webhook"
    state.write_text(json.dumps({"alive": True}))
    webhook.write_text("https://alerts:hunter2@hooks.example.invalid/T0\n")

    with pytest.raises(SystemExit) as refused:
        script.alert_on_change(str(state), str(webhook), {"starting": False, "alive": False, "detail": "no heartbeat"})

    assert posted == []
    assert str(refused.value) == f"{webhook}: the webhook URL holds credentials (user:password@); not posted"
    assert json.loads(state.read_text())["alive"] is True  # still to be alerted once the URL is fixed
