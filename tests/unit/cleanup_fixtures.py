"""Shared helpers for the cleanup's unit tests: job items and fake AWS clients."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ansible.module_utils.panzoto.classification import build_rules
from botocore.exceptions import ClientError

NOW = datetime(2025, 10, 19, 18, 0, 0, tzinfo=UTC)
RULES = build_rules()
LEGACY = "Automatic decryption not yet implemented - requires manual trigger"


def item(job_id: str, status: str | None, age: timedelta, **attributes) -> dict:
    value = {"job_id": job_id, "user_id": "u1", "job_type": "transcription", "audio_file_id": f"a-{job_id}"}
    if status is not None:
        value["status"] = status
    value["created_at"] = (NOW - age).isoformat()
    value.update(attributes)
    return value


def client_error(code: str, operation: str = "Op", **extra) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} message"}, **extra}, operation)


class FakeDynamoDB:
    """Records write requests; answers with a conditional-check failure carrying `current` when given."""

    def __init__(self, current: dict | None = None, fail: bool = False) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.current, self.fail = current, fail

    def _answer(self, operation: str, request: dict) -> dict:
        self.requests.append((operation, request))
        if self.fail:
            extra = {"Item": self.current} if self.current is not None else {}
            raise client_error("ConditionalCheckFailedException", operation, **extra)
        return {}

    def delete_item(self, **request) -> dict:
        return self._answer("DeleteItem", request)

    def update_item(self, **request) -> dict:
        return self._answer("UpdateItem", request)

    def put_item(self, **request) -> dict:
        return self._answer("PutItem", request)


# The default rules that allow deletion: the guide's two, and what today's code writes for jobs that cannot be done.
DELETABLE_BY_DEFAULT = {
    "legacy_encryption",
    "decryption_error",
    "audio_missing",
    "user_missing",
    "audio_duration",
    "expired",
    "daily_summary",
}
