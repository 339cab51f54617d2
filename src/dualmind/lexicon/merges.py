"""Multi-word units by merge rounds over the unit stream (superword style).

A round is a table ``(left_id, right_id) -> merged_id``. Applying a round sweeps the id
sequence left to right and replaces every adjacent pair found in the table (a pair that
overlaps the previous merge is left alone). Rounds run in order, so a 2-word unit from
round 1 can join another word in round 2. Training and encoding use the very same sweep,
so what was counted is what the encoder produces.

The hot path stays in C: pair lookups are ``map(dict.get, zip(...))`` and only the hits
are visited by a Python loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from itertools import compress, islice

MergeTable = dict[tuple[int, int], int]


def apply_round(ids: list[int], table: MergeTable) -> list[int]:
    if len(ids) < 2 or not table:
        return ids
    hits = list(map(table.get, zip(ids, islice(ids, 1, None))))
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
            counts.update(zip(d, islice(d, 1, None)))
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
