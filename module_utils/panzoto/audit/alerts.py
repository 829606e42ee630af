"""Alerts for the audit: once when a breach starts, again when it worsens or after
the re-alert interval, and once when it ends ("recovered").

Each channel (the Slack-compatible webhook, email over SMTP) keeps its own state
in one JSON file beside the history, so a failed delivery is retried by the next
run without repeating what the other channel already delivered. When the state
file is missing, the previous run's history entry stands in for it; when it is
unreadable, the run sends what the current status calls for (an alert or a
recovery): at most one duplicate, never a crash or a missed recovery.

Secrets (the webhook URL, the SMTP password) never reach a message: every error
text from these paths goes through the core's redact_values() (module_utils/panzoto/redact.py).
"""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

from ansible.module_utils.panzoto.redact import redact_values

STATE_VERSION = 1
TIMEOUT_SECONDS = 10


class AlertError(Exception):
    """A delivery failure whose message is already redacted."""


def webhook_url_problem(url: str) -> str | None:
    """Why the URL cannot be used (without quoting it), or None."""
    if any(char.isspace() or ord(char) < 32 for char in url):
        return "contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "cannot be parsed as a URL"
    if parts.scheme not in ("http", "https"):
        return "does not start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        # urllib would take user:password@host for the host name and hand it to the name resolver.
        return "holds credentials (user:password@): webhooks take their token in the path"
    if port == 0:
        return "has port 0"
    return None


# --- state -------------------------------------------------------------------


