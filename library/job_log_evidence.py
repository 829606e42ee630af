#!/usr/bin/python
"""Ansible module: the log records that name given jobs, read on an API server itself."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: job_log_evidence
short_description: Read the Panzoto service's log records about given jobs, on the server itself
description:
  - Runs on an API server and returns only the log records that name the given jobs, so no
    journal or log file is ever copied to the control node.
  - Reads the journal of O(unit) with C(journalctl -u UNIT --since --until -o json) once per time
    window (the jobs' windows, overlapping ones merged), and the app's own log files (O(log_dir),
    O(log_globs); rotated, C(.zip) and C(.gz) ones included) whose time span overlaps a window.
  - A record is a loguru line (C(2025-10-09 14:03:27 | ERROR | file:function:line - message)), or in the
    journal a Python logging line (C(ERROR:logger.name:message), which the backend's processor writes), with
    the traceback lines that follow it. ANSI colour codes are stripped.
  - A record is about one job, decided from the record itself - the first job its first line names as
    C(Job <id>) or C(job_id=<id>), else the first selected job or audio file id it contains (the processor's
    C([ERROR] Failed to fetch audio file <audio_file_id>) lines) - and is that job's evidence when it falls in
    the job's window; another job's id mentioned later in it makes it no evidence of that other job.
  - A warning or error that names no job or audio id (the processor's C([WARN] File too large) and the key
    service's C([KEY ERROR] ... for user <id>) lines) belongs to the job the same log named last when it names
    nothing else than that job's user or audio (C(tied_by=context)), else to the one selected job of the user
    it names whose window holds it (C(tied_by=user_id)); when two jobs of that user could be meant, to none.
  - Fails, in one line naming what it tried, when it could read nothing (no journal read, no log file
    found) or the log directory is missing, since a diagnosis that read nothing would call every job C(no_evidence).
  - Every record is redacted whole on the host before it is cut to O(max_record_lines) and O(max_line_chars)
    and returned (PEM private keys, OpenAI, Stripe and AWS keys, Bearer tokens, JWTs, cookies, Slack webhooks,
    URL credentials, 32-byte keys in base64 or hex, the backend's C([KEY] Returning encryption key) prefix,
    C(password=), C(--password x) and similar secrets, plus O(redact_patterns)); control characters are
    written as visible escapes (C(\\x1b)).
  - Returns the number of bytes read on the host and the number of bytes returned, so the cost of a
    diagnosis is measured.
  - Reads only; never changes anything (check mode is the same run).
version_added: "1.0.0"
options:
  jobs:
    description:
      - The jobs to look for, each a dict with C(job_id), optional C(audio_file_id) and C(user_id), and its time window
        C(window_start) and C(window_end) (ISO-8601).
      - As produced by M(processing_jobs_diagnose) with C(step=select).
    type: list
    elements: dict
    required: true
  unit:
    description: The systemd unit of the service (without C(.service) is fine).
    type: str
    default: panzoto
  journal:
    description: Read the unit's journal.
    type: bool
    default: true
  journalctl:
    description: The journalctl command.
    type: str
    default: journalctl
  log_dir:
    description:
      - Directory of the app's own log files (the backend writes C(./logs/app_<YYYYmmdd_HHMMSS>.log) in its
        working directory). A directory that is missing or cannot be listed fails the module, naming it.
      - Empty to read no files.
    type: path
    default: /opt/panzoto/app/logs
  log_globs:
    description: File name patterns in O(log_dir); names ending in C(.zip) or C(.gz) are read compressed.
    type: list
    elements: str
    default: ["app_*"]
  max_records_per_job:
    description: Records kept per job, the most recent ones (the last attempts decide the cause).
    type: int
    default: 50
  max_record_lines:
    description: Lines kept per record, its first line and the end of its traceback.
    type: int
    default: 40
  max_line_chars:
    description: Characters kept per line.
    type: int
    default: 2000
  redact_patterns:
    description: More regular expressions whose matches are replaced by C([REDACTED]) in every record.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
extends_documentation_fragment:
  - action_common_attributes
author: panzoto-ops maintainers (@panzoto-ops)
"""

