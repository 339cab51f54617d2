"""Incremental decoding over one batch of core states, and where each row's text has reached.

One :class:`DecoderSession` holds what every step shares: the cross keys/values (and the pointer
feed's memory) computed once, the self-attention KV cache, and each row's pointer. What a new
position reads comes from exactly one source:

- the decoder's own boundary head (``boundary_head``): each position decides which unit its
  token belongs to (the head's likeliest advance), and the next position points there
  (:mod:`dualmind.model.boundary`); nothing outside the decoder needed;
- a ``pointer_fn`` (:data:`dualmind.model.decoder.PointerFn`, e.g. the lexicon re-encoding of
  :mod:`dualmind.model.pointer`) for a pointing decoder without a head;
- for a decoder that reads without a pointer: a fixed ``cross_mask`` ([B,S] or a row per
  position), a ``cross_mask_fn``, or nothing (every state).

``decoder.generate``, the bridge's streaming render and the visualiser all step through it, so
they read the way the decoder was trained.
"""

from __future__ import annotations

import torch

from dualmind.model.masks import scene_rows

# The core's end-of-record symbol: Lexicon.EOS, the same id in every lexicon (a literal here:
# model/ sits below lexicon/ in the import layering, tests/test_import_graph.py). Alignment
# reads it after a record's last unit (train.align_datamodule.aligned_window), where the text's
# EOS follows; no text token belongs to it, so no pointer goes onto it.
RECORD_END = 2

# How a boundary head's advance is chosen at generation: drawn from its distribution (the
# default: the likeliest advance is "stay" for most tokens, and a rendering that always takes it
# never leaves its unit), or the likeliest one. (Choosing it jointly with its token, the advance
# whose best token is likeliest, was tried and loops: a unit's punctuation repeated under "stay"
# is surer than any next word; RESULTS.md, decoder_reading.)
ADVANCE_CHOICES = ("sample", "argmax")


