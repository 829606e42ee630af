"""Waivers: a known breach accepted for a while, with a reason and an owner (issue 21).

The waiver file is a YAML list; each entry names a threshold (a status, a category or an
aggregate such as pending_stuck), why it is accepted, who owns it and the last day it holds:

    - threshold: legacy_encryption
      reason: cleanup scheduled after the migration
      owner: ops@example.com
      expires: 2025-11-30

A waived breach is reported as waived, not breached, through its expiry day (UTC); from the
next day it counts again and says its waiver expired. A file that cannot be read as such a list
fails the run in one line naming the file, the entry and the field.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date

FIELDS = ("threshold", "reason", "owner", "expires")


class WaiverError(ValueError):
    """A waiver file that cannot be used; the message is one line naming the file and the entry."""


@dataclass(frozen=True)
class Waiver:
    threshold: str
    reason: str
    owner: str
    expires: date

    def as_dict(self) -> dict:
        return {"reason": self.reason, "owner": self.owner, "expires": self.expires.isoformat()}


def load_waivers(path: str, known: set[str]) -> dict[str, Waiver]:
    """The waivers of `path` by threshold name; raises WaiverError (one line)."""
    import yaml  # here, not at the top: only a run given a waivers file pays for PyYAML's import

    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except OSError as exc:
        raise WaiverError(f"waivers file {path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise WaiverError(f"waivers file {path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, list):
        raise WaiverError(f"waivers file {path}: must be a YAML list of waivers, got a {type(data).__name__}")
    waivers: dict[str, Waiver] = {}
    for position, entry in enumerate(data, start=1):
        waiver = _waiver(entry, f"waivers file {path}: entry {position}", known)
        if waiver.threshold in waivers:
            raise WaiverError(f"waivers file {path}: entry {position}: {waiver.threshold!r} is waived twice")
        waivers[waiver.threshold] = waiver
    return waivers


def _waiver(entry: object, where: str, known: set[str]) -> Waiver:
    if not isinstance(entry, dict):
        raise WaiverError(f"{where}: must be a mapping with {', '.join(FIELDS)}")
    unknown = sorted(set(map(str, entry)) - set(FIELDS))
    if unknown:
        raise WaiverError(f"{where}: unknown field {unknown[0]!r}: use {', '.join(FIELDS)}")
    for name in FIELDS:
        if entry.get(name) in (None, ""):
            raise WaiverError(f"{where}: {name} is missing")
    threshold = entry["threshold"]
    if not isinstance(threshold, str) or threshold not in known:
        raise WaiverError(f"{where}: threshold {threshold!r} is not a threshold or category this audit knows")
    for name in ("reason", "owner"):
        if not isinstance(entry[name], str):
            raise WaiverError(f"{where}: {name} must be text, got {entry[name]!r}")
    expires = entry["expires"]
    if isinstance(expires, str):
        with contextlib.suppress(ValueError):
            expires = date.fromisoformat(expires)
    if not isinstance(expires, date) or hasattr(expires, "hour"):
        raise WaiverError(f"{where}: expires {entry['expires']!r} is not a date (YYYY-MM-DD)")
    return Waiver(threshold, entry["reason"], entry["owner"], expires)


def apply_waivers(breached: list[dict], waivers: dict[str, Waiver], today: date) -> tuple[list[dict], list[dict]]:
    """(still breached, waived). A breach under an expired waiver stays breached and says so."""
    still, waived = [], []
    for item in breached:
        waiver = waivers.get(item["name"])
        if waiver is None:
            still.append(item)
        elif today <= waiver.expires:
            waived.append(
                {**item, "waiver": waiver.as_dict(), "message": f"{item['message']} (waived: {waiver.reason})"}
            )
        else:
            still.append(
                {
                    **item,
                    "waiver_expired": waiver.as_dict(),
                    "message": f"{item['message']} (waiver by {waiver.owner} expired {waiver.expires.isoformat()})",
                }
            )
    return still, waived
