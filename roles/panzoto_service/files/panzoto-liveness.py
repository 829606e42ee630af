#!/usr/bin/python3
"""Is the backend's job processor alive? Answered from its heartbeat in the journal (python3 stdlib only).

The processor logs `[INFO] Checked for jobs, found N eligible jobs` every TRANSCRIPTION_CHECK_INTERVAL_SECONDS,
and a failed scan logs `[ERROR] Error querying jobs: ...` just before its heartbeat (which then says N = 0).
/api/health cannot tell: it answers healthy with the processor dead or every scan failing. So the processor is
alive when the unit's current run (its InvocationID: a restart is a new run) logged a good heartbeat, one not
preceded by a scan error, within `--intervals` poll intervals, and no scan error since.

  panzoto-liveness.py --unit panzoto.service --env-file /opt/panzoto/current/panzoto.env            # one JSON verdict
  panzoto-liveness.py ... --wait 60                                                         # until alive, at most 60 s
  panzoto-liveness.py ... --textfile F --state-file S [--webhook-file W]                    # the timer's run

The timer's run writes a Prometheus textfile (last heartbeat age, up 0/1) and posts to the webhook once when
liveness is lost and once when it comes back (the state file remembers which it last said). Exit code: 0 alive,
1 not alive, 2 bad arguments. It reads the environment file for the interval only, and prints no other value.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HEARTBEAT = "Checked for jobs, found"
SCAN_ERROR = "Error querying jobs"
INTERVAL_SETTING = "TRANSCRIPTION_CHECK_INTERVAL_SECONDS"
DEFAULT_INTERVAL = 60.0
# (ActiveState, SubState) a unit passes through while it is restarted by systemctl restart.
RESTARTING = {("deactivating", "stop-sigterm"), ("deactivating", "stop"), ("deactivating", "stop-post"),
              ("activating", "start-pre"), ("activating", "start"), ("activating", "start-post")}  # fmt: skip
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ERROR_CHARS = 200


def poll_interval(env_file: str) -> float:
    """The setting from the service's environment file (KEY=value lines, optional quotes), else the default."""
    try:
        with open(env_file, encoding="utf-8") as lines:
            for line in lines:
                name, _, value = line.strip().removeprefix("export ").partition("=")
                if name.strip() == INTERVAL_SETTING:
                    interval = float(value.strip().strip("'\""))
                    return interval if interval > 0 else DEFAULT_INTERVAL
    except (OSError, ValueError):
        pass
    return DEFAULT_INTERVAL


