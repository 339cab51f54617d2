"""What the language decoder reads of the frozen core, and the copy channel beside it.

Two halves, one per side of the freeze:

- :func:`read_core` runs the frozen core and returns the states ``DecoderConfig.core_read``
  names: ``final`` (final-norm states), ``embed`` (the symbol embeddings, layer 0), ``mix`` (every
  layer's residual stream, stacked [B,S,L+1,D], for the decoder's learned mix) or ``centred``
  (final states minus their mean over each scene). A young core's final states are nearly one
  vector (1 - cosine ~3e-4 on the demo core): what tells units apart is ~1% of each state's norm,
  so the choice matters (docs/alignment.md has the measurements).
- :class:`CoreMemory`, a decoder module, turns that into what each core position offers the
  cross-attention: the learned layer mix, and with ``copy_slots`` the decoder's own embeddings of
  the first K BPE tokens of the unit's surface in the lexicon. The hyperphrase is known to the
  decoder (the core codes it), so the copy channel keeps the code length a valid code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dualmind.model.decoder_config import CORE_READS, DecoderConfig

NO_TOKEN = -1  # an empty surface slot


def read_core(core: nn.Module, core_ids: torch.Tensor, read: str,
              doc_ids: torch.Tensor | None = None, scene_ids: torch.Tensor | None = None
              ) -> torch.Tensor:
    """The frozen core's view for the decoder: [B,S,D], or [B,S,L+1,D] for ``mix``.

    doc_ids: the core's document ids (packing); scene_ids [B,S]: which states form one scene
    for ``centred`` (default: the doc ids, or the whole row). Runs under no_grad, detached."""
    if read not in CORE_READS:
        raise ValueError(f"core_read must be one of {CORE_READS}, got {read!r}")
    with torch.no_grad():
        out = None
        if read != "embed":  # layer 0 needs no forward pass
            out = core(core_ids, doc_ids=doc_ids, compute_logits=False,
                       return_hidden_states=read == "mix")
        return view_of(out, read, core, core_ids, scene_ids if scene_ids is not None else doc_ids)


def view_of(out, read: str, core: nn.Module, core_ids: torch.Tensor,
            groups: torch.Tensor | None = None) -> torch.Tensor:
    """The ``read`` view of a core forward already run (``out``, a CoreOutput; with
    return_hidden_states for ``mix``; None is enough for ``embed``): what a caller that also
    needs the core's logits (evaluation) reads without a second forward. groups: the scene of
    each state, for ``centred``."""
    with torch.no_grad():
        if read == "embed":
            return core.embed(core_ids).detach()
        if read == "final":
            return out.hidden.detach()
        if read == "mix":
            return torch.stack(out.hidden_states, dim=2).detach()
        return centre(out.hidden, groups).detach()


def centre(states: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
    """states [B,S,D] minus the mean of the states with the same group id in their row."""
    if groups is None:
        return states - states.mean(dim=1, keepdim=True)
    B, S, D = states.shape
    ids = groups - groups.min(dim=1, keepdim=True).values  # >= 0 per row
    n = int(ids.max()) + 1
    sums = states.new_zeros(B, n, D).scatter_add_(1, ids[..., None].expand(B, S, D), states)
    counts = states.new_zeros(B, n).scatter_add_(1, ids, torch.ones_like(ids, dtype=states.dtype))
    means = sums / counts.clamp(min=1)[..., None]
    return states - means.gather(1, ids[..., None].expand(B, S, D))


class CoreMemory(nn.Module):
    """[B,S,D] or [B,S,L+1,D] core view (+ core ids) -> [B,S,memory_dim] for cross-attention."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.read, self.core_dim = cfg.core_read, cfg.core_dim
        self.mix = None
        if cfg.core_read == "mix":
            if not cfg.core_layers:
                raise ValueError("core_read=mix needs decoder.core_layers (the core's n_layers)")
            self.mix = nn.Parameter(torch.zeros(cfg.core_layers + 1))  # softmax: starts uniform
        self.slots = cfg.copy_slots
        if self.slots:
            if not cfg.core_vocab_size:
                raise ValueError("copy_slots needs decoder.core_vocab_size (the core's vocabulary)")
            # Filled from the lexicon by the align stage (dualmind.train.surfaces); saved with the
            # decoder so evaluation and the bridge copy the same surfaces.
            self.register_buffer("surface_tokens", torch.full(
                (cfg.core_vocab_size, self.slots), NO_TOKEN, dtype=torch.int64))
            self.slot_scale = nn.Parameter(torch.ones(self.slots, cfg.dim))

    def forward(self, view: torch.Tensor, core_ids: torch.Tensor | None,
                tok_embeddings: nn.Embedding) -> torch.Tensor:
        if self.mix is not None:
            if view.dim() != 4 or view.shape[2] != self.mix.numel():
                raise ValueError(f"core_read=mix expects core states [B,S,{self.mix.numel()},D] "
                                 f"(every layer, read_core(..., 'mix')), got {tuple(view.shape)}")
            normed = F.rms_norm(view.float(), (view.shape[-1],))
            view = torch.einsum("bsld,l->bsd", normed, self.mix.float().softmax(0)).to(view.dtype)
        if not self.slots:
            return view
        if core_ids is None:
            raise ValueError("the copy channel (copy_slots) needs the core ids beside the states")
        tokens = self.surface_tokens[core_ids]  # [B,S,K]
        emb = tok_embeddings(tokens.clamp(min=0)) * (tokens >= 0)[..., None]
        copy = (emb * self.slot_scale.to(emb.dtype)).sum(dim=2)
        return torch.cat((view.to(copy.dtype), copy), dim=-1)

    @torch.no_grad()
    def set_surfaces(self, table: torch.Tensor) -> None:
        if not self.slots:
            raise ValueError("this decoder has no copy channel (copy_slots=0)")
        if table.shape != self.surface_tokens.shape:
            raise ValueError(f"surface table has shape {tuple(table.shape)}, the decoder's is "
                             f"{tuple(self.surface_tokens.shape)} (core vocabulary x copy_slots)")
        self.surface_tokens.copy_(table)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        if self.mix is not None:
            nn.init.zeros_(self.mix)
        if self.slots:
            nn.init.ones_(self.slot_scale)


