"""The hyper-core: a Llama-style decoder-only transformer over hyperphrase symbols.

RMSNorm (pre-norm), RoPE, SwiGLU, grouped-query attention, tied or untied embeddings — the same
architecture and the same numbers as transformers' Llama, so Llama-format weights load directly
(``llama_format``) and a parity test holds us to it.

Packed sequences: pass ``doc_ids`` [B,T]; positions attend only within their document run, and
RoPE positions restart at 0 at every document (mathematically the masked attention only sees
differences of positions within a document, so this changes nothing there, but it keeps every
document's numbers identical to running it alone and keeps positions < max_seq_len).

What the decoder reads: ``CoreOutput.hidden`` is the residual stream after the final RMSNorm —
the very vectors the output head turns into symbol logits, on a fixed scale whatever the depth.

Parallelism is applied from outside (``fully_shard`` per element of ``model.layers`` and at the
root); nothing here knows about it. For meta-device construction, build under
``torch.device("meta")``, shard, materialise (``to_empty``) and call :meth:`HyperCore.init_weights`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dualmind.model import attention as attn
from dualmind.model.config import CoreConfig
from dualmind.model.kv_cache import KVCache
from dualmind.model.rope import apply_rope, inverse_frequencies, rope_cos_sin
from dualmind.model.sampling import Generation, decode
from dualmind.model.unit_pieces import UnitPieces


@dataclass
class CoreOutput:
    logits: torch.Tensor | None  # [B,T,V]; None when forward(compute_logits=False)
    hidden: torch.Tensor  # [B,T,D] after the final norm: what the decoder reads
    hidden_states: tuple[torch.Tensor, ...] | None = None
    # ^ with return_hidden_states: n_layers + 1 raw residual streams [B,T,D] — the embeddings,
    #   then the output of each block, before the final norm (apply model.norm + model.output to
    #   any of them for a logit lens).


class BatchContext:
    """What every block needs about this forward, computed once: the attention layout, the RoPE
    cos/sin of the positions, and the KV cache if decoding.

    A plain class on purpose, not a dataclass or tuple: FSDP2's mixed precision casts every
    floating tensor it finds in a block's arguments (dataclass fields included) to bf16, and RoPE
    angles in bf16 would lose precision at long positions. Objects it does not know pass untouched.
    """

    __slots__ = ("layout", "cos", "sin", "cache")

    def __init__(self, layout: attn.AttentionLayout, cos: torch.Tensor, sin: torch.Tensor,
                 cache: KVCache | None = None):
        self.layout, self.cos, self.sin, self.cache = layout, cos, sin, cache


# The core and the decoder (whose text stack is a core) prepare a forward the same way; these two
# helpers are that one preparation, so the two models cannot drift apart in how they number
# positions, pick the attention dtype or build RoPE. ``cfg`` is a CoreConfig or a DecoderConfig
# (both have max_seq_len, attn_backend, head_dim, rope_theta, rope_scaling).

def resolve_positions(cfg, positions: torch.Tensor | None, doc_ids: torch.Tensor | None,
                      cache: KVCache | None, batch: int, length: int, device: torch.device,
                      too_long: str) -> tuple[torch.Tensor, int]:
    """Check the new ``length`` positions fit the context and return (positions [B,T], past).

    past: positions already in ``cache`` (0 without one). positions, unless given: 0.. per
    document with ``doc_ids``, else past..past+T-1. ``too_long`` is the error's start, with
    ``{n}`` for the total length (it names the model's unit: symbols or tokens).
    """
    past = 0
    if cache is not None:
        cache.check_room(batch, length)
        past = cache.length
    if past + length > cfg.max_seq_len:
        raise ValueError(too_long.format(n=past + length)
                         + f" (max_seq_len={cfg.max_seq_len})")
    if positions is None:
        positions = (attn.positions_in_document(doc_ids) if doc_ids is not None
                     else torch.arange(past, past + length, device=device).expand(batch, length))
    elif positions.shape != (batch, length):
        raise ValueError(f"positions has shape {tuple(positions.shape)}, "
                         f"expected {(batch, length)}")
    return positions, past


def layout_and_rope(cfg, x: torch.Tensor, doc_ids: torch.Tensor | None,
                    positions: torch.Tensor, past: int
                    ) -> tuple[attn.AttentionLayout, torch.Tensor, torch.Tensor]:
    """The attention layout and RoPE (cos, sin) for embeddings ``x`` [B,T,D]: the first three
    fields of a :class:`BatchContext`."""
    B, T = x.shape[:2]
    dtype = x.dtype  # the dtype attention will see: autocast's, if on
    if x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    layout = attn.build_layout(cfg.attn_backend, doc_ids, B, T, x.device, dtype, past)
    inv_freq = inverse_frequencies(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling,
                                   device=x.device)
    return (layout, *rope_cos_sin(positions, inv_freq))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 (bf16 sums of squares lose too much), scale in the input dtype.
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x)
        return normed * self.weight

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)


class Attention(nn.Module):
    def __init__(self, cfg: CoreConfig, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        self.head_dim = cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.q_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.kv_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.kv_dim, bias=False)
        self.wo = nn.Linear(cfg.q_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        B, T, _ = x.shape
        # -1, not n_heads: under tensor parallelism each rank holds a slice of the heads
        q = self.wq(x).view(B, T, -1, self.head_dim)
        k = self.wk(x).view(B, T, -1, self.head_dim)
        v = self.wv(x).view(B, T, -1, self.head_dim)
        q, k = apply_rope(q, ctx.cos, ctx.sin), apply_rope(k, ctx.cos, ctx.sin)
        if ctx.cache is not None:  # the cache may hold another dtype (fp32 weights, autocast)
            k, v = (t.to(q.dtype) for t in ctx.cache.update(self.layer_id, k, v))
        out = attn.attend(q, k, v, ctx.layout)
        return self.wo(out.reshape(B, T, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, cfg: CoreConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)  # gate
        self.w3 = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)  # up
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)  # down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """One pre-norm transformer block; the unit FSDP and activation checkpointing wrap."""

    def __init__(self, cfg: CoreConfig, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attention = Attention(cfg, layer_id)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), ctx)
        return x + self.feed_forward(self.ffn_norm(x))

    @torch.no_grad()
    def init_weights(self, std: float, out_std: float,
                     normal: Callable[[torch.Tensor, float], None] | None = None) -> None:
        """Input projections (wq, wk, wv, w1, w3) normal(0, std), the residual outputs (wo, w2)
        normal(0, out_std), norms 1. ``normal`` draws the values (default: this module's
        truncated normal); the decoder passes its own, so its weights stay as they were drawn."""
        normal = normal or _normal
        for linear in (self.attention.wq, self.attention.wk, self.attention.wv,
                       self.feed_forward.w1, self.feed_forward.w3):
            normal(linear.weight, std)
        for linear in (self.attention.wo, self.feed_forward.w2):
            normal(linear.weight, out_std)
        self.attention_norm.reset_parameters()
        self.ffn_norm.reset_parameters()


class HyperCore(nn.Module):
    def __init__(self, cfg: CoreConfig):
        super().__init__()
        attn.check_installed(cfg.attn_backend)  # a forced, missing backend fails here, not later
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        self.unit_pieces = (UnitPieces(cfg.vocab_size, cfg.unit_pieces, cfg.piece_vocab, cfg.dim)
                            if cfg.unit_pieces else None)
        self.init_weights()

    # ---- forward ----

    def forward(self, ids: torch.Tensor, doc_ids: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, *, cache: KVCache | None = None,
                return_hidden_states: bool = False, compute_logits: bool = True) -> CoreOutput:
        """ids [B,T] symbol ids; doc_ids [B,T] document per position (packing) or None;
        positions [B,T] explicit RoPE positions, or None: 0.. per document, 0..T-1, or with a
        cache the next T positions after the cached ones.

        ``cache``: incremental decoding (see :meth:`new_cache`); the new positions attend to all
        cached ones, and the cache advances by T.
        ``compute_logits=False`` skips the output head (logits=None): callers that compute the
        loss in chunks from ``hidden`` (large vocabularies, long packs) avoid a [B,T,V] tensor.
        """
        B, T = ids.shape
        has_values = ids.device.type != "meta"  # shape-only (meta) runs skip value checks
        if has_values:
            low, high = (int(v) for v in torch.aminmax(ids))  # a CUDA gather would only assert
            if low < 0 or high >= self.cfg.vocab_size:
                bad = high if high >= self.cfg.vocab_size else low
                raise ValueError(f"symbol id {bad} is outside the model's vocabulary (vocab_size="
                                 f"{self.cfg.vocab_size}); was the lexicon built larger than "
                                 "model.vocab_size?")
        if cache is not None and doc_ids is not None:
            raise ValueError("a KV cache decodes one sequence per batch row: pass doc_ids "
                             "only without a cache")
        explicit = positions is not None
        positions, past = resolve_positions(
            self.cfg, positions, doc_ids, cache, B, T, ids.device,
            too_long="sequence of {n} symbols is longer than the model's context")
        # Explicit positions past the context: checked here, not in resolve_positions, because
        # the decoder has never checked its own and sharing the helper must not change that.
        if explicit and has_values and int(positions.max()) >= self.cfg.max_seq_len:
            raise ValueError(f"position {int(positions.max())} is beyond the model's context "
                             f"(max_seq_len={self.cfg.max_seq_len})")

        rows = self.unit_rows() if self.unit_pieces is not None else None  # once a forward
        x = self.embed(ids, rows)
        ctx = BatchContext(*layout_and_rope(self.cfg, x, doc_ids, positions, past), cache)

        states = [x] if return_hidden_states else None
        for block in self.layers:
            x = block(x, ctx)
            if states is not None:
                states.append(x)
        if cache is not None:
            cache.advance(T)
        hidden = self.norm(x)
        logits = self.head(hidden, rows) if compute_logits else None
        return CoreOutput(logits, hidden, tuple(states) if states is not None else None)

    def unit_rows(self) -> torch.Tensor:
        """[V, D]: the embedding and head rows the forward uses (with ``unit_pieces``, composed
        from each unit's own row and its surface's pieces; else the embedding itself)."""
        if self.unit_pieces is None:
            return self.tok_embeddings.weight
        return self.unit_pieces(self.tok_embeddings.weight)

    def head_weight(self) -> torch.Tensor:
        """[V, D]: the output head's weight as the forward applies it (a chunked loss reads it)."""
        return self.output.weight if self.unit_pieces is None else self.unit_rows()

    def head(self, hidden: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of final-normed ``hidden`` [..., D], as the forward computes them (``rows``:
        the composed unit rows when the caller has them already)."""
        if self.unit_pieces is None:
            return self.output(hidden)
        return F.linear(hidden, self.unit_rows() if rows is None else rows)

    def embed(self, ids: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The symbol embeddings of ``ids`` the first block reads (``rows`` as for head)."""
        if self.unit_pieces is None:
            return self.tok_embeddings(ids)
        return F.embedding(ids, self.unit_rows() if rows is None else rows)

    def new_cache(self, batch: int, max_len: int | None = None,
                  dtype: torch.dtype | None = None) -> KVCache:
        """An empty KV cache on the model's device (dtype: the model's, unless given)."""
        return new_cache_for(self.cfg, self.tok_embeddings.weight, batch, max_len, dtype)

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, max_new: int, *, temperature: float = 1.0,
                 top_k: int | None = None, eos_id: int | None = None,
                 generator: torch.Generator | None = None, return_logits: bool = False
                 ) -> Generation:
        """Continue ``prompt_ids`` [B,P] (P >= 1, e.g. BOS) by ``max_new`` symbols: the core
        "thinking" in hyperphrase symbols. temperature 0 is greedy; a row that produced
        ``eos_id`` keeps producing it, and generation stops once every row has. The train/eval
        mode is left as it is (the core has no dropout)."""
        B, P = prompt_ids.shape
        if P < 1 or max_new < 1:
            raise ValueError(f"generate needs a prompt (got {P} ids) and max_new >= 1 "
                             f"(got {max_new})")
        if P + max_new > self.cfg.max_seq_len:
            raise ValueError(f"prompt of {P} + {max_new} new symbols is longer than the model's "
                             f"context (max_seq_len={self.cfg.max_seq_len})")
        cache = self.new_cache(B, P + max_new)

        def step(new_ids: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            return self(new_ids, cache=cache).logits[:, -1]

        return decode(prompt_ids, max_new, step, temperature=temperature, top_k=top_k,
                      eos_id=eos_id, generator=generator, return_logits=return_logits)

    # ---- initialisation ----

    @torch.no_grad()
    def init_weights(self) -> None:
        """(Re)initialise every parameter in place; call after materialising from ``meta``.

        Embeddings and input projections (wq, wk, wv, w1, w3, untied head): normal(0, init_std)
        truncated at ±3σ. Output projections of each block (wo, w2), which add into the residual
        stream, are shrunk with depth (``init_scheme``) so the stream's variance does not grow with
        the number of blocks. Norm weights: 1.
        """
        cfg, std = self.cfg, self.cfg.init_std
        if self.tok_embeddings.weight.device.type == "meta":
            return  # nothing to fill yet; called again after to_empty()
        if cfg.tie_embeddings and self.output.weight is not self.tok_embeddings.weight:
            self.output.weight = self.tok_embeddings.weight  # a plain to_empty() unties them
        _normal(self.tok_embeddings.weight, std)
        if not cfg.tie_embeddings:
            _normal(self.output.weight, std)
        if self.unit_pieces is not None:
            self.unit_pieces.init_weights(std)
        for block in self.layers:
            depth = 2 * cfg.n_layers if cfg.init_scheme == "scaled" else 2 * (block.layer_id + 1)
            block.init_weights(std, std / math.sqrt(depth))
        self.norm.reset_parameters()

    def num_params(self) -> int:
        """Counted from the live parameters (shared tied matrix once); equals cfg.num_params()."""
        return sum(p.numel() for p in self.parameters())


def new_cache_for(cfg, weight: torch.Tensor, batch: int, max_len: int | None,
                  dtype: torch.dtype | None) -> KVCache:
    """An empty KV cache for a core-shaped stack (``cfg``: CoreConfig or DecoderConfig), on
    ``weight``'s device and, unless ``dtype`` is given, in its dtype."""
    return KVCache(cfg.n_layers, batch, max_len or cfg.max_seq_len, cfg.n_kv_heads,
                   cfg.head_dim, device=weight.device, dtype=dtype or weight.dtype)


def _normal(weight: torch.Tensor, std: float) -> None:
    """Normal(0, std) truncated at ±3σ, by redrawing the 0.27% outside (nn.init.trunc_normal_'s
    erfinv is ~30x slower on CPU than normal_, which made building even the mini core slow)."""
    weight.normal_(0.0, std)
    for _ in range(3):  # after three redraws about 2e-8 of the values are still outside...
        redraw = torch.empty_like(weight).normal_(0.0, std)
        weight.copy_(torch.where(weight.abs() > 3 * std, redraw, weight))
    weight.clamp_(-3 * std, 3 * std)  # ...and those are put on the boundary
