"""The language decoder: speaks human language (BPE tokens) by reading the core's hidden states.

Its own causal self-attention stack is built from the core's layers (the same RMSNorm, RoPE,
SwiGLU, grouped-query attention and backends, imported from :mod:`dualmind.model.core`) and named
like the core's (``tok_embeddings``, ``layers.i.attention.wq``, ..., ``norm``, ``output``), so the
weights of a pretrained Llama-style LM of the same shape load into it; the cross-attention
sub-layers (``layers.i.cross_attention.*``) are the only new parameters, and with ``gated`` they
start switched off. Blocks 0, k, 2k, ... read the core (``cross_every`` = k): first the
cross-attention, then the block's self-attention and feed-forward (Flamingo's order).

The decoder only reads the core's states: it shares the core's layers, never its model class.
What it reads of them (final states, symbol embeddings, a layer mix, centred states) and the
copy channel beside them are :mod:`dualmind.model.core_reading`; which states each token may read
and where it points are the cross mask and pointer (:mod:`dualmind.model.masks`,
``cfg.mask_mode``).

Parallelism is applied from outside, as for the core (``fully_shard`` per ``layers`` element).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from dualmind.model import attention as attn
from dualmind.model.boundary import (
    BoundaryHead,
    advance_targets,
    remaining_bucket,
    tokens_before_in_unit,
)
from dualmind.model.core import (
    BatchContext,
    Block,
    RMSNorm,
    layout_and_rope,
    new_cache_for,
    resolve_positions,
)
from dualmind.model.core_reading import CopyLogits, CoreMemory, PointerFeed
from dualmind.model.cross_attention import CrossAttention, CrossKV, with_null
from dualmind.model.decoder_config import DecoderConfig
from dualmind.model.decoder_session import DecoderSession
from dualmind.model.kv_cache import KVCache
from dualmind.model.masks import Alignment, cross_positions
from dualmind.model.sampling import Generation, decode

# cross_mask_fn(positions [n], ids [B, L]) -> bool [B, n, S]: the mask rows of text positions
# `positions` given the tokens so far (ids includes them).
CrossMaskFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# pointer_fn(positions [n], ids [B, L]) -> long [B, n]: the unit each of the text positions
# `positions` points at (the unit of its input token, -1 before any), from the tokens so far:
# generation follows the text it produced (dualmind.model.pointer re-encodes it with the lexicon).
PointerFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DecoderContext(BatchContext):
    """The core's per-forward context plus what cross-attention needs: a plain slotted class like
    BatchContext, so FSDP2 mixed precision leaves the fp32 RoPE angles in it alone."""

    # cross_mask: with_null's SDPA form; query_positions: [B,T] rotary position of each token's
    # pointer (cross_rope), key_positions [B,S] of each state
    __slots__ = ("memory", "cross_kv", "cross_mask", "query_positions", "key_positions")

    def __init__(self, layout, cos, sin, cache, memory, cross_kv, cross_mask,
                 query_positions=None, key_positions=None):
        super().__init__(layout, cos, sin, cache)
        self.memory, self.cross_kv, self.cross_mask = memory, cross_kv, cross_mask
        self.query_positions, self.key_positions = query_positions, key_positions


class DecoderBlock(Block):
    """A core block, optionally preceded by cross-attention to the core's states."""

    def __init__(self, cfg: DecoderConfig, layer_id: int, cross_index: int | None):
        super().__init__(cfg.text_stack(), layer_id)
        self.cross_index = cross_index
        self.cross_attention = CrossAttention(cfg) if cross_index is not None else None

    def forward(self, x: torch.Tensor, ctx: DecoderContext) -> torch.Tensor:
        if self.cross_attention is not None:
            kv = (ctx.cross_kv[self.cross_index] if ctx.cross_kv is not None
                  else self.cross_attention.keys_values(ctx.memory, ctx.key_positions))
            x = x + self.cross_attention(x, kv, ctx.cross_mask, ctx.query_positions)
        return super().forward(x, ctx)


class LanguageDecoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        attn.check_installed(cfg.attn_backend)
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.memory = CoreMemory(cfg)
        self.feed = PointerFeed(cfg) if cfg.pointer_feed else None
        self.copy_logits = CopyLogits(cfg) if cfg.copy_logits else None
        self.boundary = BoundaryHead(cfg) if cfg.boundary_head else None
        cross = {layer: i for i, layer in enumerate(cfg.cross_layers)}
        self.layers = nn.ModuleList(DecoderBlock(cfg, i, cross.get(i))
                                    for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        self.init_weights()

    @property
    def cross_layers(self) -> list[CrossAttention]:
        return [b.cross_attention for b in self.layers if b.cross_attention is not None]

    # ---- forward ----

    def forward(self, text_ids: torch.Tensor, core_states: torch.Tensor | None = None,
                cross_mask: torch.Tensor | Alignment | None = None,
                doc_ids: torch.Tensor | None = None, *, mask_mode: str | None = None,
                core_ids: torch.Tensor | None = None,
                cross_pos: tuple[torch.Tensor, torch.Tensor] | None = None,
                positions: torch.Tensor | None = None, cache: KVCache | None = None,
                cross_kv: list[CrossKV] | None = None, compute_logits: bool = True,
                memory: torch.Tensor | None = None, return_hidden: bool = False,
                pointer: torch.Tensor | None = None, advance: torch.Tensor | None = None,
                within: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """text_ids [B,T], core_states [B,S,core_dim] (or [B,S,L+1,core_dim] for ``core_read:
        mix``; detached or not: the decoder never changes them) -> logits [B,T,V] (or the
        final-normed hidden [B,T,dim] with ``compute_logits=False``, for callers that compute
        the loss in chunks); with ``return_hidden`` (logits, hidden), for the boundary head.

        cross_mask  bool [B,T,S] (True = may attend), an :class:`Alignment` turned into one with
                    ``mask_mode`` (default: the config's) and ``cfg.pointer_window``, or None:
                    every token sees every core state.
        core_ids    [B,S] the hyperphrase's unit ids: the copy channel's input (copy_slots).
        cross_pos   (query [B,T], key [B,S]) rotary positions for ``cross_rope``; taken from an
                    Alignment when not given.
        doc_ids     [B,T] document per text token: self-attention and RoPE positions stay within
                    each document run, as in the core. Defaults to an Alignment's text_doc.
        cache, cross_kv   incremental decoding (see :meth:`generate`): the self-attention KV cache
                    and the cross keys/values and memory from :meth:`prepare_reading`,
                    computed once.
        pointer, advance, within  [B,T] with a boundary head: each position's unit in its scene
                    (-1 before the first), the advance to the unit of the token it predicts and
                    how many of that unit's tokens came before it, which the token's logits are
                    conditioned on; taken from an Alignment when not given.
        """
        B, T = text_ids.shape
        if text_ids.device.type != "meta":  # shape-only (meta) runs have no values to check
            low, high = (int(v) for v in torch.aminmax(text_ids))  # a CUDA gather would assert
            if low < 0 or high >= self.cfg.vocab_size:
                raise ValueError(f"text token id {high if high >= self.cfg.vocab_size else low} "
                                 f"is outside the decoder's vocabulary (vocab_size="
                                 f"{self.cfg.vocab_size}); was the text tokenizer trained larger "
                                 "than decoder.vocab_size?")
        if isinstance(cross_mask, Alignment):
            alignment = cross_mask
            if doc_ids is None:  # the documents it packs also bound self-attention
                doc_ids = alignment.text_doc
            if cross_pos is None and (self.cfg.cross_rope or self.cfg.pointer_feed
                                      or self.cfg.copy_logits):
                cross_pos = cross_positions(alignment)
            cross_mask = alignment.cross_mask(mask_mode or self.cfg.mask_mode,
                                              window=self.cfg.pointer_window)
            if self.boundary is not None:  # what the alignment says, unless given
                pointer = alignment.pointers() if pointer is None else pointer
                if advance is None:
                    advance = advance_targets(alignment.text_span, pointer,
                                              self.cfg.max_advance)[0]
                if within is None:
                    within = tokens_before_in_unit(alignment.text_span, alignment.text_scene,
                                                   alignment.text_doc)
        self._check_core(core_states, cross_kv, B)
        positions, past = resolve_positions(
            self.cfg, positions, doc_ids, cache, B, T, text_ids.device,
            too_long="text of {n} tokens is longer than the decoder's context")

        x = self.tok_embeddings(text_ids)
        if cross_kv is None:
            memory = self.read_memory(core_states, core_ids)
        n_states = memory.shape[1] if cross_kv is None else cross_kv[0][0].shape[1] - 1
        query_pos, key_pos = cross_pos if cross_pos is not None else (None, None)
        if self.feed is not None:
            if memory is None or query_pos is None:
                raise ValueError("pointer_feed: the decoder needs the memory (read_memory) and "
                                 "each token's pointer position beside cross_kv")
            x = self.feed(x, memory, query_pos, cross_mask)
        window_mask = cross_mask  # [B,T,S] or None, before the null column joins it
        cross_mask = with_null(cross_mask, B, T, n_states, x.device)
        ctx = DecoderContext(*layout_and_rope(self.cfg, x, doc_ids, positions, past), cache,
                             memory, cross_kv, cross_mask, query_pos, key_pos)
        for block in self.layers:
            x = block(x, ctx)
        if cache is not None:
            cache.advance(T)
        hidden = self.norm(x)
        if not compute_logits:
            return hidden
        logits = self.output_logits(hidden, memory=memory, core_ids=core_ids,
                                    query_pos=query_pos, window_mask=window_mask,
                                    pointer=pointer, advance=advance, within=within)
        return (logits, hidden) if return_hidden else logits

    def output_logits(self, hidden: torch.Tensor, *, memory: torch.Tensor | None,
                      core_ids: torch.Tensor | None, query_pos: torch.Tensor | None,
                      window_mask: torch.Tensor | None, pointer: torch.Tensor | None = None,
                      advance: torch.Tensor | None = None, within: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """[B,T,V] from the final-normed hidden [B,T,dim]: the output head, the copy logits over
        the pointer's window and, with a boundary head, conditioned on the unit each token was
        decided to belong to (pointer + advance) and how many of its tokens came before
        (``within``)."""
        row = inside = None
        if self.boundary is not None:
            if (memory is None or pointer is None or advance is None or within is None
                    or query_pos is None):
                raise ValueError("a decoder with a boundary head predicts each token given the "
                                 "unit it belongs to: it needs the memory, each position's "
                                 "pointer, its pointer's row (cross_pos), the advance and the "
                                 "unit's tokens before it (within)")
            row, inside = query_pos + advance, pointer + advance >= 0
            hidden = self.boundary.condition(hidden, memory, row, inside, within)
        logits = self.output(hidden)
        if self.copy_logits is not None:
            if core_ids is None or query_pos is None:
                raise ValueError("copy_logits: the decoder needs the core ids and each token's "
                                 "pointer position")
            logits = self.copy_logits(logits, hidden, self.memory.surface_tokens, core_ids,
                                      query_pos, window_mask)
        if self.boundary is not None and self.boundary.chosen_bonus is not None:
            if core_ids is None:
                raise ValueError("the boundary head copies from the chosen unit: pass core_ids")
            logits = self.boundary.chosen_copy(logits, hidden, self.memory.surface_tokens,
                                               core_ids, row, inside, within)
        return logits

    def advance_logits(self, hidden: torch.Tensor, pointer: torch.Tensor, said: torch.Tensor,
                       unit: torch.Tensor | None = None) -> torch.Tensor:
        """[...,max_advance+1]: which unit, from its pointer [...] (-1 before its scene's first),
        the token each position [...,dim] predicts belongs to (the boundary head); ``said``
        [...]: how many tokens of the pointer's unit came before the position
        (:func:`dualmind.model.boundary.tokens_said_at_pointer`); ``unit`` [...]: the pointer's
        core id (-1 before the first), needed with ``unit_lengths``."""
        if self.boundary is None:
            raise ValueError("this decoder has no boundary head (decoder.boundary_head=false)")
        remaining = None
        if self.cfg.unit_lengths:
            if unit is None:
                raise ValueError("unit_lengths: pass the pointer's unit (its core id) too")
            unit = torch.where(pointer < 0, -1, unit)
            remaining = remaining_bucket(self.memory.surface_tokens, unit, said)
        return self.boundary(hidden, pointer < 0, said, remaining)

    def _check_core(self, core_states, cross_kv, batch: int) -> None:
        if cross_kv is not None:
            if len(cross_kv) != self.cfg.n_cross:
                raise ValueError(f"cross_kv holds {len(cross_kv)} layers, the decoder has "
                                 f"{self.cfg.n_cross} cross-attention layers")
            return
        if core_states is None:
            raise ValueError("the decoder needs core_states [B,S,core_dim] (or cross_kv)")
        dims = 4 if self.cfg.core_read == "mix" else 3
        if core_states.dim() != dims or core_states.shape[0] != batch \
                or core_states.shape[-1] != self.cfg.core_dim:
            want = "S, L+1, " if dims == 4 else "S, "
            raise ValueError(f"core_states has shape {tuple(core_states.shape)}, expected "
                             f"({batch}, {want}{self.cfg.core_dim}) (core_dim and core_read "
                             f"{self.cfg.core_read!r} from the decoder config: was this decoder "
                             "built for another core, or the states read another way?)")

    def read_memory(self, core_states: torch.Tensor, core_ids: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """[B,S,memory_dim]: what each core position offers (the read states, the copy channel)."""
        return self.memory(core_states, core_ids, self.tok_embeddings)

    def cross_keys_values(self, core_states: torch.Tensor,
                          extend: list[CrossKV] | None = None,
                          core_ids: torch.Tensor | None = None) -> list[CrossKV]:
        """Every cross-attention layer's keys/values of these core states (null pair first).

        ``core_ids``: the states' unit ids (the copy channel's input, with copy_slots).
        ``extend``: keys/values computed earlier; ``core_states`` are then only the states the
        core added since, appended after the old ones (stream mode: the core reads on while the
        decoder speaks). Equal to computing them at once: norm, projections and rotary positions
        act per state.
        """
        start = 0 if extend is None else extend[0][0].shape[1] - 1
        fresh = self._keys_values(self.read_memory(core_states, core_ids), start)
        if extend is None:
            return fresh
        if len(extend) != len(fresh):
            raise ValueError(f"extend holds {len(extend)} layers, the decoder has {len(fresh)}")
        return [(torch.cat((k, nk[:, 1:]), dim=1), torch.cat((v, nv[:, 1:]), dim=1))
                for (k, v), (nk, nv) in zip(extend, fresh, strict=True)]

    def _keys_values(self, memory: torch.Tensor, start: int = 0) -> list[CrossKV]:
        B, S = memory.shape[:2]
        key_pos = torch.arange(start, start + S, device=memory.device).expand(B, S)
        return [layer.keys_values(memory, key_pos) for layer in self.cross_layers]

    def prepare_reading(self, core_states: torch.Tensor, core_ids: torch.Tensor | None = None
                        ) -> tuple[list[CrossKV], torch.Tensor | None]:
        """What incremental decoding reads, computed once: the cross keys/values and, for the
        pointer feed and the boundary head, the memory beside them (None without them): pass
        both to :meth:`forward` as ``cross_kv`` and ``memory``."""
        memory = self.read_memory(core_states, core_ids)
        needed = self.feed is not None or self.boundary is not None
        return self._keys_values(memory), memory if needed else None

    def new_cache(self, batch: int, max_len: int | None = None,
                  dtype: torch.dtype | None = None) -> KVCache:
        return new_cache_for(self.cfg, self.tok_embeddings.weight, batch, max_len, dtype)

    # ---- generation ----

    @torch.no_grad()
    def generate(self, core_states: torch.Tensor, prompt_ids: torch.Tensor,
                 max_new_tokens: int, *, cross_mask: torch.Tensor | None = None,
                 cross_mask_fn: CrossMaskFn | None = None, pointer_fn: PointerFn | None = None,
                 core_ids: torch.Tensor | None = None, temperature: float = 1.0,
                 top_k: int | None = None, eos_id: int | None = None,
                 generator: torch.Generator | None = None, return_logits: bool = False,
                 advance: str = "sample") -> Generation:
        """Continue ``prompt_ids`` [B,P] (at least one token, e.g. BOS) reading ``core_states``
        (one scene: a rendered scene or a thought, states 0..S-1).

        Which core states each token reads (:class:`DecoderSession`): a decoder with a boundary
        head follows its own predicted advances; else ``pointer_fn`` (see :data:`PointerFn`: the
        decoder follows the text it produced with its own ``mask_mode``, pointer window and
        rotary offsets, as it was trained; the pointer of the first position is -1), or for a
        decoder without a pointer: ``cross_mask`` bool [B,S] (every position the same row),
        [B,P+max_new_tokens,S] (a row per position), ``cross_mask_fn`` (see :data:`CrossMaskFn`),
        or none of them (everything). ``core_ids`` [B,S]: the copy channel's input.
        temperature 0 is greedy; ``top_k`` keeps the k likeliest tokens. A row that produced
        ``eos_id`` keeps producing it; generation stops early once every row has. ``advance``
        (a boundary head): ``sample`` draws each unit decision from the head (seeded by
        ``generator``), ``argmax`` takes the likeliest (which mostly stays: see
        :mod:`dualmind.model.decoder_session`).

        Self-attention keys/values are cached; the cross keys/values are computed once.
        """
        B, P = prompt_ids.shape
        if P < 1:
            raise ValueError("generate needs a prompt of at least one token (e.g. BOS)")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
        total = P + max_new_tokens
        if total > self.cfg.max_seq_len:
            raise ValueError(f"prompt of {P} + {max_new_tokens} new tokens is longer than the "
                             f"decoder's context (max_seq_len={self.cfg.max_seq_len})")
        if cross_mask is not None and cross_mask.dim() == 3 and cross_mask.shape[1] < total:
            raise ValueError(f"cross_mask has rows for {cross_mask.shape[1]} positions, "
                             f"generation needs {total} (prompt + max_new_tokens)")
        # No self.eval(): the decoder has no dropout or batch statistics, so the mode changes
        # nothing, and generating from a validation hook must not flip a training model.
        session = DecoderSession(self, core_states, B, total, core_ids=core_ids,
                                 pointer_fn=pointer_fn, cross_mask=cross_mask,
                                 cross_mask_fn=cross_mask_fn, advance=advance,
                                 generator=generator, eos_id=eos_id)
        return decode(prompt_ids, max_new_tokens, session.step, temperature=temperature,
                      top_k=top_k, eos_id=eos_id, generator=generator,
                      return_logits=return_logits)

    # ---- starting from a pretrained LM ----

    def load_language_model(self, state_dict: dict[str, torch.Tensor]) -> list[str]:
        """Load a pretrained LM into the text stack; return the cross-attention parameters left
        as initialised (the only new ones).

        ``state_dict`` uses the core's names (a ``HyperCore`` of ``cfg.text_stack()``'s shape,
        or ``llama_format.from_hf_state_dict(hf_weights, cfg.text_stack())``). Use ``gated``
        configs for this: with the gates at zero the decoder starts as exactly that LM. Any key
        missing, unexpected or of the wrong shape is an error naming it; nothing loads then.
        """
        own = self.state_dict()
        new = sorted(k for k in own if ".cross_attention." in k
                     or k.startswith(("memory.", "feed.", "copy_logits.", "boundary.")))
        expected = set(own) - set(new)
        problems = [f"missing {k}" for k in sorted(expected - set(state_dict))]
        problems += [f"unexpected {k}" for k in sorted(set(state_dict) - expected)]
        problems += [f"{k}: shape {tuple(state_dict[k].shape)}, the decoder's is "
                     f"{tuple(own[k].shape)}" for k in sorted(expected & set(state_dict))
                     if state_dict[k].shape != own[k].shape]
        if (self.cfg.tie_embeddings and "output.weight" in state_dict
                and not torch.equal(state_dict["output.weight"],
                                    state_dict.get("tok_embeddings.weight"))):
            problems.append("output.weight differs from tok_embeddings.weight, but the decoder "
                            "ties them (set tie_embeddings: false)")
        if problems:
            more = f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""
            raise ValueError("the language model does not fit the decoder's text stack: "
                             + "; ".join(problems[:8]) + more)
        self.load_state_dict(state_dict, strict=False)
        return new

    # ---- initialisation ----

    @torch.no_grad()
    def init_weights(self) -> None:
        """Same scheme as the core (normal(init_std), residual outputs shrunk by
        sqrt(2 * n_layers)); cross-attention: null key/value and gates start at zero."""
        if self.tok_embeddings.weight.device.type == "meta":
            return  # called again after to_empty()
        if self.cfg.tie_embeddings and self.output.weight is not self.tok_embeddings.weight:
            self.output.weight = self.tok_embeddings.weight  # a plain to_empty() unties them
        std = self.cfg.init_std
        out_std = std / math.sqrt(2 * self.cfg.n_layers)
        _normal(self.tok_embeddings.weight, std)
        if not self.cfg.tie_embeddings:
            _normal(self.output.weight, std)
        self.memory.reset_parameters()
        for part in (self.feed, self.copy_logits):
            if part is not None:
                part.reset_parameters()
        if self.boundary is not None:
            self.boundary.reset_parameters(std)
        for block in self.layers:
            block.init_weights(std, out_std, normal=_normal)
            if block.cross_attention is not None:
                block.cross_attention.init_weights(std, out_std)
        self.norm.reset_parameters()

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _normal(weight: torch.Tensor, std: float) -> None:
    # nn.init's truncated normal, not the core's faster redraw: the decoder's weights have always
    # been drawn this way, and a seed must keep giving the same decoder.
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-3 * std, b=3 * std)
