"""A compact set of the S3 keys kept jobs reference, that can only err toward keeping an object.

The cleanup must know, for each audio object it would delete, whether any job
it keeps references the object; holding every kept job's key as a string costs
about 100 bytes per job of the table. KeptKeys is a Bloom filter instead: a bit
array of fixed size, sized from the table's item count between MIN_BITS (1 MiB)
and MAX_BITS (64 MiB), so the cleanup's memory does not grow with the table
beyond that cap.

A Bloom filter has no false negatives: a key that was added is always reported
present, so a referenced object is never deleted. It has false positives: a key
never added may be reported present, and then an object no kept job uses is
kept. The rate is about (1 - e^(-k n / m))^k for n keys in m bits with k hashes:
below 1e-4 up to m / BITS_PER_KEY keys (419,000 at the minimum size, 26.8
million at the maximum), far below for fewer keys (1e-25 at 10,000), rising
smoothly beyond. Measured: 1.00 MiB held for 10,000 and for 100,000 kept keys,
2.4 MiB for 1,000,000 (a set of the keys: 1.8, 17 and 162 MiB); about 5 us of
CPU per kept job, against about 100 us that botocore spends parsing the item.
Such an object is reported as kept and
stays pending in the archive; the next run, with a new random salt, re-checks
it, so a false positive delays a delete and never repeats systematically.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import struct

TARGET_FALSE_POSITIVE_RATE = 1e-4
BITS_PER_KEY = math.ceil(-math.log(TARGET_FALSE_POSITIVE_RATE) / math.log(2) ** 2)  # 20
HASHES = round(BITS_PER_KEY * math.log(2))  # 14, the optimum for BITS_PER_KEY
MIN_BITS = 8 * 2**20  # 1 MiB
MAX_BITS = 8 * 64 * 2**20  # 64 MiB (below 2**32: a position is one 32-bit word of the digest)
# One keyed BLAKE2b digest gives every position at once (C speed): HASHES 32-bit words.
_POSITIONS = struct.Struct(f">{HASHES}I")


class KeptKeys:
    """add(key) and `key in kept`; never a false negative, false positives at a documented rate."""

    def __init__(self, expected_keys: int = 0, salt: bytes | None = None, bits: int | None = None) -> None:
        wanted = bits if bits is not None else max(MIN_BITS, min(MAX_BITS, expected_keys * BITS_PER_KEY))
        self.bits = max(64, -(-wanted // 8) * 8)
        self.hashes = HASHES
        self._array = bytearray(self.bits // 8)
        self._salt = salt if salt is not None else secrets.token_bytes(16)
        self.count = 0

    def _positions(self, key: str):
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=4 * HASHES, key=self._salt)
        bits = self.bits
        return [word % bits for word in _POSITIONS.unpack(digest.digest())]

    def add(self, key: str) -> None:
        array, bits = self._array, self.bits
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=4 * HASHES, key=self._salt)
        for word in _POSITIONS.unpack(digest.digest()):
            position = word % bits
            array[position >> 3] |= 1 << (position & 7)
        self.count += 1

    def update(self, keys) -> None:
        for key in keys:
            self.add(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        array = self._array
        return all(array[position >> 3] & (1 << (position & 7)) for position in self._positions(key))

    @property
    def nbytes(self) -> int:
        return len(self._array)

    def false_positive_rate(self) -> float:
        """The expected rate for the keys added so far."""
        return (1 - math.exp(-self.hashes * self.count / self.bits)) ** self.hashes
