"""Aligning the decoder's BPE tokens to the lexicon's units, in UTF-8 bytes.

A scene stores, per unit, how many text bytes it stands for (core_bytes) and, per BPE token,
which unit it belongs to (span); both come from the unit spans the lexicon reports, which is
why those spans are checked before anything is aligned to them.
"""

from __future__ import annotations

import numpy as np

from dualmind.data.build.options import CorpusError

# How a token is given its unit, recorded in every build's settings (a corpus aligned by another
# rule is another build). Byte-level BPE carries a word's leading space in its first token
# (" word"); a unit's span starts at the word. By the token's first byte, " word" belonged to the
# unit before: on the demo's semantic corpus a unit's own word was then said while pointing at
# the previous unit, the copy channel's surface (" word") never matched the token that entered
# a unit, and "stay" was the answer for 4 tokens in 5. By its first byte that is not a space, the
# token that enters a unit says its word.
ALIGNMENT_RULE = "first-non-space-byte"


def check_spans(ids: list[int], spans: list[tuple[int, int]], n_chars: int, key: str) -> None:
    """The alignment relies on the lexicon's contract (one sorted, non-overlapping span per
    unit, inside the text); a lexicon that breaks it must fail loudly, not misalign silently."""
    if len(ids) != len(spans):
        raise CorpusError(
            f"lexicon gave {len(ids)} ids but {len(spans)} spans for document {key!r}"
        )
    if not spans:
        return
    a = np.asarray(spans, dtype=np.int64)
    if (
        a[0, 0] < 0
        or a[-1, 1] > n_chars
        or np.any(a[:, 1] < a[:, 0])
        or np.any(a[1:, 0] < a[:-1, 1])
    ):
        raise CorpusError(
            f"lexicon returned spans that are unsorted, overlapping or outside the text for "
            f"document {key!r}; this is a lexicon bug (see Lexicon.encode_with_spans)"
        )


def byte_offsets(text: str) -> np.ndarray:
    """c2b[i] = UTF-8 byte offset of character i (length len(text)+1)."""
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    c2b = np.zeros(len(cps) + 1, dtype=np.int64)
    np.cumsum(1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000), out=c2b[1:])
    return c2b


def align(
    text: str, unit_char_spans: list[tuple[int, int]], token_ids: list[int], tok_lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """(core_bytes per unit, span per token, n_bytes).

    Unit i owns the bytes from its start to the next unit's start (the first unit also owns
    any bytes before it, the last the bytes after it), so core_bytes sums to n_bytes. A token
    belongs to the last unit starting at or before the token's first byte that is not an ASCII
    space (its first byte if it is all spaces; -1 if none): see ALIGNMENT_RULE."""
    c2b = byte_offsets(text)
    n_bytes = int(c2b[-1])
    starts = (
        c2b[np.asarray([s for s, _ in unit_char_spans], dtype=np.int64)]
        if unit_char_spans
        else np.zeros(0, dtype=np.int64)
    )
    owned = starts.copy()
    if len(owned):
        owned[0] = 0
    core_bytes = np.diff(np.append(owned, n_bytes)) if len(owned) else np.zeros(0, dtype=np.int64)
    lens = tok_lengths[np.asarray(token_ids, dtype=np.int64)]
    if int(lens.sum()) != n_bytes:
        raise RuntimeError(f"decoder tokens cover {int(lens.sum())} bytes, the text has {n_bytes}")
    tok_start = np.cumsum(lens) - lens
    span = np.searchsorted(starts, tok_start + leading_spaces(text, tok_start, lens),
                           side="right") - 1
    return core_bytes, span, n_bytes


def leading_spaces(text: str, tok_start: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Per token, how many of its first bytes are spaces (b" "), when it has another byte after
    them; 0 for a token of spaces only (it stays with the unit its first byte is in)."""
    raw = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    index = np.arange(len(raw) + 1)
    # next_other[i]: the first byte at or after i that is not a space (len(raw) at the end)
    other = np.where(np.append(raw != 0x20, True), index, len(raw))
    next_other = np.minimum.accumulate(other[::-1])[::-1]
    spaces = next_other[np.minimum(tok_start, len(raw))] - tok_start
    return np.where(spaces < lens, spaces, 0)


def input_bytes(text: str, spans: list[tuple[int, int]]) -> tuple[np.ndarray, int]:
    """core_bytes of a qa/pair input, attributed like a scene's (see `align`)."""
    c2b = byte_offsets(text)
    starts = c2b[np.asarray([a for a, _ in spans], dtype=np.int64)]
    starts[0] = 0
    n_bytes = int(c2b[-1])
    return np.diff(np.append(starts, n_bytes)), n_bytes
