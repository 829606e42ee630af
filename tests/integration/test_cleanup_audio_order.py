"""S3 DeleteObjects batches sent concurrently still go only after every table write, and all of them go."""

from __future__ import annotations

import functools
import threading

import ansible.module_utils.panzoto.cleanup.audio as audio_module
from cleanup_module import run_cleanup_module
from fault_proxy import FaultProxy
from test_cleanup_playbook import AUDIO_KEY, object_keys, table_items
from test_cleanup_safety import legacy, seeded


class Recording(FaultProxy):
    """Forwards everything, recording the operations in the order they arrive."""

    def __init__(self, upstream_url: str) -> None:
        super().__init__(upstream_url)
        self.order: list[str] = []
        self._order_lock = threading.Lock()

    def admit(self, operation: str, request_bytes: int) -> bool:
        with self._order_lock:
            self.order.append(operation)
        return super().admit(operation, request_bytes)


def test_every_delete_objects_batch_is_sent_after_the_last_table_write(aws, tmp_path, monkeypatch):
    jobs = [legacy(f"job-{n:02d}") for n in range(14)]
    seeded(aws.endpoint_url, jobs)
    keys = {AUDIO_KEY.format(**job) for job in jobs}
    # Batches of 3 keys, 4 at once: five DeleteObjects requests, in flight together.
    monkeypatch.setattr(
        audio_module, "delete_objects", functools.partial(audio_module.delete_objects, batch_size=3, workers=4)
    )
    with Recording(aws.endpoint_url) as proxy:
        done = run_cleanup_module(
            proxy.url, tmp_path, categories=["legacy_encryption"], delete_audio=True, write_batch_size=4, parallel=1
        )
    assert not done.get("failed"), done
    assert table_items(aws.endpoint_url) == {} and not keys & object_keys(aws.endpoint_url)
    assert done["deleted_objects_count"] == 14 and done["audio"]["delete_requests"] == 5
    order = proxy.order
    writes = [index for index, operation in enumerate(order) if operation == "TransactWriteItems"]
    deletes = [index for index, operation in enumerate(order) if operation == "DeleteObjects"]
    assert len(writes) == 4 and len(deletes) == 5
    assert max(writes) < min(deletes)
