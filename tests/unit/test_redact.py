"""Redaction: no secret, key or token survives in evidence lines; ordinary log text does."""

from __future__ import annotations

import base64

import pytest
from ansible.module_utils.panzoto.redact import MASK, PatternError, build_patterns, redact, redact_values

KEY_B64 = base64.b64encode(bytes(range(32))).decode()
OPENAI = "sk-proj-AbCdEf0123456789XyZ_abcdEFGH"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRETS = {
    "openai": (
        "openai.AuthenticationError: Incorrect API key provided: sk-proj-AbCdEf0123456789XyZ_abcdEFGH",
        "sk-proj-AbCdEf0123456789XyZ_abcdEFGH",
    ),
    "bearer": (
        "headers={'Authorization': 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl'}",
        "eyJhbGciOiJIUzI1NiJ9",
    ),
    "aws_access_key": ("Credentials: AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE"),
    "aws_secret": (
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    "bare_aws_secret": (
        "secret is wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY.",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    "base64_key": (f"decrypt(key={KEY_B64!r})", KEY_B64),
    "bare_base64_key": (f"using key {KEY_B64} for user", KEY_B64),
    "hex_key": ("key " + "ab" * 32 + " loaded", "ab" * 32),
    "password": ("connect(host='db', password=hunter2secret, port=5432)", "hunter2secret"),
    "json_token": ('{"access_token": "tok_9f8e7d6c5b4a", "user": "u1"}', "tok_9f8e7d6c5b4a"),
    "stripe": ("stripe key sk_live_51HxYzAbCdEfGhIjKl", "sk_live_51HxYzAbCdEfGhIjKl"),
    "stripe_webhook": ("whsec_AbCdEf0123456789 rejected", "whsec_AbCdEf0123456789"),
    "url": ("GET https://admin:s3cr3tpass@internal.example.invalid/x", "s3cr3tpass"),
    "private_key": ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "MIIEow"),
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_secrets_are_replaced(kind: str) -> None:
    text, secret = SECRETS[kind]

    redacted, count = redact(text)

    assert secret not in redacted
    assert MASK in redacted
    assert count >= 1


def test_the_name_of_a_named_secret_stays_readable() -> None:
    redacted, _ = redact("login failed: password=hunter2secret")

    assert redacted == f"login failed: password={MASK}"


@pytest.mark.parametrize(
    "line",
    [
        "2025-10-09 14:03:27 | ERROR | audio_processor.py:process_job:254 - [ERROR] Job "
        "5f0c8a2e-1b3d-4c5e-8f7a-9b0c1d2e3f4a processing failed (attempt 3/3): MAC check failed",
        "[ERROR] Failed to fetch audio file 9a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d: NoSuchKey",
        '  File "/opt/panzoto/venv/lib/python3.11/site-packages/openai/_base_client.py", line 1045, in _request',
        "[WARN] File too large: 31.2MB > 25MB",
        "s3 key audio_upload/5f0c8a2e-1b3d-4c5e-8f7a-9b0c1d2e3f4a/9a1b2c3d.3gp_encrypted",
    ],
)
def test_ordinary_log_text_is_left_alone(line: str) -> None:
    assert redact(line) == (line, 0)


def test_user_patterns_are_added_and_bad_ones_fail_in_one_line() -> None:
    patterns = build_patterns([r"acct-\d{6}"])

    assert redact("charged acct-123456 ok", patterns) == (f"charged {MASK} ok", 1)
    with pytest.raises(PatternError, match=r"redact_patterns\[0\]: invalid regex"):
        build_patterns(["("])


def test_an_authorization_header_keeps_its_scheme() -> None:
    redacted, count = redact(f"headers={{'Authorization': 'Bearer {OPENAI}'}}")

    assert (redacted, count) == (f"headers={{'Authorization': 'Bearer {MASK}'}}", 1)


def test_known_values_are_masked_whole_and_in_the_parts_an_error_quotes() -> None:
    """The audit's secrets (a webhook URL, an SMTP password) are known by value, not by shape."""
    url = "https://user:pl4nted-pw@hooks.example.invalid:8443/services/T0/planted-token?sig=planted-sig"
    message = (
        f"POST {url} failed; host hooks.example.invalid:8443 said 403 for /services/T0/planted-token"
        " (user pl4nted-pw); SMTP password hunter2-planted rejected"
    )
    redacted = redact_values(message, [url, "hunter2-planted", ""])

    for piece in ("pl4nted-pw", "hooks.example.invalid", "planted-token", "planted-sig", "hunter2-planted"):
        assert piece not in redacted
    assert redacted.startswith(f"POST {MASK} failed") and "said 403 for" in redacted
    # Pieces shorter than four characters (T0, the scheme) are not masked: they are ordinary words too.
    assert redact_values("segment T0 over https", [url]) == "segment T0 over https"
    assert redact_values("nothing secret here", []) == "nothing secret here"
