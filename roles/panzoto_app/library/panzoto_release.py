#!/usr/bin/python
"""Ansible module: the release directories of a Panzoto host, the `current` link and the deploy history."""

from __future__ import annotations

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: panzoto_release
short_description: Read, switch, mark and prune the release directories of a Panzoto API host
description:
  - A release is a directory C(<home>/releases/<id>) holding the code, its environment file and a link C(venv) to
    its virtualenv C(<home>/venvs/<id>), which releases with the same dependency set share; it is complete once
    its C(release.json) exists (written last, so an interrupted build is built again).
  - C(<home>/current) is a link to the release the service runs; switching it is atomic (a new link renamed over it).
  - A failed release is kept for analysis with a C(FAILED) file saying when and why.
  - Every switch, failure and health verdict is a line of C(<state_dir>/history.jsonl) (root only).
  - Check mode changes nothing and reports what would change; diff shows the link before and after.
author: panzoto-ops maintainers (@panzoto-ops)
options:
  home:
    description: Base directory of the deployment (C(panzoto_app_home)).
    type: path
    required: true
  state_dir:
    description: Root-only directory of the deploy state (C(panzoto_app_state_dir)).
    type: path
    required: true
  state:
    description:
      - C(info) reads everything and changes nothing; C(switch) points C(current) at O(release);
        C(failed) marks O(release) failed with O(reason); C(record) appends a history line;
        C(prune) removes old releases, then the virtualenvs no release left links to.
    type: str
    choices: [info, switch, failed, record, prune]
    default: info
  release:
    description: Release id for C(switch), C(failed) and C(record).
    type: str
  reason:
    description: Why the release failed (C(failed)), or the history line's outcome detail (C(record)).
    type: str
    default: ""
  outcome:
    description: The history line's outcome (C(record)), e.g. C(healthy), C(failed), C(rolled back).
    type: str
    default: ""
  details:
    description: Further fields of the history line (C(record)), e.g. source, revision, lock hash.
    type: dict
    default: {}
  keep:
    description: Successful releases kept by C(prune), the current one included.
    type: int
    default: 3
  keep_failed:
    description: Failed (or never completed) releases kept by C(prune), counted apart from the successful ones.
    type: int
    default: 2
  history_lines:
    description: How many of the last history lines C(info) returns.
    type: int
    default: 10
"""

RETURN = r"""
current:
  description: Id of the release C(current) points at after this run, empty when there is none.
  returned: always
  type: str
previous:
  description:
    - For C(switch), the release C(current) pointed at before.
    - Otherwise the newest release other than the current one that was proven healthy and is not marked failed
      (what a rollback goes back to), empty when there is none.
  returned: always
  type: str
releases:
  description:
    - Every release directory, oldest first, with C(id), C(complete), C(failed), C(reason), C(created), C(venv)
      (the virtualenv it links to, empty for none) and C(origin) (its C(release.json)).
  returned: always
  type: list
  elements: dict
history:
  description: The last O(history_lines) history lines, oldest first.
  returned: always
  type: list
  elements: dict
removed:
  description: Ids of the releases C(prune) removed (would remove, in check mode).
  returned: always
  type: list
  elements: str
removed_venvs:
  description:
    - Ids of the virtualenvs C(prune) removed because no kept release links to them (would remove, in check mode).
  returned: always
  type: list
  elements: str