EXAMPLES = r"""
- name: Read the log records of two jobs on every API server
  job_log_evidence:
    jobs:
      - job_id: 5f0c...
        audio_file_id: 9a1b...
        window_start: "2025-10-09T13:50:00Z"
        window_end: "2025-10-09T14:20:00Z"
    unit: panzoto
    log_dir: /opt/panzoto/app/logs
  register: evidence
"""

RETURN = r"""
jobs:
  description:
    - Job id to its records, oldest first; jobs without records are left out.
    - Each record has C(time) (ISO-8601 UTC), C(source) (C(journal) or the log file's name), C(level),
      C(tied_by) (C(job_id), C(audio_file_id), C(context) or C(user_id)) and C(text) (redacted, ANSI-free; traceback
      lines after the first line).
  returned: always
  type: dict
bytes_read:
  description: Bytes of journal output and log file content read on the host.
  returned: always
  type: int
bytes_returned:
  description: Bytes of the records returned (their JSON).
  returned: always
  type: int
records_scanned:
  description: Log records looked at in the windows.
  returned: always
  type: int
redactions:
  description: Secrets replaced by C([REDACTED]) in the returned records.
  returned: always
  type: int
windows:
  description: The merged time windows read, as C([start, end]) ISO-8601 pairs.
  returned: always
  type: list
sources:
  description:
    - What was read, each with C(source), C(bytes_read), C(records) (records kept) and, when it was not
      read or not fully, C(skipped) or C(error).
  returned: always
  type: list
"""

import fnmatch
import gzip
import json
import os
import subprocess
import time
import zipfile
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.panzoto.diagnosis.loguru import (
    FAILURE_LEVELS,
    ID_TOKEN,
    UUID,
    named_jobs,
    printable,
    record_head,
    strip_ansi,
)
from ansible.module_utils.panzoto.options import OptionError
from ansible.module_utils.panzoto.redact import PatternError, build_patterns, redact

FILE_STAMP = "%Y%m%d_%H%M%S"


@dataclass(frozen=True)
class Wanted:
    job_id: str
    audio_file_id: str | None
    start: float  # epoch seconds
    end: float
    user_id: str | None = None

    def covers(self, moment: float) -> bool:
        return self.start <= moment <= self.end


