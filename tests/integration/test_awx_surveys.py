"""examples/awx/*.json: job templates with surveys for cleanup, requeue, diagnose and preflight.

Each survey is checked the way AWX checks one when it is POSTed to a job template's survey_spec
(the rules of AWX's JobTemplateSurveySpec view, written here from reading its source), then against
this project: every variable is an option of the playbook it feeds, of a matching type and within its
choices, secrets are password questions, the template launches in check mode, and the survey's
defaults, sent as AWX sends them, run through `ansible-playbook` against moto.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import seed_jobs
import yaml
from ansible.module_utils.panzoto.classification import CATCH_ALL, DEFAULT_RULES
from support.local_http import fake_openai
from support.playbook import REPO_ROOT, run_playbook

EXAMPLES = REPO_ROOT / "examples" / "awx"
TEMPLATES = {path.stem: path for path in sorted(EXAMPLES.glob("*.json"))}
GOOD_KEY = "sk-test-awx-good-0123456789"
# AWX's question types and the Python types their defaults may have.
AWX_TYPES = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": (float, int),
}
SECRET_NAME = re.compile(r"(api_key|password|token|secret_key)$")
# Which role's argument spec each playbook prefix feeds (the playbook name -> the role option name).
ROLE_OPTIONS = {
    "cleanup_jobs_": ("job_cleanup", "job_cleanup_"),
    "diagnose_jobs_": ("job_diagnosis", "job_diagnosis_"),
}
RULES = {rule.category: rule for rule in reversed(DEFAULT_RULES)}
# The categories each survey offers, from the rules' next steps.
OFFERED = {
    "cleanup": {category for category, rule in RULES.items() if rule.next_step == "cleanup"},
    "requeue": {category for category, rule in RULES.items() if rule.next_step in ("requeue", "repair_ffmpeg")},
    "diagnose": {*RULES, CATCH_ALL},
}


def awx_survey_errors(spec: dict) -> list[str]:
    """The errors AWX's API answers a survey spec with (400); [] when it would be accepted."""
    errors = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if field not in spec:
            errors.append(f"Field '{field}' is missing from survey spec.")
        elif not isinstance(spec[field], kind):
            errors.append(f"Expected {kind.__name__} for field '{field}'.")
    if errors:
        return errors
    if not spec["spec"]:
        return ["'spec' doesn't contain any items."]
    seen = set()
    for index, item in enumerate(spec["spec"]):
        if not isinstance(item, dict):
            return [f"Survey question {index} is not a json object."]
        for field in ("type", "question_name", "variable", "required"):
            if field not in item:
                return [f"'{field}' missing from survey question {index}"]
            if not isinstance(item[field], bool if field == "required" else str):
                return [f"'{field}' in survey question {index} has the wrong type."]
        if item["variable"] in seen:
            errors.append(f"'variable' '{item['variable']}' duplicated in survey question {index}.")
        seen.add(item["variable"])
        kind = item["type"]
        if kind not in AWX_TYPES:
            errors.append(f"'{kind}' in survey question {index} is not an allowed question type.")
            continue
        default = item.get("default", "")
        if default != "" and (not isinstance(default, AWX_TYPES[kind]) or isinstance(default, bool)):
            errors.append(f"Default value {default!r} in survey question {index} has the wrong type.")
        for limit in ("min", "max"):
            if item.get(limit) is not None and not isinstance(item[limit], int):
                errors.append(f"The {limit} limit in survey question {index} expected to be integer.")
        if kind in ("multiplechoice", "multiselect"):
            if "choices" not in item:
                errors.append(f"Survey question {index} of type {kind} must specify choices.")
                continue
            choices = item["choices"].splitlines() if isinstance(item["choices"], str) else item["choices"]
            defaults = [line for line in str(default).splitlines() if line.strip()]
            if kind == "multiplechoice" and len(defaults) > 1:
                errors.append("Multiple Choice (Single Select) can only have one default value.")
            if any(choice not in choices for choice in defaults):
                errors.append(f"Default choice must be answered from the choices listed (question {index}).")
        if isinstance(default, str) and default.startswith("$encrypted$") and kind != "password":
            errors.append(f"$encrypted$ is reserved for password defaults, survey question {index} is {kind}.")
    return errors


