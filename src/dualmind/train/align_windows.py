"""Records longer than one context, laid out as consecutive windows instead of being cut.

A window owns a run of a record's core units [a, b) and the text tokens [p, q) aligned to them,
and is charged for exactly those: every unit and every text token of a record (and its one EOS)
is predicted once, in some window, and the windows' bytes add up to the record's bytes. That is
what lets the two-headed model (windows cut at unit boundaries, <= core_len units and <= text_len
text positions each) and the BPE baseline (windows of <= text_len text positions, no core) be
scored on exactly the same bytes although their contexts differ.

A later window's first input is the last token of the window before it (not BOS), so each target
keeps its true left neighbour; the context further back is whatever shares its packed row.

The last window of a record also holds the record's core EOS (the lexicon's end symbol, as the
core was pretrained with one after every record): one more core position, planned here with the
record's last unit so a row never exceeds its units; no text is aligned to it and it carries no
bytes, but the core's code length pays for it, once per record.

Checked here, before anything is aligned (bad input, named by file and record):
a record with no hyperphrase units or no text, span ids that are not a non-decreasing unit index
per token, core_bytes that do not add up to the record's bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dualmind.data.open_corpus import DataConfigError


@dataclass(frozen=True)
class Window:
    """Units [a, b) and text tokens [p, q) of one record; first/last: where BOS/EOS go (the last
    window holds b - a + 1 core positions: its units and the record's core EOS)."""

    a: int
    b: int
    p: int
    q: int
    first: bool
    last: bool


def record_location(shards: Any, i: int) -> str:
    """'<shard file> record <j>' for record i of a ShardSet (the split index if not a ShardSet;
    records of other sources, QA pairs for instance, name their own location)."""
    if hasattr(shards, "location"):
        return shards.location(i)
    files = getattr(shards, "files", None)
    if not files:
        return f"{getattr(shards, 'corpus_dir', '?')} [{getattr(shards, 'split', '?')}] record {i}"
    start = 0
    for f in files:
        if i < start + f.records:
            return f"{f.path} record {i - start}"
        start += f.records
    return f"{shards.corpus_dir} [{shards.split}] record {i} (out of range)"


def record_bytes(shards: Any) -> np.ndarray:
    """Bytes of text of every record, from the record table where there is one."""
    if hasattr(shards, "record_bytes"):
        return np.asarray(shards.record_bytes(), dtype=np.int64)
    files = getattr(shards, "files", None)
    if files and all("rec_n_bytes" in getattr(f, "arrays", {}) for f in files):
        return np.concatenate([np.asarray(f.arrays["rec_n_bytes"]) for f in files])
    return np.asarray([int(shards[i].n_bytes) for i in range(len(shards))], dtype=np.int64)


def check_record(scene: Any, where: str) -> None:
    """Refuse a record whose text, alignment or bytes do not match its hyperphrase."""
    n_units, n_tokens = len(scene.core), len(scene.text)
    head = f"{where} (document {scene.doc}, {scene.kind})"
    if n_units == 0:
        raise DataConfigError(f"{head}: has no hyperphrase units; rebuild the corpus")
    if n_tokens == 0 or int(scene.n_bytes) <= 0:
        raise DataConfigError(f"{head}: a scene with no text ({n_tokens} text tokens, "
                              f"{int(scene.n_bytes)} bytes) for {n_units} units; rebuild the "
                              "corpus (`dualmind corpus validate` finds such records)")
    span = np.asarray(scene.span, dtype=np.int64)
    if len(span) != n_tokens:
        raise DataConfigError(f"{head}: {n_tokens} text tokens but {len(span)} span ids; the "
                              "text's alignment does not match it")
    bad = np.flatnonzero((span < -1) | (span >= n_units))
    if len(bad):
        raise DataConfigError(f"{head}: text token {int(bad[0])} is aligned to unit "
                              f"{int(span[bad[0]])}, but the hyperphrase has {n_units} units "
                              "(ids 0.., or -1 before the first); the text's alignment does "
                              "not match its hyperphrase")
    back = np.flatnonzero(np.diff(span) < 0)
    if len(back):
        t = int(back[0]) + 1
        raise DataConfigError(f"{head}: text token {t} goes back from unit {int(span[t - 1])} "
                              f"to unit {int(span[t])}; span ids must not decrease along the "
                              "text")
    core_bytes = np.asarray(scene.core_bytes, dtype=np.int64)
    if len(core_bytes) != n_units or int(core_bytes.sum()) != int(scene.n_bytes):
        raise DataConfigError(f"{head}: core_bytes of {len(core_bytes)} units add up to "
                              f"{int(core_bytes.sum())} bytes, the record has "
                              f"{int(scene.n_bytes)} bytes over {n_units} units")


def plan_windows(span: np.ndarray, n_units: int, core_len: int, text_len: int, has_core: bool,
                 where: str = "record", room: tuple[int, int] | None = None) -> list[Window]:
    """Cut one record into windows that fit rows (one window if it fits already).

    room: (units, text positions) left in the row the record starts in (default: a whole row).
    The first window fills that room, the others whole rows, so records lie back to back and
    rows are full; if not even the first unit fits the room, the record starts a new row.
    Each window predicts at most its row's text positions - 1 tokens, leaving room for the EOS
    (last window) or the carried-over previous token (later windows); the last window's units
    leave room for the record's core EOS. With a core, windows are cut at unit boundaries; a
    single unit with more text than a row holds is refused (its text would be cut from the state
    it renders). Without a core (the BPE baseline) windows are cut by text tokens alone.
    """
    span = np.asarray(span, dtype=np.int64)
    n_tokens, budget = len(span), text_len - 1
    if budget < 1 or core_len < 2:  # a last window holds a unit and the core EOS
        raise DataConfigError(f"{where}: rows of {core_len} units and {text_len} text positions "
                              "cannot hold a window")
    room_core, room_text = room or (core_len, text_len)
    if n_units + 1 <= room_core and n_tokens <= room_text - 1:
        return [Window(0, n_units, 0, n_tokens, True, True)]
    if has_core:
        cuts = _unit_cuts(span, n_units, (room_core, room_text - 1), (core_len, budget), where)
        if cuts is None:  # the room holds no unit: start a new row
            return plan_windows(span, n_units, core_len, text_len, has_core, where)
        token_cuts = [int(np.searchsorted(span, u, side="left")) if u else 0 for u in cuts]
        token_cuts[-1] = n_tokens
    else:
        if room_text < 2:
            return plan_windows(span, n_units, core_len, text_len, has_core, where)
        token_cuts = [0, *range(room_text - 1, n_tokens, budget), n_tokens]
        # Each unit is owned (its bytes charged) by exactly one window: the one in which the
        # text before a cut ends owns that token's unit; the last window owns the rest.
        cuts = [0] + [int(span[p - 1]) + 1 if span[p - 1] >= 0 else 0
                      for p in token_cuts[1:-1]] + [n_units]
    last = len(cuts) - 2
    return [Window(cuts[k], cuts[k + 1], token_cuts[k], token_cuts[k + 1], k == 0, k == last)
            for k in range(last + 1)]


def _unit_cuts(span: np.ndarray, n_units: int, first: tuple[int, int], full: tuple[int, int],
               where: str) -> list[int] | None:
    """Unit boundaries 0 = u0 < u1 < ... < uK = n_units of windows within their budgets
    ((units, text tokens): `first` for window 0, `full` after; the last unit counts twice, as
    the core EOS rides with it); None if unit 0 alone does not fit `first`."""
    ends = np.searchsorted(span, np.arange(n_units), side="right")  # tokens up to unit u
    cuts, a, p = [0], 0, 0
    cap_units, cap_tokens = first
    for u in range(n_units):
        width = u + 1 - a + (u == n_units - 1)
        if width <= cap_units and int(ends[u]) - p <= cap_tokens:
            continue
        if u > a:
            cuts.append(u)
            a, p = u, int(ends[u - 1])
            cap_units, cap_tokens = full
        elif first != full and len(cuts) == 1:
            return None
        if int(ends[u]) - p > cap_tokens:  # unit u alone has more text than a row holds
            raise DataConfigError(f"{where}: unit {u} alone is aligned to "
                                  f"{int(ends[u]) - p} text tokens, more than a row's "
                                  f"{cap_tokens + 1} text positions hold; raise "
                                  "decoder.max_seq_len")
    return cuts + [n_units]


def window_bytes(core_bytes: np.ndarray, w: Window) -> int:
    return int(np.asarray(core_bytes[w.a:w.b], dtype=np.int64).sum())
