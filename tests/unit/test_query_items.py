"""Query per user on the user index (panzoto.scan.query_items), as the cleanup reads one user's jobs."""

from __future__ import annotations

import threading

import pytest
from ansible.module_utils.panzoto.scan import ScanStats, query_items


class FakeQueries:
    """Serves `pages` pages per user on Query, recording each request."""

    def __init__(self, pages: int, fail_for: str | None = None) -> None:
        self.pages, self.fail_for = pages, fail_for
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def query(self, **request) -> dict:
        with self.lock:
            self.requests.append(request)
        user = request["ExpressionAttributeValues"][":qv"]["S"]
        if user == self.fail_for:
            raise RuntimeError(f"boom for {user}")
        page = int(request.get("ExclusiveStartKey", {}).get("page", {"N": "0"})["N"])
        answer = {"Items": [{"job_id": {"S": f"{user}-{page}-{i}"}, "user_id": {"S": user}} for i in range(3)]}
        if page + 1 < self.pages:
            answer["LastEvaluatedKey"] = {"page": {"N": str(page + 1)}}
        return answer


def test_query_items_reads_every_page_of_each_distinct_user_once_on_the_index():
    client = FakeQueries(pages=2)
    stats = ScanStats()
    items = list(query_items(client, "jobs", "user-jobs-index", "user_id", ["a", "b", "a"], None, 2, None, stats))
    assert sorted(entry["job_id"] for entry in items) == sorted(
        f"{u}-{p}-{i}" for u in "ab" for p in (0, 1) for i in range(3)
    )
    assert len(client.requests) == 4 and stats.pages == 4 and stats.items == 12
    assert {r["IndexName"] for r in client.requests} == {"user-jobs-index"}
    assert {r["KeyConditionExpression"] for r in client.requests} == {"#qk = :qv"}
    assert all(r["ExpressionAttributeNames"]["#qk"] == "user_id" for r in client.requests)
    assert list(query_items(client, "jobs", "i", "user_id", [])) == []


def test_query_items_raises_the_first_error():
    with pytest.raises(RuntimeError, match="boom for b"):
        list(query_items(FakeQueries(pages=3, fail_for="b"), "jobs", "i", "user_id", ["a", "b", "c"], None, 3))
