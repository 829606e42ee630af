"""Underlying causes of failed jobs, read from the processor's log lines: the one place they are defined.

Like the error categories (panzoto.classification), causes are data: an ordered list of
rules, the first whose pattern occurs in a log record (its message and traceback) wins. Each
cause says what to do (`action`, for people) and which kind of remedy it is (`remedy`, for
tools: `requeue` after a fix, `delete`, `repair_host`, `raise_limit`, `redeploy`, `review`). Users add
rules or override a default one by naming its cause.

A job whose records match no rule is `unclassified` (its lines are shown); a job with no
record at all is `no_evidence`: nothing is ever guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NO_EVIDENCE = "no_evidence"
UNCLASSIFIED = "unclassified"
CAUSE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
REMEDIES = ("requeue", "delete", "repair_host", "raise_limit", "redeploy", "review")


@dataclass(frozen=True)
class CauseRule:
    cause: str
    pattern: str  # a case-insensitive substring, or a regex when regex=True
    action: str
    remedy: str
    regex: bool = False

    def matches(self, text: str) -> bool:
        if self.regex:
            return re.search(self.pattern, text, re.IGNORECASE) is not None
        return self.pattern.casefold() in text.casefold()


# Matching order matters, one record at a time: a broken install first (its text wraps any call), then
# the key, the S3 download and the decryption (the four causes the item's `Failed to decrypt audio file`
# hides), missing audio, the size limit, ffmpeg, the processor's own timeouts, the transcription API's
# answers, and last the audio-files lookup. The patterns see the message and the traceback, never the
# format's prefix (`file:function:line`, `LEVEL:logger:`), so line numbers cannot look like 5xx. The
# processor's `[OK] Job <id> completed successfully` matches nothing: it writes that line for jobs it
# failed, so it is never evidence of anything.
DEFAULT_CAUSE_RULES: tuple[CauseRule, ...] = (
    CauseRule(
        "dependency_mismatch",
        r"unexpected keyword argument 'proxies'",
        "The app's venv was not installed from its lock (httpx 0.28 or later under openai 1.55): every "
        "transcription fails. Redeploy the app from poetry.lock (playbooks/deploy.yml), then requeue the jobs.",
        "redeploy",
        regex=True,
    ),
    CauseRule(
        "encryption_key_missing",
        r"Encryption key not found|Failed to fetch encryption key:.*(ResourceNotFoundException|"
        r"can't find the specified secret)",
        "The user's key is not in Secrets Manager (panzoto/encryption-keys/<user_id>): restore it if it was deleted "
        "within the recovery window (aws secretsmanager restore-secret) and requeue; without the key the audio "
        "can never be decrypted: delete the job and its audio.",
        "review",
        regex=True,
    ),
    CauseRule(
        "encryption_key_fetch_failed",
        r"Failed to fetch encryption key",
        "Reading the user's key from Secrets Manager failed (permissions, credentials or network of this host): "
        "fix the host's access to panzoto/encryption-keys/*, then requeue the job.",
        "requeue",
        regex=True,
    ),
    CauseRule(
        "decryption_iv_length",
        r"IV length|invalid IV|incorrect IV|nonce (length|must be)|invalid nonce",
        "The audio was encrypted with an IV of the wrong length: delete the job and its audio "
        "(playbooks/cleanup_jobs.yml with delete_audio); the client must send a 16-byte IV and the user re-records.",
        "delete",
        regex=True,
    ),
    CauseRule(
        "decryption_failed",
        r"MAC check failed|InvalidTag|wrong (encryption )?key|decryption failed",
        "AES-GCM tag check failed (wrong key or corrupted file): delete the job and its audio "
        "(playbooks/cleanup_jobs.yml with delete_audio); the user re-records.",
        "delete",
        regex=True,
    ),
    CauseRule(
        "audio_missing",
        r"NoSuchKey|Audio file not found|specified key does not exist|NoSuchBucket|"
        r"\(404\) when calling the (Get|Head)Object",
        "The job's audio is gone (S3 object or panzoto-audio-files item): delete the job; the user re-uploads.",
        "delete",
        regex=True,
    ),
    CauseRule(
        "audio_download_failed",
        r"Failed to download from S3",
        "Downloading the encrypted audio from S3 failed on this host (permissions, credentials or network): "
        "fix the host's S3 access, then requeue the job.",
        "requeue",
        regex=True,
    ),
    CauseRule(
        "file_too_large",
        r"File too large|Maximum content size|file size .{0,30}exceeds|Request Entity Too Large|\b413\b",
        "The audio is over TRANSCRIPTION_MAX_FILE_SIZE_MB (5 MB by default; the API takes 25 MB): raise the "
        "limit or compress/split large audio, then requeue the job (or delete it).",
        "raise_limit",
        regex=True,
    ),
    CauseRule(
        "ffmpeg_missing",
        r"ffmpeg is not installed|No such file or directory: '?ffmpeg",
        "ffmpeg is missing on this host: repair it (playbooks/repair_ffmpeg.yml -l HOST), then requeue the job.",
        "repair_host",
        regex=True,
    ),
    CauseRule(
        "audio_conversion_timeout",
        r"Audio conversion timed out",
        "ffmpeg ran past its 30 seconds on this host (overloaded or hung): check the host's load and prove "
        "ffmpeg (playbooks/repair_ffmpeg.yml -l HOST), then requeue the job.",
        "repair_host",
        regex=True,
    ),
    CauseRule(
        "processing_timeout",
        r"timed out after \d+ minutes|Processing timeout|Summary generation timeout",
        "The job ran past the processor's 5-minute limit: requeue it; if the audio is legitimately long, "
        "raise the processing timeout first.",
        "requeue",
        regex=True,
    ),
    CauseRule(
        "transcription_rate_limited",
        r"RateLimitError|rate.?limit|Too Many Requests|Error code: 429|status(_code)?\W{1,3}429\b|insufficient_quota",
        "The transcription API rate-limited the processor (HTTP 429): requeue the job later "
        "(playbooks/cleanup_jobs.yml state=requeued); raise the OpenAI rate limit or quota if it keeps happening.",
        "requeue",
        regex=True,
    ),
    CauseRule(
        "transcription_server_error",
        r"InternalServerError|Error code: 5\d\d|status(_code)?\W{1,3}5\d\d\b|HTTP 5\d\d|Service Unavailable|"
        r"Bad Gateway|Gateway Time-?out|server_error",
        "The transcription API answered with a 5xx error: requeue the job once the API is healthy.",
        "requeue",
        regex=True,
    ),
    CauseRule(
        "transcription_unreachable",
        r"APIConnectionError|Connection error\.|ConnectError|Name or service not known|Connection refused",
        "This host could not reach the transcription API (DNS, egress proxy, firewall): fix its network path to "
        "api.openai.com, then requeue the job.",
        "requeue",
        regex=True,
    ),
    CauseRule(
        "transcription_timeout",
        r"APITimeoutError|Request timed out|ReadTimeout|ConnectTimeout|timed out",
        "The call to the transcription API timed out: requeue the job; check the server's network "
        "and the API status if many jobs show it.",
        "requeue",
        regex=True,
    ),
    CauseRule(
        "audio_format",
        r"Audio conversion failed|RIFF|ffmpeg|Invalid data found when processing input|moov atom not found|"
        r"unsupported audio format|could not find codec",
        "ffmpeg on this host could not convert the audio: repair it (playbooks/repair_ffmpeg.yml -l HOST), "
        "then requeue the job; audio that stays unconvertible is deleted.",
        "repair_host",
        regex=True,
    ),
    CauseRule(
        "preferences_missing",
        r"User preferences not found|Failed to fetch preferences",
        "The daily summary had no readable preferences for the user (missing row or a failed read of "
        "panzoto-user-preferences); its day has passed: fix the row or the access, then delete the job.",
        "delete",
        regex=True,
    ),
    CauseRule(
        "audio_fetch_failed",
        "Failed to fetch audio file",
        "Reading the job's audio-files row failed on this host (DynamoDB access or credentials): fix it, "
        "then requeue the job.",
        "requeue",
    ),
)
UNCLASSIFIED_RULE = CauseRule(
    UNCLASSIFIED, "", "The log lines match no known cause: read the evidence, fix it, then requeue or delete.", "review"
)
NO_EVIDENCE_RULE = CauseRule(
    NO_EVIDENCE,
    "",
    "No log line names this job in its time window on any server read (rotated away, or another host): "
    "decide from its error category; keep logs longer to diagnose such jobs.",
    "review",
)


class CauseRuleError(ValueError):
    """A user-supplied cause rule that cannot be used; the message is one line."""


def _rule_from_user(spec: object, position: int) -> tuple[CauseRule | None, str]:
    where = f"cause_rules[{position}]"
    if not isinstance(spec, dict):
        raise CauseRuleError(f"{where} must be a dict, got {type(spec).__name__}.")
    unknown = set(spec) - {"cause", "match", "regex", "action", "remedy", "remove"}
    if unknown:
        raise CauseRuleError(f"{where} has unknown keys: {', '.join(sorted(unknown))}.")
    cause = spec.get("cause")
    if not isinstance(cause, str) or not CAUSE_NAME.match(cause):
        raise CauseRuleError(f"{where}.cause must be a lower_snake_case name, got {cause!r}.")
    if cause in (NO_EVIDENCE, UNCLASSIFIED):
        if "match" in spec or spec.get("remove"):
            raise CauseRuleError(f"{where}: '{cause}' is decided by the evidence itself; only its action may change.")
    elif spec.get("remove"):
        return None, cause
    defaults = (*DEFAULT_CAUSE_RULES, UNCLASSIFIED_RULE, NO_EVIDENCE_RULE)
    base = next((rule for rule in defaults if rule.cause == cause), None)
    pattern = spec.get("match", base.pattern if base else None)
    if cause not in (NO_EVIDENCE, UNCLASSIFIED) and (not isinstance(pattern, str) or not pattern.strip()):
        raise CauseRuleError(f"{where} ({cause}) needs a non-empty match string.")
    regex = spec.get("regex", base.regex if base else False)
    if not isinstance(regex, bool):
        raise CauseRuleError(f"{where}.regex must be true or false.")
    if regex:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise CauseRuleError(f"{where} ({cause}): invalid regex {pattern!r}: {exc}.") from None
    action = spec.get("action", base.action if base else UNCLASSIFIED_RULE.action)
    remedy = spec.get("remedy", base.remedy if base else "review")
    if not isinstance(action, str) or not action.strip():
        raise CauseRuleError(f"{where}.action must be a non-empty string.")
    if remedy not in REMEDIES:
        raise CauseRuleError(f"{where}.remedy must be one of {', '.join(REMEDIES)}, got {remedy!r}.")
    return CauseRule(cause, pattern or "", action, remedy, regex), cause


@dataclass(frozen=True)
class CauseRules:
    """The effective rules: the ordered matching rules and the two evidence-decided causes."""

    rules: tuple[CauseRule, ...]
    unclassified: CauseRule = UNCLASSIFIED_RULE
    no_evidence: CauseRule = NO_EVIDENCE_RULE

    def by_cause(self) -> dict[str, CauseRule]:
        return {rule.cause: rule for rule in (*self.rules, self.unclassified, self.no_evidence)}

    def match(self, text: str) -> CauseRule | None:
        return next((rule for rule in self.rules if rule.matches(text)), None)


def build_cause_rules(user_rules: list | None = None) -> CauseRules:
    """Defaults with the user's rules applied.

    A rule naming a default cause replaces it in place; `remove: true` drops it; a new cause is
    matched before the defaults, so a specific pattern of the user's wins over a broad default.
    `no_evidence` and `unclassified` take only a new action.
    """
    rules = list(DEFAULT_CAUSE_RULES)
    special = {UNCLASSIFIED: UNCLASSIFIED_RULE, NO_EVIDENCE: NO_EVIDENCE_RULE}
    added: list[CauseRule] = []
    for position, spec in enumerate(user_rules or []):
        rule, cause = _rule_from_user(spec, position)
        existing = [index for index, current in enumerate(rules) if current.cause == cause]
        if cause in special:
            special[cause] = rule
        elif rule is None:
            if not existing:
                raise CauseRuleError(f"cause_rules[{position}]: cannot remove unknown cause {cause!r}.")
            rules.pop(existing[0])
        elif existing:
            rules[existing[0]] = rule
        else:
            added = [current for current in added if current.cause != cause] + [rule]
    return CauseRules((*added, *rules), special[UNCLASSIFIED], special[NO_EVIDENCE])
