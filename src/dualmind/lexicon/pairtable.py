"""A vectorised lookup table for int64 pair keys (two-choice cuckoo hashing).

Merge rounds look up every adjacent pair of a document in a table of a few thousand
keys. ``np.searchsorted`` does that at ~50 ns a key (a cache-missing binary search);
cuckoo hashing needs two multiplicative hashes and two gathers from a small table that
stays in cache (~16 ns). Each key sits in one of its two slots, so a lookup is exact.
The table is built once per lexicon load; if the insertion ever cycled (practically
never at a load factor of 0.4) the build retries with a larger table.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_EMPTY = -1  # keys are pair codes >= 0


class PairTable:
    def __init__(self, keys: np.ndarray, vals: np.ndarray, load: float = 0.4):
        keys = np.asarray(keys, dtype=np.int64)
        vals = np.asarray(vals, dtype=np.int64)
        if keys.size and keys.min() < 0:
            raise ValueError("pair keys must be non-negative")
        bits = max(6, int(np.ceil(np.log2(max(keys.size, 1) / load))))
        while not self._build(keys, vals, bits):
            bits += 1

    def _build(self, keys: np.ndarray, vals: np.ndarray, bits: int) -> bool:
        size = 1 << bits
        self.shift = np.uint64(64 - bits)
        self.keys = np.full(size, _EMPTY, dtype=np.int64)
        self.vals = np.zeros(size, dtype=np.int64)
        h1, h2 = self._slots(keys)
        slots = {k: (a, b) for k, a, b in zip(keys.tolist(), h1.tolist(), h2.tolist(),
                                               strict=True)}
        tk, tv = self.keys, self.vals
        for key, val in zip(keys.tolist(), vals.tolist(), strict=True):
            pos = slots[key][0]
            for _ in range(64 + bits * 8):
                if tk[pos] == _EMPTY:
                    tk[pos], tv[pos] = key, val
                    break
                # Evict the occupant to its other slot.
                key, tk[pos] = int(tk[pos]), key
                val, tv[pos] = int(tv[pos]), val
                a, b = slots[key]
                pos = b if pos == a else a
            else:
                return False
        return True

    def _slots(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = keys.view(np.uint64)
        return (u * _M1) >> self.shift, (u * _M2) >> self.shift

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, value where found) for a contiguous int64 key array."""
        p1, p2 = self._slots(keys)
        hit1 = self.keys[p1] == keys
        slot = np.where(hit1, p1, p2)
        return hit1 | (self.keys[p2] == keys), self.vals[slot]
