#!/usr/bin/python3
"""Alert that the scheduled job audit failed (run by systemd through the audit service's OnFailure=).

The audit alerts by itself when it cannot read the table (exit 4, "could not run"); this covers
every other way the unit can fail (killed, timed out, a broken venv) and stays quiet for exit 4,
which the audit already announced. The standard library only: it must work when the venv does not.
The channels are the audit's own (audit_alert_webhook_url or PANZOTO_AUDIT_WEBHOOK_URL, audit_alert_email);
their secrets are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import socket
import sys
import urllib.parse
import urllib.request
from email.message import EmailMessage

AUDIT_ALERTED_EXIT_STATUS = "4"  # the audit's "could not run": it alerted that itself


def message(unit: str) -> str:
    result = os.environ.get("MONITOR_SERVICE_RESULT", "failed")
    status = os.environ.get("MONITOR_EXIT_STATUS", "?")
    return (
        f":rotating_light: {unit} failed on {socket.gethostname()} ({result}, exit status {status}):"
        f" the scheduled job audit did not finish; see journalctl -u {unit}"
    )


class CredentialsInUrl(ValueError):
    """user:password@ in a webhook URL: urllib would hand them to the name resolver as part of the host name."""


def send_webhook(url: str, text: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise CredentialsInUrl("the URL holds credentials (user:password@); webhooks take their token in the path")
    request = urllib.request.Request(
        url, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def send_email(settings: dict, unit: str, text: str) -> None:
    mail = EmailMessage()
    mail["Subject"] = f"{unit} failed on {socket.gethostname()}"
    mail["From"] = settings["sender"]
    mail["To"] = ", ".join(settings["to"])
    mail.set_content(text)
    with smtplib.SMTP(settings["smtp_host"], settings.get("smtp_port", 587), timeout=10) as smtp:
        if settings.get("starttls", True):
            smtp.starttls()
        if settings.get("username"):
            smtp.login(settings["username"], settings.get("password") or "")
        smtp.send_message(mail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vars", required=True, help="the audit's variables file (audit-vars.json)")
    parser.add_argument("--unit", required=True, help="the unit that failed")
    args = parser.parse_args(argv)
    if os.environ.get("MONITOR_EXIT_STATUS") == AUDIT_ALERTED_EXIT_STATUS:
        print(f"{args.unit} could not run and alerted that itself; nothing more to send")
        return 0
    try:
        with open(args.vars, encoding="utf-8") as stream:
            audit_vars = json.load(stream)
    except (OSError, ValueError) as exc:
        print(f"cannot read {args.vars}: {exc.__class__.__name__}; alerting by environment only", file=sys.stderr)
        audit_vars = {}
    text = message(args.unit)
    url = audit_vars.get("audit_alert_webhook_url") or os.environ.get("PANZOTO_AUDIT_WEBHOOK_URL")
    email = audit_vars.get("audit_alert_email") or None
    failures = 0
    for channel, send in (("webhook", url and (lambda: send_webhook(url, text))),
                          ("email", email and (lambda: send_email(email, args.unit, text)))):  # fmt: skip
        if not send:
            continue
        try:
            send()
            print(f"{channel} alert sent: {args.unit} failed")
        except CredentialsInUrl as exc:
            failures += 1
            print(f"{channel} alert not sent: {exc}", file=sys.stderr)
        except Exception as exc:  # one line, never the URL or the password
            failures += 1
            print(f"{channel} alert not sent: {exc.__class__.__name__}", file=sys.stderr)
    if not (url or email):
        print(f"{args.unit} failed; no alert channel is configured", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