class DecoderSession:
    def __init__(self, decoder, core_states: torch.Tensor, batch: int, max_len: int, *,
                 core_ids: torch.Tensor | None = None, pointer_fn=None, cross_mask=None,
                 cross_mask_fn=None, advance: str = "sample",
                 generator: torch.Generator | None = None, eos_id: int | None = None):
        if sum(x is not None for x in (cross_mask, cross_mask_fn, pointer_fn)) > 1:
            raise ValueError("pass one of cross_mask, cross_mask_fn and pointer_fn")
        cfg = decoder.cfg
        self.by_head = pointer_fn is None and decoder.boundary is not None
        if cfg.follows_pointer and pointer_fn is None and not self.by_head:
            raise ValueError(f"this decoder reads in mask_mode={cfg.mask_mode!r}"
                             f"{' with rotary offsets' if cfg.cross_rope else ''}: "
                             "generation needs a pointer_fn (dualmind.model.pointer)")
        if cfg.follows_pointer and (cross_mask is not None or cross_mask_fn is not None):
            raise ValueError("this decoder follows a pointer: a fixed cross_mask would read "
                             "other states than it was trained to")
        if advance not in ADVANCE_CHOICES:
            raise ValueError(f"advance must be one of {ADVANCE_CHOICES}, got {advance!r}")
        self.decoder, self.core_ids = decoder, core_ids
        self.advance, self.generator, self.eos_id = advance, generator, eos_id
        self.pointer_fn, self.cross_mask, self.cross_mask_fn = pointer_fn, cross_mask, cross_mask_fn
        self.cross_kv, self.memory = decoder.prepare_reading(core_states, core_ids)
        self.n_states = self.cross_kv[0][0].shape[1] - 1
        self.cache = decoder.new_cache(batch, max_len)
        device = decoder.tok_embeddings.weight.device
        self.pointer = torch.full((batch,), -1, dtype=torch.int64, device=device)
        ends = (core_ids[:, -1] == RECORD_END if core_ids is not None
                else torch.zeros(1, dtype=torch.bool))
        self.last_unit = (self.n_states - 1 - ends.long()).to(device).expand(batch)  # [B]: where
        # each row's text may end (its pointer goes no further, EOS is refused before it)
        self.within = torch.zeros((batch,), dtype=torch.int64, device=device)  # tokens of the
        # pointer's unit said so far (a boundary head's conditioning)
        self.pointers: list[torch.Tensor] = []  # [B] per position fed: the unit it pointed at
        self.chosen: list[torch.Tensor] = []  # [B] per position fed, with a boundary head: the
        # unit it decided its next token belongs to (the next position's pointer)
        self.length = 0  # positions fed so far

    def step(self, new_ids: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Feed ``new_ids`` [B,n] (the next n tokens; ``ids`` [B,L]: every token so far, the new
        ones last, needed by a pointer_fn or cross_mask_fn) -> logits [B,V] of the token after
        them. With a boundary head the last position first decides which unit that token
        belongs to (an advance drawn from the head, or its likeliest with ``advance="argmax"``),
        and the logits are the token's given that unit; with ``eos_id`` the end of text is
        refused until the chosen unit is the scene's last (in training a record's EOS always
        sits there; without the rule a render could end a few words in), and it is the only
        token left once the head moves on from that last unit."""
        if self.by_head and new_ids.shape[1] > 1:  # each position's pointer needs the one before
            for j in range(new_ids.shape[1]):
                logits = self.step(new_ids[:, j:j + 1])
            return logits
        start, stop = self.length, self.length + new_ids.shape[1]
        mask, pos = self._rows(start, stop, new_ids, ids)
        self.length = stop
        if not self.by_head:
            logits = self.decoder(new_ids, cross_mask=mask, cache=self.cache,
                                  cross_kv=self.cross_kv, cross_pos=pos, memory=self.memory,
                                  core_ids=self.core_ids)
            return logits[:, -1]
        hidden = self.decoder(new_ids, cross_mask=mask, cache=self.cache, cross_kv=self.cross_kv,
                              cross_pos=pos, memory=self.memory, compute_logits=False)
        at = self.pointer[:, None]
        # tokens of the pointer's unit said so far: the last position's token was its
        # (within + 1)-th, or none before the first position
        said = self.within + 1 if self.length > 1 else torch.zeros_like(self.within)
        unit = None
        if self.decoder.cfg.unit_lengths:  # one scene per row: the pointer is its row
            unit = self.core_ids.gather(1, at.clamp(min=0))
        scores = self.decoder.advance_logits(hidden, at, said[:, None], unit)[:, -1]
        if self.advance == "argmax":
            advance = scores.argmax(-1)[:, None]
        else:
            advance = torch.multinomial(scores.float().softmax(-1), 1, generator=self.generator)
        # the head moved on from the scene's last unit: its tokens are said and so is the scene
        done = (at[:, 0] == self.last_unit) & (advance[:, 0] > 0)
        advance = torch.minimum(advance, self.last_unit[:, None] - at)  # the last unit at most
        # the first token of a scene's first run is its first of that unit, like the first of
        # any unit it moves to; staying adds one more token to the unit
        within = torch.where((advance[:, 0] == 0) & (self.length > 1), self.within + 1, 0)
        logits = self.decoder.output_logits(hidden, memory=self.memory, core_ids=self.core_ids,
                                            query_pos=at, window_mask=mask, pointer=at,
                                            advance=advance, within=within[:, None])
        self.within = within
        self.pointer = (at + advance)[:, 0]  # the next position reads from the chosen unit
        self.chosen.append(self.pointer)
        logits = logits[:, -1]
        if self.eos_id is not None:  # a record's text ends at its last unit, so may a rendering
            is_eos = torch.arange(logits.shape[-1], device=logits.device) == self.eos_id
            early = self.pointer < self.last_unit
            logits = logits.masked_fill(early[:, None] & is_eos, float("-inf"))
            # and ends when the head leaves that unit: a young decoder's EOS, once per record in
            # training, is too rare to win on its own, and its rendering ran on at the last unit
            # with words no unit asked for ("night? . [ of be [ he[")
            logits = logits.masked_fill(done[:, None] & ~is_eos, float("-inf"))
        return logits

    def _rows(self, start: int, stop: int, new_ids: torch.Tensor, ids: torch.Tensor | None):
        cfg = self.decoder.cfg
        if self.by_head or self.pointer_fn is not None:
            if self.by_head:
                pointer = self.pointer[:, None]
            else:
                pointer = self.pointer_fn(torch.arange(start, stop, device=new_ids.device),
                                          self._need(ids))
            self.pointers.extend(pointer.unbind(1))
            mask = scene_rows(cfg.mask_mode, pointer, self.n_states, cfg.pointer_window)
            return mask, (pointer.clamp(min=-1), None)
        if self.cross_mask_fn is not None:
            return self.cross_mask_fn(torch.arange(start, stop, device=new_ids.device),
                                      self._need(ids)), None
        if self.cross_mask is None:
            return None, None
        if self.cross_mask.dim() == 2:
            return self.cross_mask[:, None, :].expand(-1, stop - start, -1), None
        return self.cross_mask[:, start:stop], None

    @staticmethod
    def _need(ids: torch.Tensor | None) -> torch.Tensor:
        if ids is None:
            raise ValueError("this session's pointer_fn / cross_mask_fn reads the tokens so far: "
                             "pass ids to step()")
        return ids
