"""Multi-word units by merge rounds over the unit stream (superword style).

A round is a table ``(left_id, right_id) -> merged_id``. Applying a round sweeps the id
sequence left to right and replaces every adjacent pair found in the table (a pair that
overlaps the previous merge is left alone). Rounds run in order, so a 2-word unit from
round 1 can join another word in round 2. Training and encoding use the very same sweep,
so what was counted is what the encoder produces.

Two implementations of the same sweep: a short sequence uses dict lookups in Python; a
long one (the common case when encoding documents) is vectorised with numpy — each pair
becomes one int64 key ``left * V + right`` looked up in a cuckoo hash table
(``pairtable.py``), and the left-to-right rule becomes "inside a run of consecutive hits, take
every other one, starting with the first". ``tests/test_lexicon.py`` checks they agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from itertools import compress, islice

import numpy as np

from .pairtable import PairTable

MergeTable = dict[tuple[int, int], int]


def apply_round(ids: list[int], table: MergeTable) -> list[int]:
    if len(ids) < 2 or not table:
        return ids
    hits = list(map(table.get, zip(ids, islice(ids, 1, None), strict=False)))
    where = list(compress(range(len(hits)), hits))
    if not where:
        return ids
    out: list[int] = []
    prev = 0
    for i in where:
        if i < prev:  # overlaps the pair merged just before
            continue
        out.extend(ids[prev:i])
        out.append(hits[i])
        prev = i + 2
    out.extend(ids[prev:])
    return out


def apply_rounds(ids: list[int], rounds: Sequence[MergeTable]) -> list[int]:
    for table in rounds:
        ids = apply_round(ids, table)
    return ids


class MergeRounds:
    """Compiled merge rounds: dict tables for short inputs, hash tables for long ones."""

    NUMPY_FROM = 192  # below this many ids the Python sweep is faster than numpy's overhead

    def __init__(self, rounds: Sequence[MergeTable], vocab_size: int):
        self.tables = list(rounds)
        # Key base one above the vocabulary: id ``vocab_size`` is then free to act as a
        # separator between documents of a batch whose pairs can never be a key.
        self.sep = int(vocab_size)
        self.base = int(vocab_size) + 1
        self.arrays = []
        for table in self.tables:
            keys = np.fromiter((a * self.base + b for a, b in table), dtype=np.int64,
                               count=len(table))
            vals = np.fromiter(table.values(), dtype=np.int64, count=len(table))
            # Which ids ever start / end a pair of this round: a cheap gather that rules
            # out most positions before the (costlier) hash lookup.
            left = np.zeros(self.base, dtype=bool)
            right = np.zeros(self.base, dtype=bool)
            if table:
                pairs = np.array(list(table), dtype=np.int64)
                left[pairs[:, 0]] = True
                right[pairs[:, 1]] = True
            self.arrays.append((PairTable(keys, vals), left, right))

    def __call__(self, ids: list[int]) -> list[int]:
        if not self.tables:
            return ids
        if len(ids) < self.NUMPY_FROM:
            return apply_rounds(ids, self.tables)
        arr = np.asarray(ids, dtype=np.int64)
        for compiled in self.arrays:
            arr = self._apply_np(arr, *compiled)
        return arr.tolist()

    def apply_array(self, arr: np.ndarray) -> list[int]:
        """The rounds over an int64 id array (as the compiled base encoder returns it)."""
        if arr.size < self.NUMPY_FROM or not self.tables:
            return apply_rounds(arr.tolist(), self.tables)
        for compiled in self.arrays:
            arr = self._apply_np(arr, *compiled)
        return arr.tolist()

    def apply_with_spans(self, ids: list[int], starts: list[int], ends: list[int]
                         ) -> tuple[list[int], list[tuple[int, int]]]:
        """The rounds, carrying each unit's (start, end) span: a merged unit spans from
        its left part's start to its right part's end."""
        if len(ids) < self.NUMPY_FROM or not self.tables:
            spans = list(zip(starts, ends, strict=True))
            for table in self.tables:
                ids, spans = apply_round_spans(ids, spans, table)
            return ids, spans
        arr = np.asarray(ids, dtype=np.int64)
        s = np.asarray(starts, dtype=np.int64)
        e = np.asarray(ends, dtype=np.int64)
        for compiled in self.arrays:
            arr, keep, take = self._apply_np(arr, *compiled, with_masks=True)
            if take is not None:
                e[take] = e[take + 1]
                s, e = s[keep], e[keep]
        return arr.tolist(), list(zip(s.tolist(), e.tolist(), strict=True))

    def batch_arrays(self, arrays: list[np.ndarray]) -> list[list[int]]:
        """Rounds over many documents at once, kept apart by the separator id."""
        if not arrays:
            return []
        if len(arrays) == 1 or not self.tables:
            return [self.apply_array(a) for a in arrays]
        sep = np.array([self.sep], dtype=np.int64)
        parts = []
        for a in arrays:
            parts.append(a)
            parts.append(sep)
        arr = np.concatenate(parts)
        for compiled in self.arrays:
            arr = self._apply_np(arr, *compiled)
        flat = arr.tolist()
        out, start = [], 0
        for c in np.flatnonzero(arr == self.sep).tolist():
            out.append(flat[start:c])
            start = c + 1
        return out

    def batch(self, seqs: list[list[int]]) -> list[list[int]]:
        """The rounds over many sequences in one vectorised pass (documents are kept
        apart by a separator id that no pair key contains)."""
        if not self.tables or not seqs:
            return seqs
        if len(seqs) == 1:
            return [self(seqs[0])]
        flat: list[int] = []
        sep = self.sep
        for s in seqs:
            flat.extend(s)
            flat.append(sep)
        arr = np.asarray(flat, dtype=np.int64)
        for compiled in self.arrays:
            arr = self._apply_np(arr, *compiled)
        cuts = np.flatnonzero(arr == sep)
        out = []
        start = 0
        flat_list = arr.tolist()
        for c in cuts.tolist():
            out.append(flat_list[start:c])
            start = c + 1
        return out

    def _apply_np(self, ids: np.ndarray, table: PairTable,
                  left: np.ndarray, right: np.ndarray, with_masks: bool = False):
        """One round; with ``with_masks`` also (kept positions, merged positions)."""
        none = (ids, None, None) if with_masks else ids
        if ids.size < 2:
            return none
        cand = np.flatnonzero(left[ids[:-1]] & right[ids[1:]])
        hit, merged = table.lookup(ids[cand] * self.base + ids[cand + 1])
        take = cand[hit]
        if take.size == 0:
            return none
        new_ids = merged[hit]
        follows = take[1:] == take[:-1] + 1
        if follows.any():
            # Runs of consecutive hits: the sweep takes offsets 0, 2, 4, ... of each run.
            starts = np.ones(take.size, dtype=bool)
            starts[1:] = ~follows
            run_start = take[starts][np.cumsum(starts) - 1]
            sel = ((take - run_start) & 1) == 0
            take, new_ids = take[sel], new_ids[sel]
        out = ids.copy()
        out[take] = new_ids
        keep = np.ones(ids.size, dtype=bool)
        keep[take + 1] = False
        return (out[keep], keep, take) if with_masks else out[keep]


def apply_round_spans(
    ids: list[int], spans: list[tuple[int, int]], table: MergeTable
) -> tuple[list[int], list[tuple[int, int]]]:
    """Same sweep as :func:`apply_round`, carrying each unit's span along."""
    out_ids: list[int] = []
    out_spans: list[tuple[int, int]] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n:
            m = table.get((ids[i], ids[i + 1]))
            if m:
                out_ids.append(m)
                out_spans.append((spans[i][0], spans[i + 1][1]))
                i += 2
                continue
        out_ids.append(ids[i])
        out_spans.append(spans[i])
        i += 1
    return out_ids, out_spans