"""

METADATA = "release.json"
VENVS = "venvs"
FAILED = "FAILED"
HISTORY = "history.jsonl"
# The fields of release.json that say where a release came from.
ORIGIN_FIELDS = ("source", "repository", "ref", "revision", "path", "archive_sha1", "lock_sha1")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_history(state_dir: str) -> list[dict]:
    try:
        with open(os.path.join(state_dir, HISTORY), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash is skipped, never fatal
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def current_release(home: str) -> str:
    target = os.readlink(os.path.join(home, "current")) if os.path.islink(os.path.join(home, "current")) else ""
    return os.path.basename(target.rstrip("/"))


def venv_of(release_dir: str) -> str:
    """The id of the virtualenv a release links to (venvs/<id>); empty when it has none of its own kind."""
    link = os.path.join(release_dir, "venv")
    return os.path.basename(os.readlink(link).rstrip("/")) if os.path.islink(link) else ""


def releases(home: str) -> list[dict]:
    root = os.path.join(home, "releases")
    found = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        path = os.path.join(root, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        metadata = read_json(os.path.join(path, METADATA))
        failed = read_json(os.path.join(path, FAILED))
        found.append(
            {
                "id": name,
                "complete": metadata is not None,
                "failed": failed is not None,
                "reason": (failed or {}).get("reason", ""),
                "created": (metadata or {}).get("created", ""),
                "venv": venv_of(path),
                "metadata": metadata or {},
            }
        )
    return sorted(found, key=lambda release: (release["created"], release["id"]))


def last_healthy(history: list[dict]) -> dict[str, str]:
    """When each release was last proven healthy (the history's `at`)."""
    healthy: dict[str, str] = {}
    for entry in history:
        if entry.get("outcome") == "healthy" and entry.get("release"):
            healthy[entry["release"]] = entry.get("at", "")
    return healthy


def rollback_target(found: list[dict], history: list[dict], current: str) -> str:
    healthy = last_healthy(history)
    candidates = [
        release
        for release in found
        if release["id"] != current and release["complete"] and not release["failed"] and release["id"] in healthy
    ]
    candidates.sort(key=lambda release: healthy[release["id"]])
    return candidates[-1]["id"] if candidates else ""


def write_atomically(path: str, text: str, mode: int) -> None:
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def append_history(state_dir: str, entry: dict) -> None:
    path = os.path.join(state_dir, HISTORY)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(descriptor, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def switch(module: AnsibleModule, home: str, state_dir: str, release: str, found: list[dict]) -> dict:
    wanted = next((item for item in found if item["id"] == release), None)
    if wanted is None or not wanted["complete"]:
        module.fail_json(msg=f"release {release!r} is not a complete release in {home}/releases: nothing switched.")
    before = current_release(home)
    result = {"changed": before != release, "previous": before, "current": release}
    result["diff"] = {"before": f"current -> releases/{before}\n", "after": f"current -> releases/{release}\n"}
    if result["changed"] and not module.check_mode:
        link = os.path.join(home, "current")
        temporary = f"{link}.tmp-{os.getpid()}"
        if os.path.lexists(temporary):
            os.unlink(temporary)
        os.symlink(os.path.join("releases", release), temporary)
        os.replace(temporary, link)  # rename(2): the service sees the old release or the new one, never none
        # The service restarts when this file is newer than its start (panzoto_service's restart triggers).
        write_atomically(os.path.join(state_dir, "release"), release + "\n", 0o600)
        append_history(state_dir, {"at": now(), "release": release, "outcome": "switched", "from": before})
    return result


def prune(
    module: AnsibleModule, home: str, state_dir: str, found: list[dict], current: str
) -> tuple[list[str], list[str]]:
    """Keeps the current release, the newest `keep` successful ones (it included) and, counted apart, the newest
    `keep_failed` failed or incomplete ones: failed releases never push a good one out. Then removes the
    virtualenvs no kept release links to (interrupted builds among them). Returns (releases, virtualenvs)."""
    healthy = last_healthy(read_history(state_dir))
    good = [item for item in found if item["complete"] and not item["failed"] and item["id"] != current]
    # Newest use first: a release proven healthy lately outranks one merely built lately.
    good.sort(key=lambda item: (healthy.get(item["id"], ""), item["created"]), reverse=True)
    others = [item for item in found if item not in good and item["id"] != current]
    others.sort(key=lambda item: (item["created"], item["id"]), reverse=True)
    room = module.params["keep"] - (1 if current else 0)
    kept = {current} | {item["id"] for item in good[: max(room, 0)]}
    kept |= {item["id"] for item in others[: module.params["keep_failed"]]}
    removed = [item["id"] for item in found if item["id"] not in kept]
    linked = {item["venv"] for item in found if item["id"] in kept}
    venvs_dir = os.path.join(home, VENVS)
    on_disk = sorted(os.listdir(venvs_dir)) if os.path.isdir(venvs_dir) else []
    removed_venvs = [name for name in on_disk if name not in linked and os.path.isdir(os.path.join(venvs_dir, name))]
    if not module.check_mode:
        for release in removed:
            shutil.rmtree(os.path.join(home, "releases", release))
        for venv in removed_venvs:
            shutil.rmtree(os.path.join(venvs_dir, venv))
        if removed or removed_venvs:
            entry = {"at": now(), "outcome": "pruned", "releases": removed}
            if removed_venvs:
                entry["venvs"] = removed_venvs
            append_history(state_dir, entry)
    return removed, removed_venvs


def mark_failed(module: AnsibleModule, home: str, state_dir: str, release: str, reason: str) -> bool:
    marker = os.path.join(home, "releases", release, FAILED)
    if not os.path.isdir(os.path.dirname(marker)):
        module.fail_json(msg=f"release {release!r} is not in {home}/releases: nothing marked.")
    changed = (read_json(marker) or {}).get("reason") != reason
    if changed and not module.check_mode:
        write_atomically(marker, json.dumps({"at": now(), "reason": reason}, indent=1) + "\n", 0o600)
        append_history(state_dir, {"at": now(), "release": release, "outcome": "failed", "reason": reason})
    return changed


def record(module: AnsibleModule, state_dir: str, found: list[dict]) -> None:
    params = module.params
    # What the release is (its origin and lock hash, from release.json) goes on every line about it.
    built = next((item["metadata"] for item in found if item["id"] == params["release"]), {})
    entry = {key: built[key] for key in ORIGIN_FIELDS if key in built}
    entry.update(params["details"])
    entry.update({"at": now(), "release": params["release"], "outcome": params["outcome"]})
    if params["reason"]:
        entry["reason"] = params["reason"]
    if not module.check_mode:
        append_history(state_dir, entry)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "home": {"type": "path", "required": True},
            "state_dir": {"type": "path", "required": True},
            "state": {"type": "str", "default": "info", "choices": ["info", "switch", "failed", "record", "prune"]},
            "release": {"type": "str"},
            "reason": {"type": "str", "default": ""},
            "outcome": {"type": "str", "default": ""},
            "details": {"type": "dict", "default": {}},
            "keep": {"type": "int", "default": 3},
            "keep_failed": {"type": "int", "default": 2},
            "history_lines": {"type": "int", "default": 10},
        },
        required_if=[("state", name, ["release"]) for name in ("switch", "failed", "record")],
        supports_check_mode=True,
    )
    params = module.params
    home, state_dir, state = params["home"], params["state_dir"], params["state"]
    if params["keep"] < 1 or params["keep_failed"] < 0:
        module.fail_json(
            msg=f"keep must be 1 or more and keep_failed 0 or more (got {params['keep']} and {params['keep_failed']})."
        )
    found = releases(home)
    result: dict = {"changed": False, "removed": [], "removed_venvs": []}

    if state == "switch":
        result.update(switch(module, home, state_dir, params["release"], found))
    elif state == "failed":
        result["changed"] = mark_failed(module, home, state_dir, params["release"], params["reason"])
    elif state == "record":
        record(module, state_dir, found)
        result["changed"] = True
    elif state == "prune":
        result["removed"], result["removed_venvs"] = prune(module, home, state_dir, found, current_release(home))
        result["changed"] = bool(result["removed"] or result["removed_venvs"])

    # In check mode nothing moved: report the state a real run would leave.
    current = result["current"] if module.check_mode and "current" in result else current_release(home)
    final = [item for item in releases(home) if item["id"] not in result["removed"]]
    history = read_history(state_dir)
    if state != "switch":
        result["previous"] = rollback_target(final, history, current)
    result["current"] = current
    result["releases"] = [
        {**{key: value for key, value in item.items() if key != "metadata"}, "origin": item["metadata"]}
        for item in final
    ]
    result["history"] = history[-params["history_lines"] :] if params["history_lines"] > 0 else []
    module.exit_json(**result)


if __name__ == "__main__":
    main()
