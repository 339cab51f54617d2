"""The numbers behind the report's pictures, taken from one real forward pass.

Attention runs through fused kernels (SDPA, flash, xformers) that never materialise the
attention weights, so the probabilities are recomputed here from what each attention module
really received: a forward pre-hook sees the module's input ``x`` and the forward's context
(the same RoPE cos/sin tables), projects q and k with the module's own weights, and applies
the same mask the kernel applied (causal within each document run; for cross-attention the
very SDPA mask with its always-visible null column). The tests hold the recomputation to the
module's real output (probabilities @ values, then ``wo``), so a picture cannot silently drift
from what the model computes.

Only the chosen layers and heads are recomputed: a 70B core's [heads, T, T] maps for every
layer would be gigabytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from dualmind.model.attention import segment_ids
from dualmind.model.rope import apply_rope


@dataclass
class AttentionCapture:
    """One attention module's recomputed probabilities and the inputs needed to verify them."""

    probs: torch.Tensor  # float32 [B, h, T, S] for the chosen heads h (rows sum to one)
    heads: list[int]
    allowed: torch.Tensor  # bool [B, T, S]: where the kernel's mask let a query look
    output: torch.Tensor | None = None  # the module's real output [B, T, dim] (for the tests)
    values: torch.Tensor | None = None  # values [B, S, heads, Dh] repeated to every query head


@dataclass
class CoreTrace:
    """What the report shows of one core forward."""

    logits: torch.Tensor  # [B, T, V] the model's own output
    hidden_states: tuple[torch.Tensor, ...]  # n_layers + 1 raw residual streams [B, T, D]
    attention: dict[int, AttentionCapture] = field(default_factory=dict)  # layer -> capture
    final_hidden: torch.Tensor | None = None  # [B, T, D] after the final norm (decoder input)


def causal_document_mask(doc_ids: torch.Tensor | None, batch: int, length: int) -> torch.Tensor:
    """bool [B, T, T]: query t may see key s iff s <= t and both lie in the same document run
    (the core's packing rule, see :func:`dualmind.model.attention.build_layout`)."""
    causal = torch.ones(length, length, dtype=torch.bool).tril()[None]
    if doc_ids is None:
        return causal.expand(batch, length, length)
    segments = segment_ids(doc_ids.cpu())
    return causal & (segments[:, :, None] == segments[:, None, :])


