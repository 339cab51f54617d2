"""A unit's embedding composed from the BPE pieces of its lexicon surface (``model.unit_pieces``).

A hyperlexicon has many units and a small core sees each rare one a few times in a short run:
" rooms" learns nothing from " room". With ``unit_pieces=K`` each unit's row of the (tied)
embedding and head is its own row plus the mean of the rows of the first K pieces of its surface
(the corpus tokenizer's tokens: the same table as the decoder's copy channel,
:mod:`dualmind.train.surfaces`), rows every unit holding the piece shares and trains. The table is a
fixed function of the lexicon and the tokenizer, so the core's code stays a valid code. On the
demo's core (600 steps) it lowered held-out bits/byte from 1.837 to 1.807 at 8% more time a step
(benchmarks/RESULTS.md, unit_pieces).

The table is a buffer: a checkpoint or export carries it, so a core loads without its lexicon.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NO_PIECE = -1  # an empty slot of the table (dualmind.train.surfaces.NO_TOKEN)


class UnitPieces(nn.Module):
    def __init__(self, vocab_size: int, slots: int, piece_vocab: int, dim: int):
        super().__init__()
        self.piece_vocab = piece_vocab
        self.pieces = nn.Embedding(piece_vocab + 1, dim, padding_idx=piece_vocab)  # last: empty
        self.register_buffer("table", torch.full((vocab_size, slots), NO_PIECE,
                                                 dtype=torch.int64))
        self._cached: tuple[tuple, torch.Tensor] | None = None

    @torch.no_grad()
    def set_table(self, table: torch.Tensor) -> None:
        """long [vocab_size, slots]: each unit's first pieces, NO_PIECE where it has fewer."""
        if table.shape != self.table.shape:
            raise ValueError(f"a unit piece table of shape {tuple(table.shape)}, the core "
                             f"expects {tuple(self.table.shape)} (model.vocab_size, "
                             "model.unit_pieces)")
        if int(table.max()) >= self.piece_vocab or int(table.min()) < NO_PIECE:
            raise ValueError(f"unit piece ids run from {int(table.min())} to {int(table.max())}; "
                             f"model.piece_vocab={self.piece_vocab} holds ids 0..."
                             f"{self.piece_vocab - 1} (is it smaller than the corpus tokenizer?)")
        self.table.copy_(table)
        self._cached = None

    def init_weights(self, std: float) -> None:
        nn.init.trunc_normal_(self.pieces.weight, std=std, a=-3 * std, b=3 * std)
        with torch.no_grad():
            self.pieces.weight[self.piece_vocab].zero_()

    def forward(self, own: torch.Tensor) -> torch.Tensor:
        """own [V, D] (the units' own rows) -> [V, D] composed rows. Without grad (generation,
        scoring) the result is kept until a weight or the table changes."""
        key = (own._version, id(own), self.pieces.weight._version, self.table._version, own.device)
        if not torch.is_grad_enabled() and self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        slots = self.table.shape[1]
        ids = torch.where(self.table < 0, self.piece_vocab, self.table).reshape(-1)
        offsets = torch.arange(0, ids.numel(), slots, device=ids.device)
        # mode="mean" leaves the padding slots out of each unit's mean (a unit without pieces
        # gets zeros), so no count of the pieces a unit holds is kept or recomputed here.
        rows = own + F.embedding_bag(ids, self.pieces.weight, offsets, mode="mean",
                                     padding_idx=self.piece_vocab)
        self._cached = None if torch.is_grad_enabled() else (key, rows)
        return rows
