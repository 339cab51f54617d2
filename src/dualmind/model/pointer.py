"""Where a generating decoder is in the hyperphrase: the pointer generation can follow.

In training, a position's pointer is the unit of its input token (the shards' span ids,
:func:`dualmind.model.masks.pointers`): the unit that owns the token's first byte that is not a
space, units owning the bytes from their start to the next unit's start
(:mod:`dualmind.data.build.alignment`). At generation the same rule runs on the text produced so
far: re-encode it with the lexicon, and the unit of the last token is the last unit starting at
or before its first character that is not a space. For a
lossless lexicon this is the training pointer exactly wherever encoding a prefix gives the
prefix of the encoding; a semantic lexicon encodes what the decoder said, which follows the
thought's units only as far as the rendering does (``benchmarks/decoder_reading.py`` measures how
often the two agree on held-out text): a semantic rendering that strays never reaches the next
lemma, and the pointer stalls. A decoder with a boundary head (``decoder.boundary_head``, the
mini default) needs none of this: it decides its own moves (:mod:`dualmind.model.boundary`), and
:func:`pointer_for` returns None for it.
"""

from __future__ import annotations

import bisect
from typing import Any

import torch


class LexiconPointer:
    """A :data:`dualmind.model.decoder.PointerFn` for one batch of renderings: ids [B,L] hold
    the prompt's first token (BOS) then the produced tokens; ``n_units`` clips the pointer to
    the hyperphrase read (a rendering longer than it stays at its last unit).

    Re-encoding the whole text at every token would cost O(n^2); each row keeps an anchor (a unit
    start at least ``tail`` characters behind the end, and how many units lie before it) and
    re-encodes only from there. A unit start that far back is one the full encoding has too
    (units span a word or a few: far less than ``tail``), so the count is the same."""

    def __init__(self, lexicon: Any, tokenizer: Any, n_units: int, lang: str | None = None,
                 prompt_len: int = 1, tail: int = 256):
        self.lexicon, self.tokenizer, self.lang = lexicon, tokenizer, lang
        self.n_units, self.prompt_len, self.tail = n_units, prompt_len, tail
        self._anchors: dict[int, tuple[str, int]] = {}  # row -> (text up to the anchor, units)

    def unit_of_last(self, produced: list[int], row: int = 0) -> int:
        """The unit the last of `produced` belongs to (-1 for none produced)."""
        if not produced:
            return -1
        text = self.tokenizer.decode(produced, skip_special_tokens=True)
        before = len(self.tokenizer.decode(produced[:-1], skip_special_tokens=True))
        last = text[before:]
        if last.strip(" "):  # a word's leading space goes with its word (ALIGNMENT_RULE)
            before += len(last) - len(last.lstrip(" "))
        head, units_before = self._anchors.get(row, ("", 0))
        if not text.startswith(head) or len(head) > before:  # another text: start again
            head, units_before = "", 0
        _, spans = self.lexicon.encode_with_spans(text[len(head):], self.lang)
        starts = [len(head) + a for a, _ in spans]
        unit = units_before + bisect.bisect_right(starts, before) - 1
        # move the anchor up to the last unit start at least `tail` characters behind the end
        k = bisect.bisect_right(starts, len(text) - self.tail) - 1
        if k > 0:
            self._anchors[row] = (text[: starts[k]], units_before + k)
        return min(unit, self.n_units - 1)

    def __call__(self, positions: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        out = torch.empty(ids.shape[0], len(positions), dtype=torch.int64)
        for b in range(ids.shape[0]):
            row = [int(t) for t in ids[b]]
            for j, pos in enumerate(positions.tolist()):
                # position pos reads the token at pos: produced tokens are those after the prompt
                out[b, j] = self.unit_of_last(row[self.prompt_len: pos + 1], b)
        return out.to(ids.device)


def pointer_for(decoder: Any, lexicon: Any, tokenizer: Any, n_units: int,
                lang: str | None = None, prompt_len: int = 1) -> LexiconPointer | None:
    """The pointer a decoder needs to generate: None for one that reads in render mode without
    rotary offsets (it needs none) and for one with a boundary head (it moves its own,
    :mod:`dualmind.model.boundary`). A decoder that needs one and no lexicon is an error."""
    if not decoder.cfg.follows_pointer or decoder.cfg.boundary_head:
        return None
    if lexicon is None:
        raise ValueError(f"this decoder reads in mask_mode={decoder.cfg.mask_mode!r}: it follows "
                         "its text through the hyperphrase, which needs the lexicon (pass it)")
    return LexiconPointer(lexicon, tokenizer, n_units, lang, prompt_len)