def softmax_probs(q: torch.Tensor, k: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """q [B,T,H,Dh], k [B,S,H,Dh] (heads already matched), allowed bool [B,T,S] or broadcastable
    -> float32 [B,H,T,S]; masked entries are exactly zero (exp(-inf))."""
    scale = q.shape[-1] ** -0.5
    scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * scale
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    return scores.softmax(dim=-1)


def _match_heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Grouped-query attention: repeat each key/value head over its group of query heads."""
    return t.repeat_interleave(n_heads // t.shape[2], dim=2) if t.shape[2] != n_heads else t


def _pick_heads(heads: Sequence[int] | None, n_heads: int) -> list[int]:
    chosen = list(range(n_heads)) if heads is None else [int(h) for h in heads]
    bad = [h for h in chosen if not 0 <= h < n_heads]
    if bad:
        raise ValueError(f"head(s) {bad} do not exist: the model has {n_heads} heads "
                         f"(0..{n_heads - 1})")
    return chosen


def _capture_hooks(module, key: int, captures: dict[int, AttentionCapture], recompute,
                   keep_values: bool) -> tuple:
    """Hook one attention module: before its forward, ``recompute(module, args)`` rebuilds the
    probabilities from the module's own inputs and is stored as ``captures[key]``; after it, with
    ``keep_values``, the module's real output is kept beside them (what rebuild_output is checked
    against). Returns both handles, for the caller to remove."""

    def before(mod, args):
        captures[key] = recompute(mod, args)

    def after(mod, args, output):
        if keep_values:
            captures[key].output = output.detach()

    return module.register_forward_pre_hook(before), module.register_forward_hook(after)


@torch.no_grad()
def trace_core(core, ids: torch.Tensor, doc_ids: torch.Tensor | None = None,
               layers: Sequence[int] = (), heads: Sequence[int] | None = None,
               keep_values: bool = False) -> CoreTrace:
    """Run ``core`` on ids [B,T] once and recompute the attention of ``layers`` (heads
    ``heads``, default all). ``keep_values`` also keeps values and the module outputs, so a
    test can rebuild the module's output from the probabilities."""
    B, T = ids.shape
    n_heads = core.cfg.n_heads
    chosen = _pick_heads(heads, n_heads)
    allowed = causal_document_mask(doc_ids, B, T).to(ids.device)
    captures: dict[int, AttentionCapture] = {}
    handles = []

    def recompute(mod, args) -> AttentionCapture:
        x, ctx = args[0], args[1]
        q = mod.wq(x).view(B, T, -1, mod.head_dim)
        k = mod.wk(x).view(B, T, -1, mod.head_dim)
        q, k = apply_rope(q, ctx.cos, ctx.sin), apply_rope(k, ctx.cos, ctx.sin)
        k = _match_heads(k, q.shape[2])
        probs = softmax_probs(q[:, :, chosen], k[:, :, chosen], allowed)
        values = None
        if keep_values:
            values = _match_heads(mod.wv(x).view(B, T, -1, mod.head_dim), q.shape[2])
        return AttentionCapture(probs, chosen, allowed, values=values)

    try:
        for layer in layers:
            if not 0 <= layer < len(core.layers):
                raise ValueError(f"layer {layer} does not exist: the core has "
                                 f"{len(core.layers)} layers (0..{len(core.layers) - 1})")
            handles += _capture_hooks(core.layers[layer].attention, layer, captures,
                                      recompute, keep_values)
        out = core(ids, doc_ids=doc_ids, return_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    return CoreTrace(out.logits, out.hidden_states, captures, out.hidden)


def rebuild_output(module, capture: AttentionCapture) -> torch.Tensor:
    """The attention module's output rebuilt from the recomputed probabilities (all heads must
    have been captured, with ``keep_values``): probs @ values, heads concatenated, ``wo``; and
    cross-attention's tanh gate when it has one."""
    probs, values = capture.probs, capture.values
    if values is None or probs.shape[1] != values.shape[2]:
        raise ValueError("rebuild_output needs every head captured with keep_values=True")
    mixed = torch.einsum("bhqk,bkhd->bqhd", probs, values.float())
    out = module.wo(mixed.reshape(*mixed.shape[:2], -1).to(module.wo.weight.dtype))
    gate = getattr(module, "gate", None)
    return torch.tanh(gate) * out if gate is not None else out


def logit_lens(core, hidden_states: Sequence[torch.Tensor], layers: Sequence[int],
               positions: Sequence[int], top: int = 3, row: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``top`` symbols each block's output would predict through the core's final norm and
    output head: (probabilities float32 [L, P, top], symbol ids [L, P, top]) for layers ``layers``
    (block indices; block i's output is hidden_states[i + 1]) at ``positions`` of batch ``row``.
    At the last block this is exactly the model's own output distribution."""
    pos = torch.as_tensor(list(positions), dtype=torch.long)
    with torch.no_grad():
        stack = torch.stack([hidden_states[layer + 1][row, pos] for layer in layers])
        probs = core.head(core.norm(stack)).float().softmax(dim=-1)
    values, ids = probs.topk(min(top, probs.shape[-1]), dim=-1)
    return values, ids


def lens_distribution(core, hidden_state: torch.Tensor) -> torch.Tensor:
    """The full lens distribution float32 [..., V] of raw residual states (tests compare it with
    the model's own softmax at the last layer)."""
    with torch.no_grad():
        return core.head(core.norm(hidden_state)).float().softmax(dim=-1)


def activation_norms(hidden_states: Sequence[torch.Tensor], row: int = 0) -> torch.Tensor:
    """float32 [n_layers + 1, T]: L2 norm of the residual stream per layer (0 = embeddings) and
    position."""
    return torch.stack([h[row].float().norm(dim=-1) for h in hidden_states])


def representation_drift(base: Sequence[torch.Tensor], other: Sequence[torch.Tensor],
                         row: int = 0) -> dict[str, torch.Tensor]:
    """How far ``other``'s residual streams moved from ``base``'s on the same input, per layer
    (0 = embeddings): relative L2 ||o - b|| / ||b|| and cosine similarity, each averaged over
    positions. float32 [n_layers + 1] each."""
    if len(base) != len(other):
        raise ValueError(f"the compared models have {len(base) - 1} and {len(other) - 1} layers")
    rel, cos = [], []
    for b, o in zip(base, other, strict=True):
        b, o = b[row].float(), o[row].float()
        rel.append(((o - b).norm(dim=-1) / b.norm(dim=-1).clamp_min(1e-12)).mean())
        cos.append(torch.nn.functional.cosine_similarity(o, b, dim=-1).mean())
    return {"relative_l2": torch.stack(rel), "cosine": torch.stack(cos)}


@dataclass
class DecoderTrace:
    logits: torch.Tensor  # [B, T, V]
    cross: dict[int, AttentionCapture]  # cross-attention index -> probabilities over 1 + S
    layers: list[int]  # decoder block index of each cross-attention index


@torch.no_grad()
def trace_decoder(decoder, text_ids: torch.Tensor, core_states: torch.Tensor, alignment,
                  cross: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                  mask_mode: str | None = None, keep_values: bool = False,
                  core_ids: torch.Tensor | None = None) -> DecoderTrace:
    """Run the decoder on text_ids [B,T] reading core_states [B,S,D] (core_ids [B,S]: the copy
    channel's input) under ``alignment``'s ``mask_mode`` mask (default: the decoder's own) and
    recompute the cross-attention probabilities of the cross-attention
    layers ``cross`` (indices into ``decoder.cross_layers``; default all). Column 0 of each map
    is the null slot (always visible); column 1 + s is core state s."""
    modules = decoder.cross_layers
    blocks = [i for i, b in enumerate(decoder.layers) if b.cross_attention is not None]
    chosen_layers = list(range(len(modules))) if cross is None else list(cross)
    for c in chosen_layers:
        if not 0 <= c < len(modules):
            raise ValueError(f"cross-attention layer {c} does not exist: the decoder has "
                             f"{len(modules)} (0..{len(modules) - 1})")
    n_heads = decoder.cfg.n_heads
    chosen = _pick_heads(heads, n_heads)
    captures: dict[int, AttentionCapture] = {}
    handles = []

    def recompute(mod, args) -> AttentionCapture:
        x, (k, v), sdpa_mask, query_positions = args
        B, T, _ = x.shape
        q = mod.wq(mod.q_norm(x)).view(B, T, -1, mod.head_dim)
        if mod.rope_theta is not None:  # the scores the layer computes: queries at the pointer
            q = apply_rope(q, *mod._angles(query_positions))
        k = _match_heads(k.to(q.dtype), q.shape[2])
        allowed = sdpa_mask[:, 0].expand(B, T, k.shape[1])
        probs = softmax_probs(q[:, :, chosen], k[:, :, chosen], allowed)
        values = _match_heads(v.to(q.dtype), q.shape[2]) if keep_values else None
        return AttentionCapture(probs, chosen, allowed, values=values)

    try:
        for c in chosen_layers:
            handles += _capture_hooks(modules[c], c, captures, recompute, keep_values)
        logits = decoder(text_ids, core_states=core_states, cross_mask=alignment,
                         mask_mode=mask_mode, core_ids=core_ids)
    finally:
        for h in handles:
            h.remove()
    return DecoderTrace(logits, captures, blocks)
