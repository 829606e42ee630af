"""Every secret shape of the corpus (test_diagnosis_secrets.yml) is masked by redact(), and ordinary text is not."""

from __future__ import annotations

from pathlib import Path

import job_log_evidence as reader
import pytest
import yaml
from ansible.module_utils.panzoto.redact import MASK, redact

CORPUS = yaml.safe_load((Path(__file__).with_suffix(".yml")).read_text())


@pytest.mark.parametrize("entry", CORPUS, ids=[entry["name"] for entry in CORPUS])
def test_each_secret_shape_of_the_corpus_is_masked(entry: dict) -> None:
    text, count = redact(entry["text"])

    assert count >= 1 and MASK in text
    for secret in entry["secrets"]:
        assert secret not in text


@pytest.mark.parametrize(
    "text",
    [
        "[KEY ERROR] Encryption key not found in Secrets Manager for user 5f0c8a2e-1b3d-4c5e-8f7a-9b0c1d2e3f4a",
        "[KEY ERROR] Failed to fetch encryption key: An error occurred (AccessDeniedException)",
        "[DECRYPT ERROR] Decryption failed: MAC check failed",
        "deployed commit 9fceb02d0ae598e95dc970b74767f19372d61af8 at 14:03",
        "[INFO] Checked for jobs, found 3 eligible jobs",
    ],
)
def test_the_diagnosis_lines_themselves_survive(text: str) -> None:
    assert redact(text) == (text, 0)


def test_no_secret_of_the_corpus_survives_in_what_the_host_side_reader_returns() -> None:
    """The reader's own path (job_log_evidence's Collector): one record holding the whole corpus, cut short."""
    wanted = reader.parse_jobs(
        [{"job_id": "j1", "window_start": "2025-10-09T14:00:00Z", "window_end": "2025-10-09T14:10:00Z"}]
    )
    collector = reader.Collector(wanted, 10, 8, 60, reader.build_patterns())
    stream = reader.Stream(collector, "journal")
    moment = reader.epoch("2025-10-09T14:01:00Z", "t")
    stream.line("ERROR:root:[ERROR] Job j1 processing failed: MAC check failed", moment, "1")
    for entry in CORPUS:
        for text in entry["text"].splitlines():
            stream.line(text, moment, "1")
    stream.flush()

    (record,) = collector.result()["j1"]
    assert "lines omitted" in record["text"] and collector.redactions >= len(CORPUS)
    for entry in CORPUS:
        for secret in entry["secrets"]:
            assert secret not in record["text"], entry["name"]
