"""The language decoder's shape: a plain dataclass, read from ``conf/decoder/<name>.yaml``.

Like :mod:`dualmind.model.config` this module imports no torch, so the planner can count the
decoder's parameters and FLOPs without loading it. The decoder's own text stack (embeddings,
causal self-attention blocks, head) has exactly the shape of a Llama-style core over BPE tokens,
so its counts come from :meth:`DecoderConfig.text_stack` (a :class:`CoreConfig`) and only the
cross-attention layers are counted here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from dualmind.model.config import (
    ATTN_BACKENDS,
    ConfigError,
    CoreConfig,
    StackConfig,
    conf_names,
)


@dataclass
class DecoderConfig(StackConfig):
    """Shape of the language decoder.

    vocab_size      BPE text tokens (must be >= the corpus tokenizer's vocabulary)
    dim, n_layers, n_heads, n_kv_heads, ffn_dim, head_dim, norm_eps, rope_theta, rope_scaling,
    max_seq_len, tie_embeddings, init_std, attn_backend
                    as in CoreConfig, for the decoder's own causal self-attention stack
    cross_every     k: blocks 0, k, 2k, ... get a cross-attention sub-layer (so the first block
                    already reads the core and every later block can build on it)
    core_dim        hidden size of the core whose states the decoder reads (its keys/values input)
    gated           multiply each cross-attention output by tanh(g), g initialised to 0 (Flamingo):
                    a decoder initialised from a pretrained LM starts as exactly that LM
    """

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    core_dim: int
    cross_every: int = 1
    n_kv_heads: int | None = None
    head_dim: int | None = None
    gated: bool = False
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None  # as CoreConfig's (a Llama 3.1 LM needs llama3)
    max_seq_len: int = 2048
    tie_embeddings: bool = False
    init_std: float = 0.02
    attn_backend: str = "auto"

    config_kind: ClassVar[str] = "decoder"
    conf_subdir: ClassVar[str] = "decoder"

    def __post_init__(self) -> None:
        for key in ("core_dim", "cross_every"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"decoder config: {key} must be a positive integer, "
                                  f"got {value!r}")
        if not isinstance(self.gated, bool):
            raise ConfigError(f"decoder config: gated must be true or false, got {self.gated!r}")
        # The text stack validates the shared keys (and fills n_kv_heads/head_dim defaults).
        try:
            stack = self.text_stack()
        except ConfigError as err:
            raise ConfigError(str(err).replace("model config", "decoder config", 1)) from None
        self.n_kv_heads, self.head_dim = stack.n_kv_heads, stack.head_dim
        self.rope_scaling = stack.rope_scaling  # checked, defaults filled in

    # ---- construction: from_dict, from_yaml, from_name come from StackConfig ----

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def text_stack(self) -> CoreConfig:
        """The decoder without cross-attention, as a core config: what its self-attention blocks,
        embeddings and head are built from (and what a pretrained LM it starts from must match)."""
        return CoreConfig(vocab_size=self.vocab_size, dim=self.dim, n_layers=self.n_layers,
                          n_heads=self.n_heads, n_kv_heads=self.n_kv_heads, ffn_dim=self.ffn_dim,
                          head_dim=self.head_dim, norm_eps=self.norm_eps,
                          rope_theta=self.rope_theta,
                          rope_scaling=dict(self.rope_scaling) if self.rope_scaling else None,
                          max_seq_len=self.max_seq_len,
                          tie_embeddings=self.tie_embeddings, init_std=self.init_std,
                          attn_backend=self.attn_backend)

    # ---- sizes (q_dim, kv_dim come from StackConfig) ----

    @property
    def cross_layers(self) -> list[int]:
        """Indices of the blocks that cross-attend to the core."""
        return list(range(0, self.n_layers, self.cross_every))

    @property
    def n_cross(self) -> int:
        """Cross-attention layers: at least one, since block 0 always reads the core."""
        return math.ceil(self.n_layers / self.cross_every)

    def cross_params(self) -> int:
        """One cross-attention sub-layer: query norm, key/value norm (over core_dim), wq, wk, wv,
        wo, the null key and value, and the gate scalar if gated."""
        projections = (self.dim * self.q_dim + 2 * self.core_dim * self.kv_dim
                       + self.q_dim * self.dim)
        return projections + self.dim + self.core_dim + 2 * self.kv_dim + int(self.gated)

    def num_params(self) -> int:
        """Closed form; equals ``sum(p.numel() for p in LanguageDecoder(cfg).parameters())``."""
        return self.text_stack().num_params() + self.n_cross * self.cross_params()

    def flops_per_token(self, seq_len: int, core_len: int, training: bool = True) -> float:
        """Model FLOPs per text token, torchtitan's convention (6·N + attention when training,
        2·N + attention/3 for a forward).

        seq_len   text tokens each token's self-attention spans (the pack length)
        core_len  core states per sequence: each cross-attention query is charged the full
                  core_len + 1 keys (the null), like torchtitan charges full self-attention;
                  the key/value projections run once per core state, so they are charged
                  core_len / seq_len times per text token.
        Training counts 6× for the cross key/value projections too (conservative: the frozen
        core needs no input gradient, so 4× would be exact for them). The core's own FLOPs are
        not included: count core positions separately with CoreConfig.flops_per_token.
        """
        if seq_len <= 0 or core_len <= 0:
            raise ValueError(f"seq_len and core_len must be positive, got {seq_len}, {core_len}")
        factor, attn_factor = (6, 12) if training else (2, 4)
        per_token = self.dim * self.q_dim + self.q_dim * self.dim + self.dim  # wq, wo, q norm
        per_core_state = 2 * self.core_dim * self.kv_dim + self.core_dim  # wk, wv, kv norm
        cross = self.n_cross * (per_token + per_core_state * core_len / seq_len)
        cross_attention = self.n_cross * self.n_heads * self.head_dim * (core_len + 1)
        return (self.text_stack().flops_per_token(seq_len, training=training)
                + factor * cross + attn_factor * cross_attention)


def available_decoders() -> list[str]:
    return conf_names("decoder")


__all__ = ["ATTN_BACKENDS", "ConfigError", "DecoderConfig", "available_decoders"]
