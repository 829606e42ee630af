"""When the audit alerts, and what its alert texts and errors may say: the decisions, without a network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ansible.module_utils.panzoto.audit.alerts import (
    AlertError,
    decide,
    deliver_alerts,
    deliver_error_alerts,
    load_state,
    send_webhook,
    webhook_url_problem,
)
from ansible.module_utils.panzoto.redact import MASK, redact_values

NOW = datetime(2025, 10, 19, 18, 0, tzinfo=UTC)
SECRET_URL = "https://hooks.example.invalid/services/T0/B0/planted-secret-token"


def doc(breached: dict[str, int], now: str = "2025-10-19T18:00:00Z") -> dict:
    return {
        "table": "jobs",
        "now": now,
        "by_status": {"failed": sum(breached.values()), "pending": 0},
        "pending_stuck": {"count": 0},
        "breached": [{"name": k, "value": v, "message": f"{k}: {v} > 0"} for k, v in breached.items()],
        "next_steps": [],
    }


@pytest.mark.parametrize(
    ("state", "breached", "expected"),
    [
        ({"breached": {}}, {"failed": 30}, "breach"),
        ({"breached": {"failed": 30}, "alerted_at": "2025-10-19T17:00:00Z"}, {"failed": 30}, None),
        ({"breached": {"failed": 30}, "alerted_at": "2025-10-19T17:00:00Z"}, {"failed": 25}, None),
        ({"breached": {"failed": 30}, "alerted_at": "2025-10-19T17:00:00Z"}, {"failed": 31}, "worse"),
        ({"breached": {"failed": 30}, "alerted_at": "2025-10-19T17:00:00Z"}, {"failed": 30, "pending": 1}, "worse"),
        ({"breached": {"failed": 30}, "alerted_at": "2025-10-18T17:00:00Z"}, {"failed": 30}, "reminder"),
        ({"breached": {"failed": 30}, "alerted_at": "2025-10-19T17:00:00Z"}, {}, "recovered"),
        ({"breached": {}}, {}, None),
        (None, {"failed": 30}, "breach"),  # unreadable state: at most one duplicate alert
        (None, {}, "recovered"),  # unreadable state: never a missed recovery
    ],
)
def test_decisions(state: dict | None, breached: dict, expected: str | None) -> None:
    assert decide(state, breached, NOW, timedelta(hours=24)) == expected


def test_no_reminder_when_the_interval_is_off() -> None:
    state = {"breached": {"failed": 30}, "alerted_at": "2025-01-01T00:00:00Z"}
    assert decide(state, {"failed": 30}, NOW, None) is None


def sequence(tmp_path: Path, runs: list[dict[str, int]], corrupt_before: int | None = None) -> list[str | None]:
    """Deliver alerts for consecutive runs through the state file; the kinds actually sent."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    state_file = tmp_path / "state.json"
    sent: list[str | None] = []
    previous = None
    for index, breached in enumerate(runs):
        if index == corrupt_before:
            state_file.write_text('{"channels": {"webhook": ')
        messages: list[str] = []
        current = doc(breached, now=f"2025-10-19T{10 + index:02d}:00:00Z")
        outcomes, state = deliver_alerts(
            {"webhook": lambda subject, text, messages=messages: messages.append(subject)},
            current,
            str(state_file),
            previous,
            datetime.fromisoformat(current["now"].replace("Z", "+00:00")),
            timedelta(hours=24),
            check_mode=False,
        )
        state_file.write_text(json.dumps(state))
        sent.append(outcomes[0]["alert"] if outcomes[0]["sent"] else None)
        previous = {"at": current["now"], "breached": breached}
    return sent


def test_a_breach_alerts_once_then_on_worse_then_recovers(tmp_path: Path) -> None:
    runs = [{"failed": 30}, {"failed": 30}, {"failed": 35}, {"failed": 33}, {}, {}]
    assert sequence(tmp_path, runs) == ["breach", None, "worse", None, "recovered", None]


def test_a_corrupt_state_file_costs_at_most_one_duplicate(tmp_path: Path) -> None:
    runs = [{"failed": 30}, {"failed": 30}, {"failed": 30}, {}, {}]
    assert sequence(tmp_path, runs, corrupt_before=1) == ["breach", "breach", None, "recovered", None]
    assert sequence(tmp_path / "x", [{"failed": 30}, {}, {}], corrupt_before=1) == ["breach", "recovered", None]


