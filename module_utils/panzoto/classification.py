"""Error categories of failed processing jobs: the one place they are defined.

Classification is data: an ordered list of rules, the first whose
pattern occurs in the job's error message wins, and `other` catches the rest.
Users add rules or override a default one by naming its category.

Two generations of messages: the ones the backend writes today (its code of 2025-10-29: it no
longer retries, so nearly every failure is one of these) and the ops guide's six, kept for the
old items that still carry them. Each rule says what to do (`solution`, for people), whether the
cleanup may delete such jobs (`deletable`) and which step comes next (`next_step`, one of
NEXT_STEPS: the playbook that spells it out is the caller's business, never a module_util's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CATCH_ALL = "other"
CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# What comes next for a category's jobs: preview their deletion, find their cause in the logs, repair
# ffmpeg on the hosts, requeue them once the cause is gone, or look at them by hand.
NEXT_STEPS = ("cleanup", "diagnose", "repair_ffmpeg", "requeue", "review")


@dataclass(frozen=True)
class Rule:
    category: str
    pattern: str  # matched case-insensitively as a substring, or as a regex when regex=True
    solution: str
    deletable: bool
    regex: bool = False
    next_step: str = "review"

    def matches(self, message: str) -> bool:
        if self.regex:
            return re.search(self.pattern, message, re.IGNORECASE) is not None
        return self.pattern.casefold() in message.casefold()


# In matching order: the first rule whose pattern occurs in the message wins, so the specific
# messages the code wraps in "Processing error: ..." come before the generic one, and the daily
# summary's "... timeout" before the guide's broad `timeout`.
DEFAULT_RULES: tuple[Rule, ...] = (
    # --- the ops guide's categories (2025-10-19): old items still carry these messages
    Rule(
        "legacy_encryption",
        "Automatic decryption not yet implemented",
        "Delete these jobs and their audio files from S3 (old client-side encryption; cannot be processed).",
        deletable=True,
        next_step="cleanup",
    ),
    Rule(
        "max_retries",
        "Exceeded maximum retries",
        "Check logs, fix the root cause, then retry the jobs.",
        deletable=False,
        next_step="diagnose",
    ),
    Rule(
        "transcription_failed",
        "Transcription failed or too short",
        "May need manual review: check the audio duration in panzoto-audio-files; "
        "delete if too short, retry if an API error.",
        deletable=False,
    ),
    Rule(
        "decryption_error",
        "MAC check failed",
        "Delete the jobs and their audio files; the user re-records.",
        deletable=True,
        next_step="cleanup",
    ),
    Rule(
        "format_error",
        "File does not start with RIFF id",
        "Repair ffmpeg on the host (playbooks/repair_ffmpeg.yml), then retry the jobs.",
        deletable=False,
        next_step="repair_ffmpeg",
    ),
    # --- what the backend's code writes today (2025-10-29)
    Rule(
        "ffmpeg_missing",
        "ffmpeg is not installed",
        "ffmpeg is missing on a processing host: repair it (playbooks/repair_ffmpeg.yml), then requeue the jobs.",
        deletable=False,
        next_step="repair_ffmpeg",
    ),
    Rule(
        "audio_conversion",
        r"Audio conversion (failed|timed out)",
        "ffmpeg could not convert the audio: check ffmpeg on the hosts and the recording; "
        "requeue once ffmpeg is proven, delete what stays unconvertible.",
        deletable=False,
        regex=True,
        next_step="diagnose",
    ),
    Rule(
        "transcription_api",
        r"Error code: 429|Request timed out|Connection error|RateLimitError|APIConnectionError|APITimeoutError",
        "The transcription API refused, timed out or could not be reached: requeue the jobs once it answers "
        "(and the processor's heartbeat is healthy).",
        deletable=False,
        regex=True,
        next_step="requeue",
    ),
    Rule(
        "decryption_failed",
        "Failed to decrypt audio file",
        "The key fetch, the S3 download or the decryption failed; only the logs say which: run the diagnosis.",
        deletable=False,
        next_step="diagnose",
    ),
    Rule(
        "audio_missing",
        r"Audio file not found|No audio file ID provided",
        "The job's audio (S3 object or audio-files row) is gone: nothing can be transcribed; delete the jobs.",
        deletable=True,
        regex=True,
        next_step="cleanup",
    ),
    Rule(
        "user_missing",
        "User not found in database",
        "The job's user no longer exists: delete the jobs (and their audio).",
        deletable=True,
        next_step="cleanup",
    ),
    Rule(
        "file_too_large",
        "File too large",
        "The audio is over TRANSCRIPTION_MAX_FILE_SIZE_MB: raise the limit and requeue, or delete the jobs.",
        deletable=False,
    ),
    Rule(
        "audio_duration",
        r"Audio duration .* outside valid range",
        "The recording is shorter or longer than the processor accepts: delete the jobs.",
        deletable=True,
        regex=True,
        next_step="cleanup",
    ),
    Rule(
        "expired",
        "Job expired - too old",
        "The processor fails pending jobs older than 24 h before trying them: requeue them as fresh jobs "
        "(a plain requeue keeps created_at and expires again) or delete them.",
        deletable=True,
        next_step="requeue",
    ),
    Rule(
        "daily_summary",
        r"User preferences not found|Failed to fetch preferences",
        "A daily summary could not be made; the day has passed, so delete the jobs once the cause is known.",
        deletable=True,
        regex=True,
        next_step="diagnose",
    ),
    Rule(
        "lookup_failed",
        r"Failed to fetch (user|audio file)",
        "Reading the user or the audio-files row failed (AWS error): requeue once AWS answers.",
        deletable=False,
        regex=True,
        next_step="requeue",
    ),
    # The guide's `timeout` also takes today's "Processing timeout (5 minutes)" and "Summary generation timeout".
    Rule(
        "timeout",
        "timeout",
        "Retry the jobs; raise the timeout if the audio is legitimately long.",
        deletable=False,
        next_step="requeue",
    ),
    Rule(
        "processing_error",
        r"^(Processing error|Job processing failed):",
        "An exception the processor did not expect (its text follows the prefix): run the diagnosis.",
        deletable=False,
        regex=True,
        next_step="diagnose",
    ),
)
CATCH_ALL_RULE = Rule(CATCH_ALL, "", "May need manual review.", deletable=False)


# The argument sub-spec of a module's `classification_rules` option (type list,
# elements dict): what a user rule may say. Ansible checks types and refuses
# unknown keys; build_rules() checks the rest (names, patterns, regexes). Documented
# once, in plugins/doc_fragments/panzoto_classification_rules.py.
CLASSIFICATION_RULE_OPTIONS = dict(
    category=dict(type="str", required=True),
    match=dict(type="str"),
    regex=dict(type="bool"),
    solution=dict(type="str"),
    deletable=dict(type="bool"),
    next_step=dict(type="str", choices=list(NEXT_STEPS)),
    remove=dict(type="bool"),
)


def rules_from_options(user_rules: list | None) -> list[dict]:
    """User rules as the sub-spec gives them, without the keys left out (None), so defaults are inherited."""
    return [
        {key: value for key, value in rule.items() if value is not None} if isinstance(rule, dict) else rule
        for rule in user_rules or []
    ]


class RuleError(ValueError):
    """A user-supplied rule that cannot be used; the message is one line."""


def _rule_from_user(spec: object, position: int) -> tuple[Rule | None, str]:
    """Turn one user rule (a dict) into a Rule, inheriting what it omits from the default of the same category."""
    if not isinstance(spec, dict):
        raise RuleError(f"classification_rules[{position}] must be a dict, got {type(spec).__name__}.")
    unknown = set(spec) - set(CLASSIFICATION_RULE_OPTIONS)
    if unknown:
        raise RuleError(f"classification_rules[{position}] has unknown keys: {', '.join(sorted(unknown))}.")
    category = spec.get("category")
    if not isinstance(category, str) or not CATEGORY_NAME.match(category):
        raise RuleError(f"classification_rules[{position}].category must be a lower_snake_case name, got {category!r}.")
    if spec.get("remove"):
        return None, category
    base = next((rule for rule in (*DEFAULT_RULES, CATCH_ALL_RULE) if rule.category == category), None)
    if category == CATCH_ALL:
        # The catch-all has no pattern; only its advice may change.
        if "match" in spec:
            raise RuleError(
                f"classification_rules[{position}]: '{CATCH_ALL}' matches everything else and takes no match."
            )
        return _with_advice(CATCH_ALL_RULE, spec, position), category
    pattern = spec.get("match", base.pattern if base else None)
    if not isinstance(pattern, str) or not pattern.strip():
        raise RuleError(f"classification_rules[{position}] ({category}) needs a non-empty match string.")
    regex = spec.get("regex", base.regex if base else False)
    if regex:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise RuleError(
                f"classification_rules[{position}] ({category}): invalid regex {pattern!r}: {exc}."
            ) from exc
    template = base or Rule(category, pattern, "May need manual review.", deletable=False)
    rule = Rule(category, pattern, template.solution, template.deletable, bool(regex), template.next_step)
    return _with_advice(rule, spec, position), category


def _with_advice(rule: Rule, spec: dict, position: int) -> Rule:
    solution = spec.get("solution", rule.solution)
    deletable = spec.get("deletable", rule.deletable)
    next_step = spec.get("next_step", rule.next_step)
    if not isinstance(solution, str):
        raise RuleError(f"classification_rules[{position}].solution must be a string.")
    if not isinstance(deletable, bool):
        raise RuleError(f"classification_rules[{position}].deletable must be true or false.")
    if next_step not in NEXT_STEPS:
        raise RuleError(f"classification_rules[{position}].next_step must be one of {', '.join(NEXT_STEPS)}.")
    return Rule(rule.category, rule.pattern, solution, deletable, rule.regex, next_step)


def build_rules(user_rules: list | None = None) -> tuple[Rule, ...]:
    """The effective ordered rules: defaults, with user rules applied.

    A user rule naming a default category replaces it in place; `remove: true`
    drops it; a new category is matched before the defaults, so specific user
    patterns win over broad ones such as `timeout`. The catch-all stays last.
    """
    rules = list(DEFAULT_RULES)
    catch_all = CATCH_ALL_RULE
    added: list[Rule] = []
    for position, spec in enumerate(user_rules or []):
        rule, category = _rule_from_user(spec, position)
        existing = [index for index, current in enumerate(rules) if current.category == category]
        if category == CATCH_ALL:
            if rule is None:
                raise RuleError(f"classification_rules[{position}]: the '{CATCH_ALL}' category cannot be removed.")
            catch_all = rule
        elif rule is None:
            if not existing:
                raise RuleError(f"classification_rules[{position}]: cannot remove unknown category {category!r}.")
            rules.pop(existing[0])
        elif existing:
            rules[existing[0]] = rule
        else:
            added = [current for current in added if current.category != category] + [rule]
    return (*added, *rules, catch_all)


class _Matcher:
    """One rule list compiled for matching: patterns folded (or compiled) once, and a bounded memo.

    Most failed jobs carry one of a few dozen messages, so the memo answers nearly every job with
    one dict lookup; a message seen for the first time is matched against the rules in order.
    """

    MEMO = 8192

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules  # held, so the id this matcher is cached under is never reused
        self.tests = tuple(
            (rule.category, re.compile(rule.pattern, re.IGNORECASE).search if rule.regex else rule.pattern.casefold())
            for rule in rules
            if rule.category != CATCH_ALL
        )
        self.memo: dict[str, str] = {}

    def category(self, message: str) -> str:
        found = self.memo.get(message)
        if found is not None:
            return found
        folded = message.casefold()
        found = CATCH_ALL
        for category, test in self.tests:
            if (test in folded) if test.__class__ is str else (test(message) is not None):
                found = category
                break
        if len(self.memo) < self.MEMO:
            self.memo[message] = found
        return found


_matchers: dict[int, _Matcher] = {}


def _matcher(rules: tuple[Rule, ...]) -> _Matcher:
    matcher = _matchers.get(id(rules))
    if matcher is None or matcher.rules is not rules:
        if len(_matchers) >= 64:  # option-built rule lists, a handful per run
            _matchers.clear()
        matcher = _matchers[id(rules)] = _Matcher(rules)
    return matcher


def categorizer(rules: tuple[Rule, ...]) -> tuple[dict[str, str], object]:
    """(memo, category): the rule list's memo of message -> category and its matching function, for hot loops.

    `memo.get(message) or category(message)` is classify() for a str message: the memo is read
    first, without a call, and only ever holds what `category` returned.
    """
    matcher = _matcher(rules)
    return matcher.memo, matcher.category


def classify(message: object, rules: tuple[Rule, ...] = (*DEFAULT_RULES, CATCH_ALL_RULE)) -> str | None:
    """The category of an error message, or None when it is not text at all.

    A missing or empty message is `other`: the job failed without saying why.
    """
    if message is None:
        return CATCH_ALL
    if not isinstance(message, str):
        return None
    return _matcher(rules).category(message)


def rules_by_category(rules: tuple[Rule, ...]) -> dict[str, Rule]:
    return {rule.category: rule for rule in rules}
