"""Chunk caches: the compiled fast path shared by both levels.

Encoding splits the text on spaces with ``str.split`` (C speed, ~300 MB/s) and maps each
chunk through a dict of already-encoded chunks; ``dict.__getitem__`` runs in C for every
hit and only a miss drops into Python (``__missing__``). Natural text repeats its
chunks ("the", "night,", "ночью.") so after a few kilobytes almost every chunk hits.
The cache is bounded: past ``limit`` entries misses are computed but not stored.
"""

from __future__ import annotations

from collections.abc import Callable


class ChunkCache(dict):
    __slots__ = ("compute", "limit")

    def __init__(self, compute: Callable[[str], tuple[int, ...]], limit: int = 1 << 20):
        super().__init__()
        self.compute = compute
        self.limit = limit

    def __missing__(self, chunk: str) -> tuple[int, ...]:
        value = self.compute(chunk)
        if len(self) < self.limit:
            self[chunk] = value
        return value
