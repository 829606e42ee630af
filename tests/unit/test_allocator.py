"""glibc's mmap threshold fixed for the cleanup's process (panzoto.allocator)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MODULE_UTILS = Path(__file__).resolve().parents[2] / "module_utils"

# A 1 MB block is mmapped and freed, then a 700 kB one is asked for: where does it come from?
PROBE = """
import ctypes, json, sys
import ansible.module_utils
ansible.module_utils.__path__.append(sys.argv[1])
from ansible.module_utils.panzoto.allocator import map_large_buffers

FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS.split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
tuned = map_large_buffers() if sys.argv[2] == "tuned" else None
first = bytearray(1_000_000)
del first
mapped_before = libc.mallinfo2().hblks
second = bytearray(700_000)
print(json.dumps({"tuned": tuned, "mapped": libc.mallinfo2().hblks - mapped_before}))
"""


def probe(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(MODULE_UTILS), mode], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_large_buffers_stay_mapped_after_one_was_freed():
    # glibc as it comes: freeing the 1 MB block raised the threshold, so the next large block is carved from the heap.
    assert probe("default") == {"tuned": None, "mapped": 0}
    # Fixed: the large block is mapped (and will be unmapped when freed) however many came before.
    assert probe("tuned") == {"tuned": True, "mapped": 1}
