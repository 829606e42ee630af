"""Streaming scans: every item once, bounded buffering, errors surfaced."""

from __future__ import annotations

import threading

import pytest
from ansible.module_utils.panzoto.scan import ScanStats, projection, scan_items


class FakeDynamoDB:
    """Serves `pages` pages of `per_page` items per segment, recording what was asked."""

    def __init__(self, pages: int, per_page: int, fail_on_page: int | None = None) -> None:
        self.pages, self.per_page, self.fail_on_page = pages, per_page, fail_on_page
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def scan(self, **kwargs) -> dict:
        with self.lock:
            self.requests.append(kwargs)
        segment = kwargs.get("Segment", 0)
        page = kwargs.get("ExclusiveStartKey", {}).get("page", {"N": "0"})["N"]
        page = int(page)
        if self.fail_on_page is not None and page == self.fail_on_page:
            raise RuntimeError("boom")
        items = [{"job_id": {"S": f"s{segment}-p{page}-i{i}"}} for i in range(self.per_page)]
        answer = {"Items": items}
        if page + 1 < self.pages:
            answer["LastEvaluatedKey"] = {"page": {"N": str(page + 1)}}
        return answer


@pytest.mark.parametrize("segments", [1, 3])
def test_every_item_is_yielded_once(segments: int) -> None:
    client = FakeDynamoDB(pages=5, per_page=4)
    stats = ScanStats()
    ids = [item["job_id"] for item in scan_items(client, "t", ["job_id", "status"], segments, stats=stats)]
    assert len(ids) == len(set(ids)) == 5 * 4 * segments
    assert stats.pages == 5 * segments
    assert all(request["ProjectionExpression"] == "#a0, #a1" for request in client.requests)
    if segments > 1:
        assert {request["Segment"] for request in client.requests} == set(range(segments))
        assert all(request["TotalSegments"] == segments for request in client.requests)


def test_pages_are_read_only_as_fast_as_they_are_consumed() -> None:
    client = FakeDynamoDB(pages=1000, per_page=1)
    items = scan_items(client, "t", segments=1)
    next(items)
    # Only a bounded number of pages run ahead of the consumer, however big the table.
    threading.Event().wait(0.3)
    assert len(client.requests) <= 5
    items.close()


def test_a_segment_error_is_raised_to_the_consumer() -> None:
    client = FakeDynamoDB(pages=10, per_page=2, fail_on_page=3)
    with pytest.raises(RuntimeError, match="boom"):
        list(scan_items(client, "t", segments=2))


def test_projection_uses_placeholders_for_reserved_words() -> None:
    assert projection(["status", "job_id"]) == {
        "ProjectionExpression": "#a0, #a1",
        "ExpressionAttributeNames": {"#a0": "status", "#a1": "job_id"},
    }


def test_the_heap_frozen_during_a_scan_is_thawed_however_the_scan_ends() -> None:
    import gc

    assert gc.get_freeze_count() == 0
    items = scan_items(FakeDynamoDB(pages=3, per_page=2), "t", segments=2)
    next(items)
    assert gc.get_freeze_count() > 0  # objects from before the scan are out of the collector's passes
    items.close()  # stopped early
    assert gc.get_freeze_count() == 0
    assert len(list(scan_items(FakeDynamoDB(pages=3, per_page=2), "t", segments=2))) == 12
    with pytest.raises(RuntimeError, match="boom"):
        list(scan_items(FakeDynamoDB(pages=10, per_page=2, fail_on_page=3), "t", segments=2))
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("segments", [1, 4])
def test_no_more_than_workers_plus_one_pages_are_held_at_once(segments: int) -> None:
    """A page is held from its request until the consumer has yielded its last item."""
    client = FakeDynamoDB(pages=30, per_page=3)
    yielded: dict[str, int] = {}
    most_held = 0
    for item in scan_items(client, "t", segments=segments):
        page = item["job_id"].rsplit("-i", 1)[0]
        yielded[page] = yielded.get(page, 0) + 1
        threading.Event().wait(0.001)  # a slow consumer: the readers run ahead as far as they may
        with client.lock:
            requested = len(client.requests)
        finished = sum(1 for count in yielded.values() if count == 3)
        # Pages asked for and not yet wholly consumed (the one being consumed included).
        most_held = max(most_held, requested - finished)
    assert len(yielded) == 30 * segments
    assert most_held == segments + 1
