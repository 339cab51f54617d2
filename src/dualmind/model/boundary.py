"""The boundary head: the decoder decides which unit its next token belongs to, then says it.

A pointing decoder reads the units around its pointer, the unit of the token it has just read.
In training the pointer comes from the shards' span ids; at generation something must move it.
Re-encoding the produced text with the lexicon (:mod:`dualmind.model.pointer`) follows a lossless
rendering, but a semantic one only as far as the words said re-encode to the thought's lemmas: a
rendering that strays never reaches the next lemma, the pointer stalls, and the decoder, reading
the same unit again, says the same words again ("these these these", benchmarks/RESULTS.md).

With the boundary head each position first predicts its *advance* a_i = unit(t_i) - pointer_i
(0: the next token continues the unit, 1: it starts the next one, up to ``max_advance``) from its
hidden state, and then the token given that unit: the chosen unit's state and copy-channel
embedding are added to the hidden state before the output head, and its surface tokens get a
bonus of their own. The next position's pointer is pointer_i + a_i. The text is coded as
(a_i, t_i) pairs, -log P(a_i) - log P(t_i | a_i): the alignment is no longer free side
information (for a semantic lexicon it was only approximately recoverable from the text) and the
code length is a valid code whatever the lexicon. Generation takes the likeliest advance, then
picks the token: the pointer moves because the decoder decided to move on, whatever words it
chose for the unit.

(A first version predicted the advance *after* the token, from the token: on the semantic level it
learned little more than the advances' marginal, and a rendering that said a lemma where the text
had an inflected word was judged to stay on its unit forever. RESULTS.md, decoder_reading.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dualmind.model.decoder_config import REMAINING, WITHIN_UNIT, DecoderConfig

LENGTH_GAIN = 16.0  # unit_lengths' tables are read times this: see BoundaryHead.__init__
OLD_START_BIAS = "at_start"  # the start bias's name when it was stored without its gain


def upgraded_start_bias(old: torch.Tensor) -> torch.Tensor:
    """A start bias stored without its gain (as ``at_start``), as ``start_bias`` holds it: the
    same logits."""
    return old / LENGTH_GAIN


class BoundaryHead(nn.Module):
    """The advance's logits from a position's hidden state (an MLP, plus a learned bias for a
    position still before its scene's first unit: there the next token nearly always enters the
    scene, though blank lines before a scene's first unit stay at -1); and what the chosen unit
    adds to the token's prediction (:meth:`condition`, :meth:`chosen_copy`). Output layers start at
    zero: the head starts uniform and the token prediction starts unconditioned."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        classes = cfg.max_advance + 1
        self.max_advance = cfg.max_advance
        self.hidden = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.out = nn.Linear(cfg.dim, classes)
        # read through LENGTH_GAIN like the length tables below: one bias, seen at one position
        # per scene, that must reach a logit of a few to decide the first move; without the gain
        # the equal-compute study's 136 align steps left its lossless head at P(enter) 0.39
        # where every training scene entered (the demo's semantic head: 0.34, where 89% enter;
        # 0.66 with the gain): renders began by repeating their first word or saying one from
        # nowhere ("WhatWhatWhat is ...")
        self.start_bias = nn.Parameter(torch.zeros(classes))
        # how many tokens of the pointer's unit were said already: a unit whose word is out
        # is likely done (a bias per count, 0..WITHIN_UNIT-1 and more)
        self.by_said = nn.Embedding(WITHIN_UNIT, classes)
        self.chosen_state = nn.Linear(cfg.memory_dim, cfg.dim, bias=False)
        # how many tokens of the chosen unit were said before this one: the first token of a
        # unit says its word, later ones finish it (a suffix, punctuation, a function word)
        self.within = nn.Embedding(WITHIN_UNIT, cfg.dim)
        self.chosen_bonus = (nn.Linear(cfg.dim, cfg.copy_slots, bias=False)
                             if cfg.copy_slots else None)
        # unit_lengths: how many of the pointer's unit's surface tokens are still unsaid (a
        # lossless unit whose surface is out is done), and a bonus on the chosen unit's surface
        # token at the slot it has reached. On a lossless corpus tokenized by units (corpus build
        # text_tokens) both decide 99.8% of the held-out demo's advances and tokens; tokenized as
        # whole scenes, 96% and 94% (the rest are BPE tokens across units).
        # Both are a handful of numbers that must reach logits of ~10 to decide anything; Adam
        # moves each by ~lr per step, so they are read through LENGTH_GAIN (150 steps at lr 2e-3
        # moved them by at most 0.3 without it, and they decided nothing: RESULTS.md)
        self.by_remaining = nn.Embedding(REMAINING, classes) if cfg.unit_lengths else None
        self.at_within = nn.Parameter(torch.zeros(WITHIN_UNIT)) if cfg.unit_lengths else None

    def forward(self, hidden: torch.Tensor, at_start: torch.Tensor, said: torch.Tensor,
                remaining: torch.Tensor | None = None) -> torch.Tensor:
        """hidden [...,dim], at_start bool [...] (pointer -1), said [...] (tokens of the
        pointer's unit said so far), with unit_lengths ``remaining`` [...] (its
        :func:`remaining_bucket`) -> advance logits [...,classes]."""
        logits = self.out(F.silu(self.hidden(hidden.to(self.hidden.weight.dtype)))).float()
        logits = logits + self.by_said(said.clamp(0, WITHIN_UNIT - 1)).float()
        if self.by_remaining is not None:
            if remaining is None:
                raise ValueError("unit_lengths: the advance head needs how many of the "
                                 "pointer's unit's surface tokens remain (remaining)")
            logits = logits + LENGTH_GAIN * self.by_remaining(remaining).float()
        start = LENGTH_GAIN * self.start_bias.float()
        return logits + at_start[..., None].float() * start

    def condition(self, hidden: torch.Tensor, memory: torch.Tensor, row: torch.Tensor,
                  inside: torch.Tensor, within: torch.Tensor) -> torch.Tensor:
        """hidden [B,T,dim] + a projection of what the chosen unit offers (memory [B,S,M] at
        row [B,T]; nothing where ``inside`` is False: before the scene's first unit) + how many
        of its tokens came before (``within`` [B,T])."""
        rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
        chosen = memory[rows, row.clamp(0, memory.shape[1] - 1)] * inside[..., None]
        chosen = self.chosen_state(chosen.to(self.chosen_state.weight.dtype))
        said = self.within(within.clamp(0, WITHIN_UNIT - 1))
        return hidden + (chosen + said.to(chosen.dtype)).to(hidden.dtype)

    def chosen_copy(self, logits: torch.Tensor, hidden: torch.Tensor,
                    surface_tokens: torch.Tensor, core_ids: torch.Tensor, row: torch.Tensor,
                    inside: torch.Tensor, within: torch.Tensor) -> torch.Tensor:
        """logits [B,T,V] + a bonus (per slot, decided by the hidden state) on the chosen unit's
        surface tokens: copying the unit it decided to say; with unit_lengths also a learned
        bonus (per ``within`` [B,T]) on the token at the slot it has reached."""
        units = core_ids.gather(1, row.clamp(0, core_ids.shape[1] - 1))  # [B,T]
        tokens = surface_tokens[units]  # [B,T,K]
        use = inside[..., None] & (tokens >= 0)
        bonus = self.chosen_bonus(hidden).to(logits.dtype)
        if self.at_within is not None:
            slot = torch.arange(tokens.shape[-1], device=tokens.device) == within[..., None]
            gain = LENGTH_GAIN * self.at_within[within.clamp(0, WITHIN_UNIT - 1)]
            bonus = bonus + slot * gain[..., None]
        return logits.scatter_add(2, tokens.clamp(min=0), bonus.to(logits.dtype) * use)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints before the start bias had its gain stored it unscaled as `at_start`:
        # rescaled on load, they compute exactly what they did
        old = state_dict.pop(prefix + OLD_START_BIAS, None)
        if old is not None and prefix + "start_bias" not in state_dict:
            state_dict[prefix + "start_bias"] = upgraded_start_bias(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def reset_parameters(self, std: float) -> None:
        nn.init.trunc_normal_(self.hidden.weight, std=std, a=-3 * std, b=3 * std)
        for part in (self.out.weight, self.out.bias, self.start_bias, self.chosen_state.weight,
                     self.within.weight, self.by_said.weight):
            nn.init.zeros_(part)
        if self.by_remaining is not None:
            nn.init.zeros_(self.by_remaining.weight)
            nn.init.zeros_(self.at_within)
        if self.chosen_bonus is not None:
            nn.init.zeros_(self.chosen_bonus.weight)


def remaining_bucket(surface_tokens: torch.Tensor, unit: torch.Tensor, said: torch.Tensor
                     ) -> torch.Tensor:
    """[...] the advance head's bucket of how many surface tokens of the pointer's unit
    (``unit`` [...], its core id, or -1 before a scene's first unit) are still unsaid after
    ``said`` [...]: 0 when unknown (no unit yet, a special unit with no surface, or a surface
    that fills every copy slot and may go on), else 2 + left (left clipped to -1..REMAINING-3,
    so buckets 1..REMAINING-1: overshot, none left, one left, ...)."""
    length = (surface_tokens[unit.clamp(min=0)] >= 0).sum(-1)
    known = (unit >= 0) & (length > 0) & (length < surface_tokens.shape[-1])
    return torch.where(known, (length - said).clamp(-1, REMAINING - 3) + 2, 0)


def advance_targets(text_span: torch.Tensor, pointer: torch.Tensor, max_advance: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(advance [B,T] of each position's predicted token from its pointer, clipped to
    max_advance; how many were clipped). Spans never go back within a scene, so the advance is
    >= 0; at a scene's first position the pointer is -1 and the advance is span + 1."""
    advance = text_span - pointer
    clipped = int((advance > max_advance).sum())
    return advance.clamp(0, max_advance), clipped


def tokens_before_in_unit(text_span: torch.Tensor, text_scene: torch.Tensor,
                          text_doc: torch.Tensor) -> torch.Tensor:
    """[B,T] how many earlier tokens of its scene the token each position predicts shares its
    unit with (0 for a unit's first token). Spans never go back within a scene, so a unit's
    tokens are one run; known to generation from the advances decided so far."""
    from dualmind.model.attention import positions_in_document

    changed = torch.ones_like(text_span, dtype=torch.bool)
    changed[:, 1:] = ((text_span[:, 1:] != text_span[:, :-1])
                      | (text_scene[:, 1:] != text_scene[:, :-1])
                      | (text_doc[:, 1:] != text_doc[:, :-1]))
    return positions_in_document(changed.cumsum(dim=1))


def tokens_said_at_pointer(text_span: torch.Tensor, text_scene: torch.Tensor,
                           text_doc: torch.Tensor) -> torch.Tensor:
    """[B,T] how many tokens of its pointer's unit came before each position (its input token
    and the ones before it in that unit; 0 at a scene's first position): what the advance is
    decided on, beside the hidden state."""
    within = tokens_before_in_unit(text_span, text_scene, text_doc)
    said = torch.zeros_like(within)
    same = (text_scene[:, 1:] == text_scene[:, :-1]) & (text_doc[:, 1:] == text_doc[:, :-1])
    said[:, 1:] = torch.where(same, within[:, :-1] + 1, 0)
    return said