def systemctl_show(unit: str) -> dict[str, str]:
    done = subprocess.run(
        ["systemctl", "show", "--property=ActiveState", "--property=SubState", "--property=InvocationID",
         "--property=ActiveEnterTimestampMonotonic", "--", unit],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def run_seconds(state: dict[str, str]) -> float | None:
    """Seconds since the unit's current run started (systemd's monotonic clock is the kernel's uptime)."""
    try:
        with open("/proc/uptime", encoding="ascii") as uptime:
            return float(uptime.read().split()[0]) - int(state["ActiveEnterTimestampMonotonic"]) / 1e6
    except (OSError, KeyError, ValueError):
        return None


def journal_lines(invocation: str, since_seconds: float) -> list[tuple[float, str]]:
    """(time, message) of the run's heartbeat and scan-error lines in the last `since_seconds`."""
    done = subprocess.run(
        ["journalctl", "--no-pager", "--output=json", "--output-fields=MESSAGE", f"--since=-{int(since_seconds) + 1}s",
         f"_SYSTEMD_INVOCATION_ID={invocation}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = []
    for line in done.stdout.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("MESSAGE")
        if not isinstance(message, str) or (HEARTBEAT not in message and SCAN_ERROR not in message):
            continue
        found.append((int(entry["__REALTIME_TIMESTAMP"]) / 1e6, ANSI.sub("", message)))
    return found


def verdict(unit: str, env_file: str, intervals: float, min_age: float) -> dict:
    host = socket.gethostname()
    interval = poll_interval(env_file)
    max_age = max(intervals * interval, min_age)
    state = systemctl_show(unit)
    result: dict = {
        "host": host, "unit": unit, "interval_seconds": interval, "max_age_seconds": max_age,
        "active_state": state.get("ActiveState", "unknown"), "last_heartbeat_age_seconds": None,
        "last_good_heartbeat_age_seconds": None, "last_error": "", "alive": False, "starting": False,
    }  # fmt: skip
    invocation = state.get("InvocationID", "")
    if (result["active_state"], state.get("SubState")) in RESTARTING:
        # A restart (a deploy's, an operator's) passes through these: no verdict, nothing lost. A crash loop waits in
        # activating/auto-restart, which is not here; a stop that hangs ends in failed or inactive, a loss then.
        result["starting"] = True
        result["detail"] = f"{host}: {unit} is {result['active_state']} ({state.get('SubState')}): a restart under way"
        return result
    if result["active_state"] != "active" or not invocation:
        result["detail"] = f"{host}: {unit} is {result['active_state']}, so no processor runs"
        return result
    now = time.time()
    # Far enough back to name the last heartbeat's age when it is late, bounded so a busy journal stays cheap.
    lines = journal_lines(invocation, max(10 * max_age, 300))
    # Journal times can run a little ahead of this clock: ages are never negative.
    now = max([now] + [moment for moment, _ in lines])
    error_pending, last_good, last_any, error_after_good = "", None, None, False
    for moment, message in lines:
        if SCAN_ERROR in message:
            error_pending = message[message.index(SCAN_ERROR) :][:ERROR_CHARS]
            result["last_error"] = error_pending
            error_after_good = True
        elif error_pending:
            last_any, error_pending = moment, ""  # the heartbeat that follows a failed scan is no proof
        else:
            last_any, last_good, error_after_good = moment, moment, False
    if last_any is not None:
        result["last_heartbeat_age_seconds"] = round(now - last_any, 1)
    if last_good is not None:
        result["last_good_heartbeat_age_seconds"] = round(now - last_good, 1)
    result["alive"] = last_good is not None and now - last_good <= max_age and not error_after_good
    age = "none seen" if last_any is None else f"{now - last_any:.0f} s ago"
    run_age = run_seconds(state)
    # A run younger than the window that has not polled yet is starting: not alive, but nothing lost either.
    result["starting"] = not lines and run_age is not None and run_age <= max_age
    if result["starting"]:
        result["detail"] = f"{host}: started {run_age:.0f} s ago, no heartbeat yet"
        return result
    error = f"; last error: {result['last_error']}" if result["last_error"] else ""
    if result["alive"]:
        result["detail"] = f"{host}: heartbeat {now - last_good:.0f} s ago (within {max_age:.0f} s)"
    elif error_after_good:
        result["detail"] = f"{host}: the processor's scans fail; last heartbeat {age}{error}"
    else:
        result["detail"] = f"{host}: no heartbeat within {max_age:.0f} s; last heartbeat {age}{error}"
    return result


def write_textfile(path: str, result: dict) -> None:
    """Prometheus textfile-collector format, replaced atomically so the collector never reads half a file."""
    age = result["last_good_heartbeat_age_seconds"]
    labels = f'unit="{result["unit"]}"'
    lines = [
        "# HELP panzoto_processor_up 1 when the job processor's heartbeat is recent and its scans work.",
        "# TYPE panzoto_processor_up gauge",
        f"panzoto_processor_up{{{labels}}} {1 if result['alive'] else 0}",
        "# HELP panzoto_processor_heartbeat_age_seconds Seconds since the last good heartbeat (-1: none seen).",
        "# TYPE panzoto_processor_heartbeat_age_seconds gauge",
        f"panzoto_processor_heartbeat_age_seconds{{{labels}}} {age if age is not None else -1}",
    ]
    directory = os.path.dirname(path) or "."
    with tempfile.NamedTemporaryFile("w", dir=directory, prefix=".panzoto-liveness.", delete=False) as out:
        out.write("\n".join(lines) + "\n")
    os.chmod(out.name, 0o644)
    os.replace(out.name, path)


def alert_on_change(state_file: str, webhook_file: str, result: dict) -> None:
    """Post once on loss and once on recovery. The first run only records: there is no change to report;
    a starting run changes nothing (a restart is no loss)."""
    if result["starting"]:
        return
    try:
        with open(state_file, encoding="utf-8") as previous_file:
            previous = json.load(previous_file).get("alive")
    except (OSError, ValueError):
        previous = None
    if previous is not None and previous != result["alive"] and webhook_file:
        with open(webhook_file, encoding="utf-8") as url_file:
            url = url_file.read().strip()
        parts = urllib.parse.urlsplit(url)
        if parts.username is not None or parts.password is not None:
            # urllib would hand user:password@ to the name resolver as part of the host name.
            raise SystemExit(f"{webhook_file}: the webhook URL holds credentials (user:password@); not posted")
        what = "recovered" if result["alive"] else "lost"
        body = {"text": f"panzoto processor liveness {what}: {result['detail']}", "status": what, **result}
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
    with open(state_file + ".tmp", "w", encoding="utf-8") as out:
        json.dump({"alive": result["alive"], "detail": result["detail"], "at": int(time.time())}, out)
    os.replace(state_file + ".tmp", state_file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", required=True)
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--intervals", type=float, default=3)
    parser.add_argument("--min-age", type=float, default=0, help="seconds a heartbeat may always be old")
    parser.add_argument("--wait", type=float, default=0, help="seconds to wait for the processor to be alive")
    parser.add_argument("--poll", type=float, default=1)
    parser.add_argument("--textfile", default="")
    parser.add_argument("--state-file", default="")
    parser.add_argument("--webhook-file", default="")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.wait
    while True:
        result = verdict(args.unit, args.env_file, args.intervals, args.min_age)
        if result["alive"] or time.monotonic() >= deadline:
            break
        time.sleep(args.poll)
    if args.textfile:
        write_textfile(args.textfile, result)
    print(json.dumps(result))
    if args.state_file:
        try:
            alert_on_change(args.state_file, args.webhook_file, result)
        except OSError as error:  # URLError is one; the state stays, so the next run posts again
            print(f"panzoto-liveness: alert not sent: {error}", file=sys.stderr)
            return 1
    return 0 if result["alive"] else 1


if __name__ == "__main__":
    sys.exit(main())