def learn_rounds(
    docs: list[list[int]],
    budgets: Sequence[int],
    mergeable: Callable[[int], bool],
    width: Callable[[int], int],
    max_n: int,
    min_count: int,
    new_unit: Callable[[int, int, int], int],
) -> tuple[list[MergeTable], list[list[int]]]:
    """Learn merge rounds on ``docs`` (unit id lists); returns (rounds, merged docs).

    ``budgets[r]``: how many new units round r may create. ``mergeable(id)``: may this unit
    be part of a multi-word unit. ``width(id)``: number of words the unit spans (a merge
    must stay within ``max_n``). ``new_unit(a, b, count) -> id`` registers the merge and
    returns the new id (the caller owns the unit table).
    """
    rounds: list[MergeTable] = []
    for budget in budgets:
        if budget <= 0:
            continue
        counts: Counter = Counter()
        for d in docs:
            counts.update(zip(d, islice(d, 1, None), strict=False))
        table: MergeTable = {}
        for (a, b), c in counts.most_common():
            if c < min_count or len(table) >= budget:
                break
            if not (mergeable(a) and mergeable(b)) or width(a) + width(b) > max_n:
                continue
            table[(a, b)] = new_unit(a, b, c)
        if not table:
            break
        docs = [apply_round(d, table) for d in docs]
        rounds.append(table)
    return rounds, docs