def role_option(variable: str) -> dict | None:
    """The argument spec entry a playbook variable feeds, or None when no role defines it."""
    for prefix, (role, role_prefix) in ROLE_OPTIONS.items():
        if variable.startswith(prefix):
            specs = yaml.safe_load((REPO_ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
            name = role_prefix + variable.removeprefix(prefix)
            for entry in specs["argument_specs"].values():
                if name in entry["options"]:
                    return entry["options"][name]
    return None


def awx_extra_vars(template: dict) -> dict:
    """What AWX passes to the playbook when every question keeps its default (required empty text filled)."""
    extra = dict(template["job_template"]["extra_vars"])
    for item in template["survey_spec"]["spec"]:
        default = item.get("default", "")
        if item["type"] == "multiselect":
            extra[item["variable"]] = [line for line in default.splitlines() if line]
        elif default != "":
            extra[item["variable"]] = default
        elif item["required"]:
            extra[item["variable"]] = "answered in the survey"
    return extra


@pytest.mark.parametrize("name", TEMPLATES)
def test_awx_accepts_the_survey(name: str) -> None:
    template = json.loads(TEMPLATES[name].read_text())
    assert awx_survey_errors(template["survey_spec"]) == []


BROKEN = {
    "a duplicated variable": lambda spec: spec["spec"].append(copy.deepcopy(spec["spec"][0])),
    "an unknown type": lambda spec: spec["spec"][0].update(type="list"),
    "a default of the wrong type": lambda spec: spec["spec"].append(
        {"type": "integer", "question_name": "n", "variable": "n", "required": True, "default": "ten"}
    ),
    "a default outside the choices": lambda spec: spec["spec"][0].update(default="no_such_category"),
    "a missing required field": lambda spec: spec["spec"][0].pop("required"),
    "no questions": lambda spec: spec.update(spec=[]),
    "an encrypted default on text": lambda spec: spec["spec"].append(
        {"type": "text", "question_name": "t", "variable": "t", "required": False, "default": "$encrypted$"}
    ),
}


@pytest.mark.parametrize("breakage", BROKEN)
def test_the_check_refuses_what_awx_refuses(breakage: str) -> None:
    spec = json.loads(TEMPLATES["cleanup"].read_text())["survey_spec"]
    BROKEN[breakage](spec)
    assert awx_survey_errors(spec), breakage


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_question_feeds_a_playbook_option_of_its_type(name: str) -> None:
    template = json.loads(TEMPLATES[name].read_text())
    job = template["job_template"]
    assert (REPO_ROOT / job["playbook"]).is_file()
    # Check mode first: the operator reads the dry run, then relaunches as run where that is allowed.
    assert job["job_type"] == "check"
    # The playbook and the task files it includes.
    playbook_text = "".join(
        path.read_text() for path in [REPO_ROOT / job["playbook"], *REPO_ROOT.glob("playbooks/tasks/*.yml")]
    )
    for item in template["survey_spec"]["spec"]:
        variable, kind = item["variable"], item["type"]
        if SECRET_NAME.search(variable):
            assert kind == "password", f"{variable} is a secret: it must be a password question"
        option = role_option(variable)
        if option is None:
            assert re.search(rf"\b{variable}\b", playbook_text), f"{variable}: {job['playbook']} does not read it"
            continue
        expected = {"integer": "int", "multiselect": "list", "text": "str", "password": "str"}.get(kind)
        if kind == "multiplechoice" and set(item["choices"].splitlines()) == {"true", "false"}:
            expected = "bool"
        assert option.get("type", "str") == expected, f"{variable}: a {kind} question for a {option.get('type')}"
        if option.get("choices"):
            assert set(item["choices"].splitlines()) <= set(option["choices"]), variable
    categories = next(
        (item for item in template["survey_spec"]["spec"] if item["variable"].endswith("_categories")), None
    )
    if categories is not None:
        assert set(categories["choices"].splitlines()) == OFFERED[name]


@pytest.fixture
def snapshot(aws) -> str:
    seed_jobs.seed_guide_snapshot(aws.endpoint_url)
    return aws.endpoint_url


# What the test adds to a run: where reports go and, for the diagnosis, the control node standing in
# for the API servers (it has no service logs; the local inventory has no api_servers).
TEST_ONLY_VARS = {
    "cleanup": lambda tmp: {"cleanup_jobs_report_path": str(tmp / "cleanup.json")},
    "requeue": lambda tmp: {"cleanup_jobs_report_path": str(tmp / "cleanup.json")},
    "diagnose": lambda tmp: {
        "diagnose_jobs_report_dir": str(tmp),
        "diagnose_jobs_servers": "all",
        "diagnose_jobs_fail_on_unread_hosts": False,
        "diagnose_jobs_become": False,
    },
    # The local inventory has no API servers: the operator's answer for such a run (the survey's default is false).
    "preflight": lambda tmp: {"preflight_report_dir": str(tmp), "preflight_aws_only": "true"},
}


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_survey_defaults_run_as_awx_launches_them(name: str, snapshot: str, tmp_path: Path) -> None:
    template = json.loads(TEMPLATES[name].read_text())
    extra = {**awx_extra_vars(template), **TEST_ONLY_VARS[name](tmp_path)}
    job = template["job_template"]
    with fake_openai(GOOD_KEY) as api_base:
        if name == "preflight":
            extra |= {"preflight_openai_api_base": api_base, "preflight_openai_api_key": GOOD_KEY}
        run = run_playbook(
            Path(job["playbook"]).name,
            extra_vars=extra,
            check=job["job_type"] == "check",
            diff=job.get("diff_mode", False),
            env={"AWS_ENDPOINT_URL": snapshot},
        )
    assert run.returncode == 0, run.output[-4000:]
    assert run.changed() == 0 or job["job_type"] == "check"
    assert GOOD_KEY not in run.output
