"""Streaming parallel scans of a DynamoDB table.

Pages are read by one thread per segment and handed over to the consumer; a
thread asks for a page only when fewer than workers + 1 pages are held (read,
waiting or being consumed), so memory holds that many pages whatever the
table's size. Every HTTP attempt (retries included) is counted, for reports
and benchmarks.

On a botocore client, pages are decoded by panzoto.dynamodb_json's typed reader
(installed on the client passed in) instead of botocore's generic shape walk and
TypeDeserializer: the same items for a fraction of the CPU. Anything that reader
does not take is read the usual way, so results, retries and errors are unchanged.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible.module_utils.panzoto.dynamodb_json import DECODED_ITEMS, install, reading

try:
    from boto3.dynamodb.types import TypeDeserializer
except ImportError:  # the modules report a missing boto3 themselves
    TypeDeserializer = None

_DONE = object()
_frozen = {"scans": 0}
_frozen_lock = threading.Lock()


def _freeze_heap() -> None:
    """Leave what exists before the scan out of the collector's full passes while it runs.

    A scan allocates a million short-lived dicts; each allocation burst triggers collections,
    and the full ones would otherwise walk everything ansible and botocore loaded, again and
    again. gc.freeze() parks those objects (nothing is freed or leaked; they rejoin at the end).
    """
    with _frozen_lock:
        _frozen["scans"] += 1
        if _frozen["scans"] == 1:
            gc.freeze()


def _thaw_heap() -> None:
    with _frozen_lock:
        _frozen["scans"] -= 1
        if _frozen["scans"] == 0:
            gc.unfreeze()


@dataclass
class RequestCounter:
    """Counts HTTP attempts per operation through botocore's before-send event."""

    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attach(self, client) -> RequestCounter:
        client.meta.events.register("before-send", self._on_send)
        return self

    def _on_send(self, request=None, **kwargs) -> None:
        event_name = kwargs.get("event_name", "")
        operation = event_name.rsplit(".", 1)[-1] if event_name else "unknown"
        with self._lock:
            self.counts[operation] = self.counts.get(operation, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class ScanStats:
    pages: int = 0
    items: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_page(self, items: int) -> None:
        with self._lock:
            self.pages += 1
            self.items += items


def projection(attributes: Iterable[str]) -> dict:
    """ProjectionExpression arguments; placeholders avoid reserved words such as `status`."""
    names = {f"#a{index}": name for index, name in enumerate(attributes)}
    return {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}


def _read_pages(
    read, request: dict, out: queue.Queue, stop: threading.Event, stats: ScanStats, slots: threading.Semaphore
) -> None:
    """Follow LastEvaluatedKey through `read` (client.scan or client.query), handing each page over.

    A page is asked for only with one of `slots`, which the consumer gives back when it is done with it.
    """
    deserialize = TypeDeserializer().deserialize
    kwargs = dict(request)
    try:
        with reading():
            while not stop.is_set():
                if not slots.acquire(timeout=0.2):
                    continue  # the consumer is behind: look at `stop` again, then wait on
                if stop.is_set():
                    break
                page = read(**kwargs)
                items = page.pop(DECODED_ITEMS, None)  # set by the typed reader when it took the page
                if items is None:
                    items = [{key: deserialize(value) for key, value in raw.items()} for raw in page.get("Items", [])]
                stats.add_page(len(items))
                out.put(items)
                # The slot bounds the pages held; this thread's own reference must not outlive the hand-over.
                last_key = page.get("LastEvaluatedKey")
                del items, page
                if last_key is None:
                    break
                kwargs["ExclusiveStartKey"] = last_key
    except Exception as exc:  # handed to the consumer, which raises it
        out.put(exc)
    finally:
        out.put(_DONE)


def _stream(reads: list[tuple], workers: int, stats: ScanStats, thread_name: str) -> Iterator[dict]:
    """Run every (read, request) pagination, `workers` at once, yielding items as pages arrive.

    At most workers + 1 pages are held at once (a decoded 1 MB page is some 4 MiB of objects):
    one being consumed, the others read ahead. The first error stops the others and is raised here.
    """
    out: queue.Queue = queue.Queue()  # bounded by the slots: a page is put only with one
    stop = threading.Event()
    slots = threading.Semaphore(workers + 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name) as pool:
        for read, request in reads:
            pool.submit(_read_pages, read, request, out, stop, stats, slots)
        finished = 0
        _freeze_heap()
        try:
            while finished < len(reads):
                value = out.get()
                if value is _DONE:
                    finished += 1
                elif isinstance(value, Exception):
                    raise value
                else:
                    yield from value
                    del value  # the page's last reference here: gone before its slot is given back
                    slots.release()
        finally:
            stop.set()
            _thaw_heap()


def scan_items(
    client,
    table: str,
    attributes: Iterable[str] | None = None,
    segments: int = 1,
    page_size: int | None = None,
    stats: ScanStats | None = None,
    consistent_read: bool = False,
) -> Iterator[dict]:
    """Yield every item of `table` as plain Python values, scanning `segments` in parallel."""
    install(client)
    request: dict = {"TableName": table, "ConsistentRead": consistent_read}
    if attributes:
        request.update(projection(attributes))
    if page_size:
        request["Limit"] = page_size
    reads = [
        (client.scan, {**request, "Segment": segment, "TotalSegments": segments} if segments > 1 else request)
        for segment in range(segments)
    ]
    return _stream(reads, segments, stats if stats is not None else ScanStats(), "scan")


def query_items(
    client,
    table: str,
    index: str | None,
    key_name: str,
    values: Iterable[str],
    attributes: Iterable[str] | None = None,
    workers: int = 1,
    page_size: int | None = None,
    stats: ScanStats | None = None,
) -> Iterator[dict]:
    """Yield every item whose `key_name` is one of `values`, by Query on `index` (or the table), as plain Python values.

    One Query (following pages) per distinct value, at most `workers` at once. Index reads
    are eventually consistent, like the scans.
    """
    distinct = list(dict.fromkeys(values))
    if not distinct:
        return iter(())
    install(client)
    reads = []
    for value in distinct:
        request: dict = {
            "TableName": table,
            "KeyConditionExpression": "#qk = :qv",
            "ExpressionAttributeNames": {"#qk": key_name},
            "ExpressionAttributeValues": {":qv": {"S": value}},
        }
        if index:
            request["IndexName"] = index
        if attributes:
            extra = projection(attributes)
            request["ProjectionExpression"] = extra["ProjectionExpression"]
            request["ExpressionAttributeNames"].update(extra["ExpressionAttributeNames"])
        if page_size:
            request["Limit"] = page_size
        reads.append((client.query, request))
    workers = max(1, min(workers, len(distinct)))
    return _stream(reads, workers, stats if stats is not None else ScanStats(), "query")
