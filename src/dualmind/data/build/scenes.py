"""Cutting a document into scenes: 100–500 lexicon units, cut at paragraph or sentence ends.

A document is encoded once (in blocks of at most `block_chars`, cut at paragraph breaks, so a
huge document never sits in the lexicon at once); scene cuts are then chosen among unit
boundaries that coincide with paragraph or sentence ends. The scene's core ids are a slice of
the document's encoding, so the hyperphrase stays a deterministic function of the text.

Cut preference, from a scene start s: a paragraph end with min <= units <= max (the one nearest
the target length), else a sentence end in that range, else the last paragraph/sentence end
before max, else a hard cut at max (at a unit that starts after whitespace when there is one).
A last scene shorter than min is merged into the previous one when the two fit in max.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

PARAGRAPH_RE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
# A sentence ends at . ! ? … (possibly repeated), then closing quotes/brackets, then whitespace.
SENTENCE_RE = re.compile(r"(?<=[.!?…])[\"'»”’)\]]*\s+")


@dataclass(frozen=True)
class SceneLimits:
    min_units: int = 100
    max_units: int = 500
    target_units: int = 300
    block_chars: int = 1 << 16

    def __post_init__(self) -> None:
        if not 1 <= self.min_units <= self.target_units <= self.max_units:
            raise ValueError(
                f"need 1 <= min_units <= target_units <= max_units, got "
                f"{self.min_units}, {self.target_units}, {self.max_units}"
            )


@dataclass(frozen=True)
class SceneCut:
    """A scene inside a block: characters [char_start, char_end), units [unit_start, unit_end)."""

    char_start: int
    char_end: int
    unit_start: int
    unit_end: int


def split_blocks(text: str, block_chars: int) -> list[tuple[int, int]]:
    """(start, end) char ranges of at most block_chars, cut after paragraph breaks when
    possible, else after a newline, else after whitespace, else anywhere."""
    n = len(text)
    if n <= block_chars:
        return [(0, n)]
    out, start = [], 0
    while n - start > block_chars:
        window_end = start + block_chars
        cut = -1
        for pattern in (PARAGRAPH_RE, re.compile(r"\n"), re.compile(r"\s")):
            last = None
            for m in pattern.finditer(text, start + block_chars // 2, window_end):
                last = m
            if last is not None:
                cut = last.end()
                break
        if cut <= start:
            cut = window_end
        out.append((start, cut))
        start = cut
    out.append((start, n))
    return out


def boundaries(text: str) -> list[tuple[int, bool]]:
    """Sorted (char offset where a new sentence/paragraph starts, is_paragraph)."""
    found: dict[int, bool] = {}
    for m in SENTENCE_RE.finditer(text):
        found[m.end()] = found.get(m.end(), False)
    for m in PARAGRAPH_RE.finditer(text):
        found[m.end()] = True
    return sorted(found.items())


def cut_scenes(text: str, spans: list[tuple[int, int]], limits: SceneLimits) -> list[SceneCut]:
    """Choose scene cuts for one encoded block. `spans` are the units' char spans (sorted)."""
    n = len(spans)
    if n == 0:
        return []
    starts = [s for s, _ in spans]
    # candidate cut -> (unit index where the next scene starts, char offset, is_paragraph)
    cands: dict[int, tuple[int, bool]] = {}
    for pos, para in boundaries(text):
        # the unit holding the sentence's first character; if it starts earlier with only
        # whitespace (" The"), the cut goes before it; if it straddles real text ("end. The"
        # merged into one unit), the cut goes after it
        u = bisect.bisect_right(starts, pos) - 1
        if u < 0:
            continue
        if starts[u] < pos and not text[starts[u] : pos].isspace():
            u += 1
        if 0 < u < n:
            prev = cands.get(u)
            if prev is None or (para and not prev[1]):
                cands[u] = (pos, para)
    cand_units = sorted(cands)

    def char_at(u: int) -> int:
        # the scene boundary char: the sentence boundary when we cut at one, clamped so that
        # unit u-1 ends before it and unit u starts after it
        pos = cands[u][0] if u in cands else spans[u][0]
        return min(max(pos, spans[u - 1][1]), spans[u][0])

    cuts: list[int] = []
    s = 0
    while n - s > limits.max_units:
        lo = bisect.bisect_right(cand_units, s)
        hi = bisect.bisect_right(cand_units, s + limits.max_units)
        window = cand_units[lo:hi]
        in_range = [u for u in window if u - s >= limits.min_units]
        paras = [u for u in in_range if cands[u][1]]
        pick = None
        for group in (paras, in_range):
            if group:
                pick = min(group, key=lambda u: (abs(u - s - limits.target_units), u))
                break
        if pick is None and window:
            pick = window[-1]
        if pick is None:
            # no sentence end within max units: cut at a unit that follows whitespace
            pick = s + limits.max_units
            for u in range(s + limits.max_units, s + limits.min_units, -1):
                a, _ = spans[u]
                if a > 0 and text[a - 1].isspace() or text[a : a + 1].isspace():
                    pick = u
                    break
        # never cut right after a zero-width unit (a lossless byte piece holding the first
        # bytes of a character that the next unit finishes): both belong to one character
        while pick > s + 1 and spans[pick - 1][0] == spans[pick - 1][1]:
            pick -= 1
        # a scene that would hold only such pieces (it starts on one) takes the unit that
        # finishes their character too: at most 3 more units, the pieces of one character
        while pick < n and spans[pick - 1][0] == spans[pick - 1][1]:
            pick += 1
        if pick >= n:  # (only with max_units below a character's pieces: no cut is left)
            break
        cuts.append(pick)
        s = pick
    # the tail: merge a short last scene into the previous one when both fit
    if (
        cuts
        and n - s < limits.min_units
        and n - (cuts[-2] if len(cuts) > 1 else 0) <= limits.max_units
    ):
        cuts.pop()
    edges_u = [0] + cuts + [n]
    edges_c = [0] + [char_at(u) for u in cuts] + [len(text)]
    return [
        SceneCut(edges_c[i], edges_c[i + 1], edges_u[i], edges_u[i + 1])
        for i in range(len(cuts) + 1)
    ]