def test_a_lost_state_file_falls_back_to_the_history(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    previous = {"at": "2025-10-19T17:00:00Z", "breached": {"failed": 30}}
    outcomes, _ = deliver_alerts(
        {"webhook": lambda subject, text: None}, doc({}), str(state_file), previous, NOW, None, check_mode=False
    )
    assert outcomes[0]["alert"] == "recovered" and outcomes[0]["sent"]


def test_a_failed_delivery_is_retried_next_run(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"

    def broken(subject: str, text: str) -> None:
        raise AlertError("the webhook answered HTTP 500")

    outcomes, state = deliver_alerts({"webhook": broken}, doc({"failed": 30}), str(state_file), None, NOW, None, False)
    state_file.write_text(json.dumps(state))
    assert outcomes[0]["error"] == "the webhook answered HTTP 500"
    outcomes, _ = deliver_alerts(
        {"webhook": lambda s, t: None}, doc({"failed": 30}), str(state_file), None, NOW, None, False
    )
    assert outcomes[0]["alert"] == "breach" and outcomes[0]["sent"]


@pytest.mark.parametrize("content", ["", "{", "[]", '{"channels": {"webhook": {"breached": {"failed": "x"}}}}'])
def test_unreadable_state_is_reported_as_such(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    assert load_state(str(path)) == ({}, False)


@pytest.mark.parametrize(
    "url",
    [
        "hooks.example.invalid/services/T0/B0/planted-secret-token",  # no scheme
        "htps://hooks.example.invalid/services/T0/B0/planted-secret-token",  # misspelt scheme
        "https://hooks.example.invalid:99999/services/T0/B0/planted-secret-token",  # port out of range
        "https://hooks.example.invalid:abc/services/planted-secret-token",  # port not a number
        "https://[hooks.example.invalid/services/planted-secret-token",  # broken IPv6 literal
        "https://hooks.example.invalid/services/planted-secret-token\n",  # a trailing newline from a vault file
        "https://ops:planted-secret-token@hooks.example.invalid/services/T0",  # credentials: sent to DNS as a host
    ],
)
def test_malformed_webhook_urls_are_refused_without_quoting_them(url: str) -> None:
    assert webhook_url_problem(url)
    with pytest.raises(AlertError) as raised:
        send_webhook(url, "text")
    assert "planted-secret-token" not in str(raised.value) and "hooks.example" not in str(raised.value)


def test_delivery_errors_never_quote_the_url() -> None:
    with pytest.raises(AlertError) as raised:
        send_webhook("http://127.0.0.1:9/services/T0/B0/planted-secret-token", "text")
    assert "planted-secret-token" not in str(raised.value)


def test_redact_removes_the_secret_and_its_parts() -> None:
    message = f"bad URL {SECRET_URL} (host hooks.example.invalid, path /services/T0/B0/planted-secret-token)"
    redacted = redact_values(message, [SECRET_URL])
    assert "planted-secret-token" not in redacted and "hooks.example.invalid" not in redacted
    assert redact_values("SMTP said: password hunter2-planted rejected", ["hunter2-planted"]) == (
        f"SMTP said: password {MASK} rejected"
    )


def test_first_enabled_on_a_breached_table_alerts_at_once(tmp_path: Path) -> None:
    """Earlier runs (without alerts) found the breach too: the first run with a channel still alerts."""
    previous = {"at": "2025-10-19T17:00:00Z", "status": "breached", "breached": {"failed": 30}}
    outcomes, state = deliver_alerts(
        {"webhook": lambda subject, text: None},
        doc({"failed": 30}),
        str(tmp_path / "s.json"),
        previous,
        NOW,
        None,
        False,
    )
    assert outcomes[0]["alert"] == "breach" and outcomes[0]["sent"]
    assert state["channels"]["webhook"]["breached"] == {"failed": 30}


def test_an_audit_that_cannot_run_alerts_once_per_outage() -> None:
    sent = []
    failed = {**doc({}), "status": "error", "error": "cannot reach http://127.0.0.1:1"}
    channels = {"webhook": lambda subject, text: sent.append(text)}
    first = deliver_error_alerts(channels, failed, {"at": "x", "status": "ok"}, False)
    again = deliver_error_alerts(channels, failed, {"at": "y", "status": "error"}, False)
    assert first[0]["alert"] == "could_not_run" and first[0]["sent"] and again[0]["alert"] is None
    assert sent == [
        ":warning: Panzoto job audit of jobs at 2025-10-19T18:00:00Z: could not run: cannot reach http://127.0.0.1:1"
    ]