def load_state(path: str) -> tuple[dict, bool]:
    """(channel states, readable). A missing file is readable and empty; garbage is not readable."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        return {}, True
    except (OSError, ValueError):
        return {}, False
    channels = data.get("channels") if isinstance(data, dict) else None
    if not isinstance(channels, dict) or not all(_valid_channel(state) for state in channels.values()):
        return {}, False
    return channels, True


def _valid_channel(state: object) -> bool:
    return (
        isinstance(state, dict)
        and isinstance(state.get("breached"), dict)
        and all(isinstance(v, int) for v in state["breached"].values())
        and (state.get("alerted_at") is None or isinstance(state["alerted_at"], str))
    )


def state_from_history(previous: dict | None) -> dict:
    """A channel state standing in for a lost state file: what the previous run found."""
    if not previous or not isinstance(previous.get("breached"), dict):
        return {"breached": {}, "alerted_at": None}
    breached = {k: v for k, v in previous["breached"].items() if isinstance(v, int)}
    return {"breached": breached, "alerted_at": previous.get("at"), "since": previous.get("at")}


# --- decisions ---------------------------------------------------------------


def decide(state: dict | None, breached: dict[str, int], now: datetime, realert_after: timedelta | None) -> str | None:
    """What to send: breach, worse, reminder, recovered, or None. state None means unknown (unreadable)."""
    if state is None:
        return "breach" if breached else "recovered"
    before = state.get("breached") or {}
    if not breached:
        return "recovered" if before else None
    if not before:
        return "breach"
    if any(name not in before or value > before[name] for name, value in breached.items()):
        return "worse"
    alerted_at = _parse(state.get("alerted_at"))
    if realert_after and (alerted_at is None or now - alerted_at >= realert_after):
        return "reminder"
    return None


def next_state(state: dict | None, kind: str | None, breached: dict[str, int], now_text: str) -> dict:
    """The channel's state after this run's decision was delivered (or nothing needed sending)."""
    if not breached:
        return {"breached": {}, "alerted_at": now_text if kind else (state or {}).get("alerted_at")}
    if kind:
        since = now_text if kind == "breach" or not state else state.get("since", now_text)
        return {"breached": dict(breached), "alerted_at": now_text, "since": since}
    # Unchanged or better: remember the values last alerted on, for the names still breached.
    before = state.get("breached", {})
    return {
        "breached": {name: before.get(name, value) for name, value in breached.items()},
        "alerted_at": state.get("alerted_at"),
        "since": state.get("since"),
    }


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


# --- messages ----------------------------------------------------------------


def compose(kind: str, doc: dict, since: str | None) -> tuple[str, str]:
    """(subject, text) of the alert."""
    table, at = doc["table"], doc["now"]
    if kind == "could_not_run":
        return (
            f"Panzoto job audit of {table}: could not run",
            f":warning: Panzoto job audit of {table} at {at}: could not run: {doc['error']}",
        )
    counts = (
        f"({doc['by_status']['failed']} failed, {doc['by_status']['pending']} pending,"
        f" {doc['pending_stuck']['count']} stuck)"
    )
    breached = "; ".join(item["message"] for item in doc["breached"])
    if kind == "recovered":
        subject = f"Panzoto job audit of {table}: recovered"
        text = (
            f":white_check_mark: Panzoto job audit of {table} at {at}: recovered, all thresholds within limits {counts}"
        )
    else:
        headline = {
            "breach": "thresholds breached",
            "worse": "breach worsened",
            "reminder": f"still breached (since {since})",
        }[kind]
        subject = f"Panzoto job audit of {table}: {headline}"
        text = f":rotating_light: Panzoto job audit of {table} at {at}: {headline}: {breached} {counts}"
        steps = [step["command"] for step in doc.get("next_steps", [])]
        if steps:
            text += "\nNext: " + " ; ".join(steps)
    return subject, text


# --- delivery ----------------------------------------------------------------


def send_webhook(url: str, text: str) -> None:
    problem = webhook_url_problem(url)
    if problem:
        raise AlertError(f"alert_webhook_url {problem}")
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        raise AlertError(f"the webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertError(redact_values(f"cannot reach the webhook: {reason}", [url])) from None
    if not 200 <= status < 300:
        raise AlertError(f"the webhook answered HTTP {status}")


def send_email(settings: dict, subject: str, text: str) -> None:
    secrets = [value for value in (settings.get("password"),) if value]
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings["sender"]
    message["To"] = ", ".join(settings["to"])
    message.set_content(text)
    try:
        with smtplib.SMTP(settings["smtp_host"], settings["smtp_port"], timeout=TIMEOUT_SECONDS) as smtp:
            if settings.get("starttls"):
                smtp.starttls()
            if settings.get("username"):
                smtp.login(settings["username"], settings.get("password") or "")
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise AlertError(f"the SMTP server refused the login (code {exc.smtp_code})") from None
    except (TimeoutError, smtplib.SMTPException, OSError, ValueError) as exc:
        raise AlertError(redact_values(f"cannot send the alert email: {exc}", secrets)) from None


def deliver_alerts(
    channels: dict, doc: dict, state_path: str, previous: dict | None, now: datetime,
    realert_after: timedelta | None, check_mode: bool,
) -> tuple[list[dict], dict | None]:  # fmt: skip
    """Decide and send per channel; returns (what happened per channel, the state to write or None)."""
    states, readable = load_state(state_path)
    breached = {item["name"]: item["value"] for item in doc["breached"]}
    outcomes, new_states = [], dict(states)
    for name, send in channels.items():
        state = states.get(name) if readable else None
        if readable and state is None:
            # Never alerted on this channel (first enabled, or its state lost): a breach found now is
            # alerted, even when earlier runs found it too; the history only says whether a recovery is due.
            state = {"breached": {}, "alerted_at": None} if breached else state_from_history(previous)
        elif state is not None and state.get("undelivered"):
            state = None  # an earlier run could not deliver while the state was unknown
        kind = decide(state, breached, now, realert_after)
        outcome = {"channel": name, "alert": kind, "sent": False, "error": None}
        if kind and not check_mode:
            subject, text = compose(kind, doc, (state or {}).get("since"))
            try:
                send(subject, text)
                outcome["sent"] = True
            except AlertError as exc:
                outcome["error"] = str(exc)
        if outcome["error"] is None:
            new_states[name] = next_state(state, kind, breached, doc["now"])
        elif state is not None:
            new_states[name] = state  # retried against the same state next run
        else:
            new_states[name] = {"breached": {}, "alerted_at": None, "undelivered": True}
        outcomes.append(outcome)
    if check_mode:
        return outcomes, None
    return outcomes, {"version": STATE_VERSION, "channels": new_states}


def deliver_error_alerts(channels: dict, doc: dict, previous: dict | None, check_mode: bool) -> list[dict]:
    """An audit that could not run alerts once, when the previous run could (or there was none).

    The alert state is left as it is: it describes the table, which this run could not read.
    """
    kind = None if previous is not None and previous.get("status") == "error" else "could_not_run"
    outcomes = []
    for name, send in channels.items():
        outcome = {"channel": name, "alert": kind, "sent": False, "error": None}
        if kind and not check_mode:
            subject, text = compose(kind, doc, None)
            try:
                send(subject, text)
                outcome["sent"] = True
            except AlertError as exc:
                outcome["error"] = str(exc)
        outcomes.append(outcome)
    return outcomes