def epoch(value: object, what: str) -> float:
    if not isinstance(value, str) or not value.strip():
        raise OptionError(f"{what} must be an ISO-8601 timestamp, got {value!r}.")
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise OptionError(f"{what} must be an ISO-8601 timestamp, got {value!r}.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_jobs(specs: list) -> list[Wanted]:
    wanted = []
    for position, spec in enumerate(specs):
        where = f"jobs[{position}]"
        job_id = spec.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise OptionError(f"{where}.job_id must be a non-empty string.")
        audio = spec.get("audio_file_id")
        if audio is not None and not isinstance(audio, str):
            raise OptionError(f"{where}.audio_file_id must be a string.")
        user = spec.get("user_id")
        start = epoch(spec.get("window_start"), f"{where}.window_start")
        end = epoch(spec.get("window_end"), f"{where}.window_end")
        if end < start:
            raise OptionError(f"{where}: window_end is before window_start.")
        wanted.append(Wanted(job_id, audio or None, start, end, user if isinstance(user, str) and user else None))
    return wanted


def merge_windows(wanted: list[Wanted]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted((job.start, job.end) for job in wanted):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def loguru_time(stamp: str) -> float | None:
    """Epoch seconds of a loguru timestamp, written in the host's local time."""
    try:
        whole = time.mktime(time.strptime(stamp[:19].replace("T", " "), "%Y-%m-%d %H:%M:%S"))
    except (ValueError, OverflowError):
        return None
    fraction = stamp[20:]
    return whole + (float("0." + fraction) if fraction.isdigit() else 0.0)


@dataclass
class Record:
    lines: list[str]
    moment: float | None
    level: str
    source: str


@dataclass
class Collector:
    """Ties complete records to the wanted jobs, keeping the most recent ones per job."""

    wanted: list[Wanted]
    max_records: int
    max_lines: int
    max_chars: int
    patterns: tuple
    by_job: dict[str, Wanted] = field(default_factory=dict)
    by_audio: dict[str, list[Wanted]] = field(default_factory=dict)
    kept: dict[str, deque] = field(default_factory=dict)
    scanned: int = 0
    redactions: int = 0

    by_user: dict[str, list[Wanted]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for job in self.wanted:
            self.by_job[job.job_id] = job
            if job.audio_file_id:
                self.by_audio.setdefault(job.audio_file_id, []).append(job)
            if job.user_id:
                self.by_user.setdefault(job.user_id, []).append(job)

    def text_of(self, record: Record) -> str:
        """The record redacted whole (a secret spanning lines, or past a cut, is seen whole), then cut."""
        text, count = redact("\n".join(record.lines), self.patterns)
        self.redactions += count
        lines = [printable(line[: self.max_chars]) for line in text.split("\n")]
        if len(lines) > self.max_lines:
            omitted = len(lines) - self.max_lines
            lines = [lines[0], f"... ({omitted} lines omitted)", *lines[-(self.max_lines - 1) :]]
        return "\n".join(lines)

    def keep(self, job: Wanted, record: Record, tied_by: str, text: str) -> None:
        entry = {
            "time": iso(record.moment),
            "source": record.source,
            "level": record.level,
            "tied_by": tied_by,
            "text": text,
        }
        self.kept.setdefault(job.job_id, deque(maxlen=self.max_records)).append(entry)

    def subject(self, record: Record, context: list) -> tuple[list[Wanted], str]:
        """The wanted jobs a record is about, and how that was decided; `context` is updated.

        A record is about one job: the first it names as `Job <id>` or `job_id=<id>` in its first line,
        else the first selected job or audio file id it contains. Other ids it mentions do not make it
        their job's evidence (`Job A failed: duplicate of job B` is A's). A warning or error naming no
        job or audio id belongs to the job the same log named last when it names nothing else but that
        job's user or audio (`context`), else to the one selected job of the user it names whose window
        holds it (`user_id`; two such jobs: nobody's, never guessed).
        """
        named = named_jobs(record.lines[0])
        if named:
            # The job this log speaks about now; an unselected one ends the previous context.
            context[0] = self.by_job.get(named[0])
            return ([context[0]] if context[0] else []), "job_id"
        raw = "\n".join(record.lines)
        for token in ID_TOKEN.findall(raw):
            if token in self.by_job:
                return [self.by_job[token]], "job_id"
            if token in self.by_audio:
                return list(self.by_audio[token]), "audio_file_id"
        if record.level not in FAILURE_LEVELS:
            return [], ""
        uuids = set(UUID.findall(raw))
        current = context[0]
        if current is not None and uuids <= {current.user_id, current.audio_file_id}:
            return [current], "context"
        users = [user for user in uuids if user in self.by_user]
        if len(users) == 1 and record.moment is not None:
            candidates = [job for job in self.by_user[users[0]] if job.covers(record.moment)]
            if len(candidates) == 1:
                return candidates, "user_id"
        return [], ""

    def take(self, record: Record, context: list) -> int:
        """Tie one complete record to the job it is about. Returns records kept."""
        self.scanned += 1
        jobs, how = self.subject(record, context)
        if record.moment is None:
            return 0
        jobs = [job for job in jobs if job.covers(record.moment)]
        if not jobs:
            return 0
        text = self.text_of(record)
        for job in jobs:
            self.keep(job, record, how, text)
        return len(jobs)

    def result(self) -> dict:
        return {job_id: list(records) for job_id, records in sorted(self.kept.items())}


class Stream:
    """Groups lines of one log into records (a loguru line and the traceback lines after it)."""

    def __init__(self, collector: Collector, source: str) -> None:
        self.collector = collector
        self.source = source
        self.current: Record | None = None
        self.context: list = [None]
        self.kept = 0
        self.origin: str | None = None

    def line(self, text: str, moment: float | None = None, origin: str | None = None) -> None:
        """One line; `moment` is the journal's timestamp, else the loguru timestamp is used.

        `origin` (the journal's _PID) keeps another process's line, such as systemd's own
        `panzoto.service: Deactivated successfully.`, out of a record's traceback.
        """
        text = strip_ansi(text.rstrip("\r\n"))
        head = record_head(text)
        if head:
            self.flush()
            # A line without a time of its own (Python logging's format) counts only in the journal.
            written = head.groupdict().get("stamp")
            stamp = moment if moment is not None else (loguru_time(written) if written else None)
            self.current = Record([text], stamp, head["level"], self.source)
            self.origin = origin
        elif self.current is not None:
            if origin == self.origin:
                self.current.lines.append(text)
            else:
                self.flush()
        # Lines before the first record start belong to a record outside the window: skipped.

    def flush(self) -> None:
        if self.current is not None:
            self.kept += self.collector.take(self.current, self.context)
            self.current = None


def journal_message(entry: dict) -> str | None:
    message = entry.get("MESSAGE")
    if isinstance(message, list):  # journalctl writes non-printable (ANSI) messages as byte arrays
        return bytes(message).decode("utf-8", "replace")
    return message if isinstance(message, str) else None


def read_journal(params: dict, windows: list, collector: Collector, sources: list) -> int:
    unit = params["unit"] if params["unit"].endswith(".service") else params["unit"] + ".service"
    total = 0
    for start, end in windows:
        command = [
            params["journalctl"], "--unit", unit, "--since", f"@{int(start)}", "--until", f"@{int(end) + 1}",
            "--output", "json", "--output-fields", "MESSAGE,_PID", "--all", "--no-pager", "--quiet",
        ]  # fmt: skip
        source = {"source": f"journal:{unit}", "window": [iso(start), iso(end)], "bytes_read": 0, "records": 0}
        sources.append(source)
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            source["error"] = f"cannot run {params['journalctl']}: {exc.strerror}"
            return total
        stream = Stream(collector, "journal")
        for raw in process.stdout:
            source["bytes_read"] += len(raw)
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            message = journal_message(entry)
            if message is None:
                continue
            stamp = entry.get("__REALTIME_TIMESTAMP")
            moment = int(stamp) / 1_000_000 if isinstance(stamp, str) and stamp.isdigit() else None
            origin = entry.get("_PID") if isinstance(entry.get("_PID"), str) else None
            for part in message.split("\n"):
                stream.line(part, moment, origin)
        stream.flush()
        stderr = process.stderr.read().decode("utf-8", "replace").strip()
        if process.wait() != 0:
            source["error"] = (stderr.splitlines() or [f"journalctl exited with {process.returncode}"])[0]
        source["records"] = stream.kept
        total += source["bytes_read"]
    return total


def name_start(name: str) -> float | None:
    """When a log file was started, from its `app_<YYYYmmdd_HHMMSS>` name, in host local time."""
    stem = os.path.basename(name)
    for index in range(len(stem) - 14):
        chunk = stem[index : index + 15]
        if chunk[8] == "_" and chunk[:8].isdigit() and chunk[9:].isdigit():
            try:
                return time.mktime(time.strptime(chunk, FILE_STAMP))
            except ValueError:
                return None
    return None


def overlaps(first: float | None, last: float, windows: list) -> bool:
    return any((first is None or first <= end) and last >= start for start, end in windows)


def read_lines(handle, stream: Stream, source: dict, last_end: float) -> None:
    for raw in handle:
        source["bytes_read"] += len(raw)
        stream.line(raw.decode("utf-8", "replace"))
        current = stream.current
        if current is not None and current.moment is not None and current.moment > last_end:
            source["stopped_early"] = True  # files are in time order: nothing later can be in a window
            break
    stream.flush()


def read_files(params: dict, windows: list, collector: Collector, sources: list) -> int:
    directory = params["log_dir"]
    if not directory:
        return 0
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        sources.append({"source": directory, "bytes_read": 0, "records": 0, "error": exc.strerror or str(exc)})
        return 0
    last_end = max(end for _, end in windows)
    total = 0
    for name in names:
        path = os.path.join(directory, name)
        if not any(fnmatch.fnmatch(name, pattern) for pattern in params["log_globs"]) or not os.path.isfile(path):
            continue
        # Every file the globs match is listed: read, skipped for its time span, or failed.
        source = {"source": name, "bytes_read": 0, "records": 0, "skipped": "its time span misses every window"}
        try:
            if name.endswith(".zip"):
                with zipfile.ZipFile(path) as archive:
                    for member in archive.infolist():
                        last = time.mktime((*member.date_time, 0, 0, -1))
                        if not overlaps(name_start(member.filename) or name_start(name), last, windows):
                            continue
                        source.pop("skipped", None)
                        stream = Stream(collector, f"{name}:{member.filename}")
                        with archive.open(member) as handle:
                            read_lines(handle, stream, source, last_end)
                        source["records"] += stream.kept
            else:
                if overlaps(name_start(name), os.stat(path).st_mtime, windows):
                    source.pop("skipped")
                    opener = gzip.open if name.endswith(".gz") else open
                    stream = Stream(collector, name)
                    with opener(path, "rb") as handle:
                        read_lines(handle, stream, source, last_end)
                    source["records"] = stream.kept
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            source.pop("skipped", None)
            source["error"] = f"{type(exc).__name__}: {exc}"
        sources.append(source)
        total += source["bytes_read"]
    return total


def nothing_checked(params: dict, sources: list) -> str:
    """One line: what could not be read and every path tried (a diagnosis that read nothing proves nothing)."""
    problems = [f"{source['source']}: {source['error']}" for source in sources if "error" in source]
    tried = [f"journal of {params['unit']}" if params["journal"] else "no journal (journal=false)"]
    if params["log_dir"]:
        tried.append(f"{params['log_dir']}/{{{','.join(params['log_globs'])}}}")
    else:
        tried.append("no log files (log_dir empty)")
    if not problems:
        problems = ["no log file matches" if params["log_dir"] else "nothing to read"]
    return f"Nothing read: {'; '.join(dict.fromkeys(problems))} (tried {', '.join(tried)})"


def argument_spec() -> dict:
    return dict(
        jobs=dict(type="list", elements="dict", required=True),
        unit=dict(type="str", default="panzoto"),
        journal=dict(type="bool", default=True),
        journalctl=dict(type="str", default="journalctl"),
        log_dir=dict(type="path", default="/opt/panzoto/app/logs"),
        log_globs=dict(type="list", elements="str", default=["app_*"]),
        max_records_per_job=dict(type="int", default=50),
        max_record_lines=dict(type="int", default=40),
        max_line_chars=dict(type="int", default=2000),
        redact_patterns=dict(type="list", elements="str", default=[], no_log=False),
    )


def run_module() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        for name in ("max_records_per_job", "max_record_lines", "max_line_chars"):
            if params[name] < 2:
                raise OptionError(f"{name} must be 2 or more, got {params[name]}.")
        wanted = parse_jobs(params["jobs"])
        patterns = build_patterns(params["redact_patterns"])
    except (OptionError, PatternError) as exc:
        module.fail_json(msg=str(exc))
    result = {"changed": False, "jobs": {}, "bytes_read": 0, "bytes_returned": 2, "records_scanned": 0}
    result.update({"redactions": 0, "windows": [], "sources": []})
    if not wanted:
        module.exit_json(**result)
    windows = merge_windows(wanted)
    collector = Collector(
        wanted, params["max_records_per_job"], params["max_record_lines"], params["max_line_chars"], patterns
    )
    sources: list = []
    bytes_read = 0
    if params["journal"]:
        bytes_read += read_journal(params, windows, collector, sources)
    bytes_read += read_files(params, windows, collector, sources)
    if not any("error" not in source for source in sources) or any(
        source["source"] == params["log_dir"] for source in sources
    ):
        module.fail_json(msg=nothing_checked(params, sources), sources=sources)
    jobs = collector.result()
    result.update(
        jobs=jobs,
        bytes_read=bytes_read,
        bytes_returned=len(json.dumps(jobs)),
        records_scanned=collector.scanned,
        redactions=collector.redactions,
        windows=[[iso(start), iso(end)] for start, end in windows],
        sources=sources,
    )
    module.exit_json(**result)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
