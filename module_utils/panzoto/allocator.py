"""Keep glibc from carving large buffers out of its heaps, where the holes they leave stay resident.

glibc serves a block above its mmap threshold (128 KiB) with mmap, and raises the threshold to the
size of each such block freed (up to 32 MiB): after the first 0.7-1.5 MB Scan response, every later
body, and its text while json reads it, is carved from the heap of the thread that read it. Those
heaps keep the freed space resident between pages: a 100,000-job cleanup ended its scan with 13 to
16 MiB of them, and grew 62 MiB in all against 49 to 54 with the threshold fixed. Setting the threshold
(mallopt(3), M_MMAP_THRESHOLD) turns the raising off: large buffers are mapped and unmapped.
Elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # <malloc.h>
DEFAULT_MMAP_THRESHOLD = 128 * 1024


def map_large_buffers() -> bool:
    """Fix glibc's mmap threshold at its default for this process; False where there is no glibc mallopt."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD) == 1
