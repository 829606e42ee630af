"""Every module passes ansible-core's validate-modules (tests/harness/check_module_docs.py), offline.

The checker builds a throwaway collection copy of library/, module_utils/ and plugins/doc_fragments/
and runs validate-modules from ansible-core's own ansible_test on it. First it is shown to tell a
clean module from a broken one (planted in tmp), then it is run on the project's modules.
"""

from __future__ import annotations

from pathlib import Path

import check_module_docs
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(path.stem for path in (REPO_ROOT / "library").glob("*.py"))

HEADER = """#!/usr/bin/python
# Copyright: (c) 2026, panzoto-ops maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations
"""
TIDY = (
    HEADER
    + '''
DOCUMENTATION = r"""
---
module: tidy_example
short_description: A module whose documentation is right
description:
  - Says hello; M(garbled_example) is its neighbour (a short name, as the project uses them).
version_added: "1.0.0"
author: Panzoto Ops (@panzoto)
options:
  name:
    description: Who to greet.
    type: str
    required: true
attributes:
  check_mode:
    description: Can run in check mode.
    support: full
"""

EXAMPLES = r"""
- name: Greet
  tidy_example:
    name: world
"""

RETURN = r"""
greeting:
  description: The greeting.
  returned: always
  type: dict
  contains:
    text: {description: "What was said, in full: quoted, so commas and colons are safe.", type: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.planted_helpers import greet


def main() -> None:
    module = AnsibleModule(argument_spec=dict(name=dict(type="str", required=True)), supports_check_mode=True)
    module.exit_json(changed=False, greeting={"text": greet(module.params["name"])})


if __name__ == "__main__":
    main()
'''
)
# The same module with three classic mistakes: an unquoted comma in a flow mapping (the
# description is cut and "sorted." becomes a field), an argument the docs do not know, and an
# author validate-modules cannot parse.
GARBLED = (
    TIDY.replace("tidy_example", "garbled_example")
    .replace("M(garbled_example)", "M(tidy_example)")
    .replace("author: Panzoto Ops (@panzoto)", "author: panzoto-ops maintainers")
    .replace(
        'text: {description: "What was said, in full: quoted, so commas and colons are safe.", type: str}',
        "text: {description: What was said, sorted., type: str}",
    )
    .replace('name=dict(type="str", required=True)', 'name=dict(type="str", required=True), loud=dict(type="bool")')
)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("planted")
    library, module_utils, fragments = root / "library", root / "module_utils", root / "doc_fragments"
    for directory in (library, module_utils, fragments):
        directory.mkdir()
    (library / "tidy_example.py").write_text(TIDY)
    (library / "garbled_example.py").write_text(GARBLED)
    # Documentation that is not YAML at all: reported for this module, the others still checked.
    unparsable = TIDY.replace("tidy_example", "unparsable_example").replace(
        "short_description: A", "short_description: [A"
    )
    (library / "unparsable_example.py").write_text(unparsable)
    (module_utils / "planted_helpers.py").write_text('def greet(name):\n    return "hello " + name\n')
    return library, module_utils, fragments


def codes(errors: list[dict[str, str]]) -> set[str]:
    return {error["code"] for error in errors}


def test_validate_modules_passes_a_clean_module_and_names_each_mistake_of_a_broken_one(planted) -> None:
    found = check_module_docs.validate_modules(*planted)
    assert found["tidy_example"] == [], found["tidy_example"]
    assert codes(found["garbled_example"]) == {
        "invalid-documentation",  # the author
        "return-syntax-error",  # the split description
        "undocumented-parameter",  # loud
        "parameter-type-not-in-doc",  # loud, again
    }
    messages = " ".join(error["msg"] for error in found["garbled_example"])
    assert "sorted." in messages and "loud" in messages and "author" in messages
    assert found["unparsable_example"], "an unparsable DOCUMENTATION passed"


def test_ansible_doc_check_passes_a_clean_module_and_finds_the_split_description(planted) -> None:
    found = check_module_docs.rendering_problems(*planted)
    assert found["tidy_example"] == []
    (problem,) = found["garbled_example"]
    assert problem["code"] == "garbled-documentation"
    assert problem["msg"].startswith("RETURN.greeting.text: unknown field 'sorted.'")
    (problem,) = found["unparsable_example"]
    assert problem["code"] == "not-rendered" and "could not parse documentation" in problem["msg"]


@pytest.fixture(scope="module")
def project_errors() -> dict[str, list[dict[str, str]]]:
    return check_module_docs.validate_modules()


@pytest.mark.parametrize("module", MODULES)
def test_module_passes_validate_modules(project_errors, module: str) -> None:
    errors = project_errors[module]
    assert errors == [], "\n".join(f"{error['code']}: {error['msg']}" for error in errors)