def window_units(query_pos: torch.Tensor, offsets: list[int], n_states: int,
                 mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(row index [B,T,W] of units pointer+o for each window offset o, clamped into the row;
    bool [B,T,W]: that unit exists and the token may read it)."""
    idx = query_pos[:, :, None] + torch.tensor(offsets, device=query_pos.device)
    inside = (idx >= 0) & (idx < n_states)
    idx = idx.clamp(0, n_states - 1)
    if mask is not None:  # [B,T,S]: only what this token may read
        inside &= mask.gather(2, idx)
    return idx, inside


class CopyLogits(nn.Module):
    """logits [B,T,V] + for each (offset o, slot k) the bonus Linear(h)[o,k] on the token in slot
    k of unit pointer+o's surface (none where the slot is empty or the mask hides the unit).
    Starts at zero: the decoder begins as it would without it."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.offsets = cfg.window_offsets
        self.bonus = nn.Linear(cfg.dim, cfg.copy_logit_width, bias=False)

    def forward(self, logits: torch.Tensor, hidden: torch.Tensor, surface_tokens: torch.Tensor,
                core_ids: torch.Tensor, query_pos: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = hidden.shape
        idx, inside = window_units(query_pos, self.offsets, core_ids.shape[1], mask)
        units = core_ids.gather(1, idx.flatten(1)).view(B, T, -1)  # [B,T,W]
        tokens = surface_tokens[units]  # [B,T,W,K]
        use = inside[..., None] & (tokens >= 0)
        bonus = self.bonus(hidden).view(B, T, *tokens.shape[2:]).to(logits.dtype) * use
        return logits.scatter_add(2, tokens.clamp(min=0).flatten(2), bonus.flatten(2))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        nn.init.zeros_(self.bonus.weight)


class PointerFeed(nn.Module):
    """x [B,T,dim] + W · concat over window offsets o of memory[pointer + o] (zero where the
    mask hides that unit or it lies outside the row): a token's input carries the unit it is at
    and the next ones directly. Starts at zero, so it adds nothing until training uses it."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.offsets = cfg.window_offsets
        self.proj = nn.Linear(cfg.feed_width, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        B = x.shape[0]
        idx, inside = window_units(query_pos, self.offsets, memory.shape[1], mask)
        rows = torch.arange(B, device=x.device)[:, None, None]
        feats = memory[rows, idx] * inside[..., None]  # [B,T,W,M]
        return x + self.proj(feats.flatten(2).to(self.proj.weight.dtype)).to(x.dtype)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        nn.init.zeros_(self.proj.weight)
