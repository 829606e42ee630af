"""Redaction of secrets: the one place that decides what a secret looks like and how it is masked.

Two ways in, one mask:
- redact(): secrets by their shape. Evidence lines read from a server's logs travel to the control
  node and into reports, so every line goes through it on the host before it leaves it. The patterns
  are data; users add their own (plain regexes) for secrets of their own shapes.
- redact_values(): secrets the caller knows by value (the audit's webhook URL, its SMTP password),
  masked with every part of them an error message may quote (host, path, token, password).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

MASK = "[REDACTED]"


@dataclass(frozen=True)
class Pattern:
    name: str
    regex: re.Pattern
    # Group whose text is replaced; 0 is the whole match. Naming groups keep `password=` visible.
    group: int = 0


def _p(name: str, regex: str, group: int = 0, flags: int = 0) -> Pattern:
    return Pattern(name, re.compile(regex, flags), group)


# A secret's name, as in `password=`, `PGPASSWORD=`, `"api_key":`, `X-Api-Key:` or `--db-password`.
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*?(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|token|private[_-]?key|"
    r"encryption[_-]?key|authorization|credentials?)[A-Za-z0-9_-]*"
)
# Between a name and its value: quotes (also JSON-escaped `\"` and URL-encoded `%22`) around `=` or `:`
# (also `%3D`, `%3A`).
_QUOTE = r"(?:\\?[\"']|%22)?"
_SEPARATOR = _QUOTE + r"\s*(?:[:=]|%3[AaDd])\s*" + _QUOTE

# Ordered: the specific shapes first, so a Bearer token that is also an OpenAI key is masked once.
# redact() runs on a whole record before any line is cut, so a multi-line secret is seen whole.
DEFAULT_PATTERNS: tuple[Pattern, ...] = (
    # A PEM private key: to its END line, or to the end of the text when the END line is missing.
    _p("private_key_block", r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", flags=re.S),
    # A PEM body line whose BEGIN line was not in the text (64 characters of base64 alone on a line).
    _p("pem_body_line", r"(?m)^[ \t]*[A-Za-z0-9+/]{60,76}={0,2}[ \t]*$"),
    # The backend logs the start of each key it hands out: `[KEY] Returning encryption key: <20 chars>...`.
    _p("returned_encryption_key", r"(?i)Returning encryption key:\s*(\S+)", group=1),
    _p("slack_webhook", r"(?i)hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9/_-]+)", group=1),
    _p("discord_webhook", r"(?i)discord(?:app)?\.com/api/webhooks/\d+/([A-Za-z0-9_-]+)", group=1),
    _p("teams_webhook", r"(?i)\.webhook\.office\.com/webhookb2/(\S+)", group=1),
    _p("telegram_bot_token", r"(?i)api\.telegram\.org/bot(\d+:[A-Za-z0-9_-]+)", group=1),
    _p("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    _p("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    _p("cookie_header", r"(?i)\b(?:set-)?cookie[\"']?\s*[:=]\s*[\"']?([^\r\n\"']+)", group=1),
    _p("bearer_token", r"(?i)\b(?:Bearer|Basic|Token)\s+([A-Za-z0-9._~+/=-]{8,})", group=1),
    # scheme://user:password@host, the user possibly empty (`redis://:pw@host`); the password runs to the last
    # `@` before the host, so one holding an `@` is masked whole.
    _p("url_credentials", r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@]*:([^\s/]+)@", group=1),
    _p("openai_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{10,}"),
    _p("stripe_key", r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"),
    _p("stripe_webhook_secret", r"\bwhsec_[A-Za-z0-9]{10,}"),
    _p("aws_access_key_id", r"\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b"),
    _p("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    # A command-line option followed by its value: `--password hunter2`, `-p` is left alone (too common).
    _p("option_secret", r"(?i)(?<![\w-])--" + _SECRET_NAME + r"[ \t]+[\"']?([^\s\"']+)", group=1),
    # key=value and "key": "value" forms of anything named like a credential.
    _p(
        "named_secret",
        r"(?i)(?<![A-Za-z0-9])"
        + _SECRET_NAME
        + _SEPARATOR
        +
        # An `Authorization: Bearer <token>` keeps its scheme: the token is masked by bearer_token.
        r"(?!(?:Bearer|Basic|Token)\s)([^\s\"'\\,;&}]+)",
        group=1,
    ),
    # Raw key material: 32 bytes as base64 (44 characters ending in '=') or as hex (64 digits),
    # and AWS secret access keys: 40 characters of base64 alphabet with a / or +, or with lower case,
    # upper case and a digit (a 40-digit hex commit id has no upper case).
    _p("base64_32_byte_key", r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])"),
    _p("hex_32_byte_key", r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{64}(?![0-9A-Fa-f])"),
    _p("aws_secret_access_key", r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]*[/+])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])"),
    _p(
        "aws_secret_access_key_alnum",
        r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[0-9])"
        r"[A-Za-z0-9]{40}(?![A-Za-z0-9+/=])",
    ),
)


class PatternError(ValueError):
    """A user pattern that is not a valid regex; the message is one line."""


def build_patterns(extra: list | None = None) -> tuple[Pattern, ...]:
    """The default patterns followed by the user's (regex strings; the whole match is masked)."""
    patterns = list(DEFAULT_PATTERNS)
    for position, text in enumerate(extra or []):
        if not isinstance(text, str) or not text:
            raise PatternError(f"redact_patterns[{position}] must be a non-empty regex string.")
        try:
            patterns.append(Pattern(f"user_{position}", re.compile(text)))
        except re.error as exc:
            raise PatternError(f"redact_patterns[{position}]: invalid regex {text!r}: {exc}.") from None
    return tuple(patterns)


