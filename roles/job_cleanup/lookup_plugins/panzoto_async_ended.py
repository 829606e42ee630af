"""Lookup panzoto_async_ended: whether a background run has written its result, waiting on the control node.

tasks/poll.yml asks it once per poll instead of running ansible.builtin.wait_for: the cleanup runs on the
control node (README), so its status file is here, and a wait in this process costs no module run (about a
third of a second of CPU each) and ends within a tenth of a second of the result, not of a whole second.
"""

from __future__ import annotations

DOCUMENTATION = """
name: panzoto_async_ended
short_description: Wait until a background task's status file holds its result
description:
  - Reads the status file an C(async) task writes (C(results_file) of its registered result) on the control node
    until it holds the task's result or O(timeout) seconds pass; returns whether the task has ended.
  - Ended is what M(ansible.builtin.async_status) calls finished, a status without C(started) or with
    C(finished) set. A missing or unreadable file counts as ended once the wait is over, so that
    M(ansible.builtin.async_status), asked next, reports it as it does.
options:
  _terms:
    description: The status file.
    required: true
  timeout:
    description: Seconds to wait at most.
    type: float
    default: 5
"""

import json
import time

from ansible.plugins.lookup import LookupBase

# Often enough that a short run is not held, seldom enough to cost nothing next to the run.
CHECK_EVERY_S = 0.1


def read_status(path: str) -> dict | None:
    """The status as async_status reads it; None when the file is missing or not a JSON object."""
    try:
        with open(path, encoding="utf-8") as status_file:
            status = json.load(status_file)
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def has_ended(status: dict) -> bool:
    return "started" not in status or bool(status.get("finished"))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        (path,) = terms
        deadline = time.monotonic() + max(0.0, float(self.get_option("timeout")))
        while True:
            status = read_status(path)
            if status is not None and has_ended(status):
                return [True]
            if time.monotonic() >= deadline:
                return [status is None]
            time.sleep(CHECK_EVERY_S)
