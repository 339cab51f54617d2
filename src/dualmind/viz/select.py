"""Choosing what a report draws: a few layers, heads and positions, whatever the model's size."""

from __future__ import annotations

from collections.abc import Sequence

from dualmind.viz.load import VizError


def spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n), always including the first and the last."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def choose(option: str, given: Sequence[int] | None, n: int, default: int, cap: int
           ) -> list[int]:
    """The explicit selection (checked against ``n`` and ``cap``) or ``default`` spread ones."""
    if given is None:
        return spread(n, default)
    chosen = sorted({int(i) for i in given})
    bad = [i for i in chosen if not 0 <= i < n]
    if bad:
        raise VizError(f"{option} {bad} out of range: there are {n} (0..{n - 1})")
    if len(chosen) > cap:
        raise VizError(f"{option} selects {len(chosen)}; a report draws at most {cap} "
                       f"(pick fewer, e.g. {spread(n, cap)})")
    return chosen


def boundaries(doc_of: Sequence[int]) -> list[int]:
    """Indices where a new document starts (never 0)."""
    return [i for i in range(1, len(doc_of)) if doc_of[i] != doc_of[i - 1]]