def redact(text: str, patterns: tuple[Pattern, ...] = DEFAULT_PATTERNS) -> tuple[str, int]:
    """`text` with every secret replaced by MASK, and how many were replaced."""
    count = 0

    def mask(pattern: Pattern):
        def replace(match: re.Match) -> str:
            nonlocal count
            if pattern.group == 0:
                count += 1
                return MASK
            start, end = match.span(pattern.group)
            if match.group(pattern.group) == MASK:
                return match.group(0)
            count += 1
            whole_start = match.start(0)
            return match.group(0)[: start - whole_start] + MASK + match.group(0)[end - whole_start :]

        return replace

    for pattern in patterns:
        text = pattern.regex.sub(mask(pattern), text)
    return text, count


# --- known values ------------------------------------------------------------

# Shorter pieces of a secret are not masked: they would mask ordinary words ("http", "com").
_SHORTEST_FRAGMENT = 4


def secret_fragments(secret: str) -> list[str]:
    """The secret and the pieces of it an error message may quote (host, path, token, password), longest first."""
    pieces = {secret, secret.strip()}
    try:
        parts = urlsplit(secret.strip())
        pieces |= {parts.netloc, parts.path, parts.query, parts.fragment, parts.password or ""}
        pieces |= {segment for segment in parts.path.split("/") if len(segment) >= _SHORTEST_FRAGMENT}
        pieces |= {segment for segment in parts.netloc.replace("@", ":").split(":")}
    except ValueError:
        pass
    pieces |= set(secret.replace("/", " ").replace(":", " ").split())
    pieces -= {"http", "https", "http:", "https:"}
    # Longest first, so a whole secret is replaced before its parts.
    return sorted((piece for piece in pieces if len(piece) >= _SHORTEST_FRAGMENT), key=len, reverse=True)


def redact_values(text: str, secrets: Iterable[str]) -> str:
    """`text` with every given secret, and every quotable part of it, replaced by MASK."""
    for secret in secrets:
        if not secret:
            continue
        for piece in secret_fragments(secret):
            text = text.replace(piece, MASK)
    return text
