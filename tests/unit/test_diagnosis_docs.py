"""docs/diagnosis.md names exactly the causes the diagnosis emits, in its matching order."""

from __future__ import annotations

import re
from pathlib import Path

from ansible.module_utils.panzoto.diagnosis.log_causes import DEFAULT_CAUSE_RULES, NO_EVIDENCE, UNCLASSIFIED

DOC = Path(__file__).resolve().parents[2] / "docs" / "diagnosis.md"


def test_the_cause_table_lists_every_emitted_cause_and_no_other() -> None:
    documented = re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), re.MULTILINE)

    assert documented == [rule.cause for rule in DEFAULT_CAUSE_RULES] + [UNCLASSIFIED, NO_EVIDENCE]


def test_each_documented_cause_names_its_own_remedy() -> None:
    rows = dict(re.findall(r"^\| `([a-z_]+)` \|.*\((\w+)\) \|$", DOC.read_text(), re.MULTILINE))

    assert rows == {rule.cause: rule.remedy for rule in DEFAULT_CAUSE_RULES} | {
        UNCLASSIFIED: "review",
        NO_EVIDENCE: "review",
    }
