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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from dualmind.model.config import (
    ConfigError,
    CoreConfig,
    StackConfig,
    conf_names,
)

CORE_READS = ("final", "embed", "mix", "centred")
MASK_MODES = ("render", "stream", "pointer")  # dualmind.model.masks (which imports torch)
DEFAULT_POINTER_WINDOW = (-1, 2)  # the unit before the pointer's, its own, the next two
WITHIN_UNIT = 8  # boundary head: how far into its unit a token can be told apart (0..7, 7+)
REMAINING = 8  # boundary head, unit_lengths: buckets of surface tokens left (unknown, -1..5+)


def check_window(window: Any) -> tuple[int, int]:
    """A pointer window [lo, hi] as a tuple: integers with lo <= hi and hi >= 0 (a token must be
    able to read the unit it is at or a later one); ValueError otherwise."""
    if (not isinstance(window, Sequence) or isinstance(window, str) or len(window) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in window)
            or window[0] > window[1] or window[1] < 0):
        raise ValueError(f"pointer_window must be [lo, hi] with integers lo <= hi and hi >= 0 "
                         f"(a token must be able to read the unit it is at or a later one), "
                         f"got {window!r}")
    return int(window[0]), int(window[1])


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
    core_read       what of the frozen core the cross-attention reads (docs/alignment.md has the
                    measurements): ``final`` its final-norm states, ``embed`` its symbol
                    embeddings (layer 0), ``mix`` a learned softmax mix of every layer's
                    RMS-normed residual stream (needs core_layers), ``centred`` the final states
                    minus their mean over the scene (the shared direction removed)
    core_layers     the core's n_layers (``mix`` reads n_layers + 1 streams); filled from the
                    core's config by the align stage when left null
    cross_rope      rotate cross-attention queries by their pointer unit and keys by their unit
                    index, so attention scores see the offset between the unit a token is at and
                    each unit (with mask mode ``pointer``, see :mod:`dualmind.model.masks`)
    copy_slots      K > 0: the copy channel — each core position also offers the decoder's own
                    embeddings of the first K BPE tokens of its unit's surface in the lexicon
                    (lossless: the exact text; semantic: the lemma), so rendering a unit can copy
    core_vocab_size the core's vocabulary, the rows of the copy channel's surface table
    mask_mode       which core states each token may read (:mod:`dualmind.model.masks`):
                    ``render``, ``stream`` or ``pointer``; training, evaluation, the bridge and
                    the visualiser all read it from here, so they read the way it was trained
    pointer_window  [lo, hi]: in ``pointer`` mode a token reads the units pointer+lo..pointer+hi
    pointer_feed    also add, to each token's input, a learned projection of what the units
                    pointer+lo..pointer+hi offer (state and copy channel, zero where the mask
                    hides them): the unit it is at and the next one, without having to find
                    them by attention first
    copy_logits     the copy channel reaches the output too (a pointer-generator's copy
                    distribution): each of the surface tokens of units pointer+lo..pointer+hi
                    gets a logit bonus the token's hidden state decides, per (offset, slot);
                    rendering a lossless unit becomes "continue this unit or start the next"
    boundary_head   the decoder also codes where its text moves through the hyperphrase: each
                    position first predicts which unit its token belongs to (the advance from
                    its pointer: 0 = the same unit, 1 = the next, ... up to max_advance), then
                    the token given that unit (:mod:`dualmind.model.boundary`). Generation
                    follows its own decisions, no lexicon needed, and the pointer's bits are
                    charged in the decoder's code length.
    max_advance     the largest advance the boundary head can say (larger ones are clipped)
    unit_lengths    the boundary head also reads how many of its unit's surface tokens (the copy
                    channel's table) are still unsaid, and gives the token at the slot a unit has
                    reached a bonus of its own: a lossless unit is said by copying its surface
                    to its end (needs boundary_head and copy_slots)
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
    core_read: str = "final"
    core_layers: int | None = None
    cross_rope: bool = False
    copy_slots: int = 0
    core_vocab_size: int | None = None
    mask_mode: str = "render"
    pointer_window: tuple[int, int] = DEFAULT_POINTER_WINDOW
    pointer_feed: bool = False
    copy_logits: bool = False
    boundary_head: bool = False
    max_advance: int = 7
    unit_lengths: bool = False

    config_kind: ClassVar[str] = "decoder"
    conf_subdir: ClassVar[str] = "decoder"

    def __post_init__(self) -> None:
        for key in ("core_dim", "cross_every"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"decoder config: {key} must be a positive integer, "
                                  f"got {value!r}")
        for key in ("gated", "cross_rope", "pointer_feed", "copy_logits", "boundary_head",
                    "unit_lengths"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"decoder config: {key} must be true or false, got "
                                  f"{getattr(self, key)!r}")
        if self.core_read not in CORE_READS:
            raise ConfigError(f"decoder config: core_read must be one of {CORE_READS}, got "
                              f"{self.core_read!r}")
        if not isinstance(self.copy_slots, int) or self.copy_slots < 0:
            raise ConfigError(f"decoder config: copy_slots must be an integer >= 0, got "
                              f"{self.copy_slots!r}")
        if self.copy_logits and not self.copy_slots:
            raise ConfigError("decoder config: copy_logits needs the copy channel (copy_slots > 0)")
        if self.mask_mode not in MASK_MODES:
            raise ConfigError(f"decoder config: mask_mode must be one of {MASK_MODES}, got "
                              f"{self.mask_mode!r}")
        if (not isinstance(self.max_advance, int) or isinstance(self.max_advance, bool)
                or self.max_advance < 1):
            raise ConfigError(f"decoder config: max_advance must be an integer >= 1, got "
                              f"{self.max_advance!r}")
        if self.unit_lengths and not (self.boundary_head and self.copy_slots):
            raise ConfigError("decoder config: unit_lengths reads the units' surfaces in the "
                              "boundary head: it needs boundary_head and copy_slots > 0 (turning "
                              "either off? set decoder.unit_lengths=false too)")
        if self.boundary_head and not self.follows_pointer:
            raise ConfigError("decoder config: boundary_head moves a pointer, and this decoder "
                              "reads without one (mask_mode render, no cross_rope, pointer_feed "
                              "or copy_logits)")
        try:
            self.pointer_window = check_window(self.pointer_window)
        except ValueError as err:
            raise ConfigError(f"decoder config: {err}") from None
        for key in ("core_layers", "core_vocab_size"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"decoder config: {key} must be a positive integer or null, "
                                  f"got {value!r}")
        # The text stack validates the shared keys (and fills n_kv_heads/head_dim defaults).
        try:
            stack = self.text_stack()
        except ConfigError as err:
            raise ConfigError(str(err).replace("model config", "decoder config", 1)) from None
        self.n_kv_heads, self.head_dim = stack.n_kv_heads, stack.head_dim
        self.rope_scaling = stack.rope_scaling  # checked, defaults filled in

    # ---- construction: from_dict, from_yaml, from_name come from StackConfig ----

    @classmethod
    def for_core(cls, values: dict[str, Any], core: CoreConfig,
                 source: str = "cfg.decoder") -> DecoderConfig:
        """The decoder that reads this core: ``values`` checked against it, with core_layers /
        core_vocab_size (layer mix, copy channel) taken from the core when left null."""
        values = dict(values)
        for key, core_value in (("core_layers", core.n_layers),
                                ("core_vocab_size", core.vocab_size)):
            if values.get(key) is None:
                values[key] = core_value
            elif int(values[key]) != core_value:
                raise ConfigError(f"decoder.{key}={values[key]} but the core has {core_value}")
        decoder = cls.from_dict(values, source=source)
        if decoder.core_dim != core.dim:
            raise ConfigError(f"decoder.core_dim={decoder.core_dim} but the core's dim is "
                              f"{core.dim} (model.dim)")
        return decoder

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["pointer_window"] = list(self.pointer_window)  # YAML and JSON have no tuples
        return out

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
    def memory_dim(self) -> int:
        """Width of what each core position offers the cross-attention: the core's state, plus
        the copy channel's surface embedding (the decoder's width) when it is on."""
        return self.core_dim + (self.dim if self.copy_slots else 0)

    def reading_params(self) -> int:
        """Parameters outside the cross-attention layers that serve the reading: the layer mix's
        weights and the copy channel's per-slot scales."""
        mix = (self.core_layers + 1) if self.core_read == "mix" and self.core_layers else 0
        return (mix + self.copy_slots * self.dim + self.feed_width * self.dim
                + self.copy_logit_width * self.dim + self.boundary_params())

    def boundary_params(self) -> int:
        """The boundary head (:class:`dualmind.model.boundary.BoundaryHead`): the advance's MLP
        (dim -> dim -> classes, with bias) and start bias, the chosen unit's projection into the
        hidden state (memory_dim -> dim), its table of how far into the unit a token is and,
        with the copy channel, its per-slot bonus."""
        if not self.boundary_head:
            return 0
        # + the start bias, the tokens-into-the-unit table and the tokens-said bias (lookups)
        classes = self.max_advance + 1
        lengths = REMAINING * classes + WITHIN_UNIT if self.unit_lengths else 0
        return (self.boundary_matmul_params() + classes + WITHIN_UNIT * self.dim
                + WITHIN_UNIT * classes + lengths)

    def boundary_matmul_params(self) -> int:
        """The boundary head's weights each token multiplies: its FLOPs."""
        if not self.boundary_head:
            return 0
        return (self.dim * self.dim + (self.dim + 1) * (self.max_advance + 1)
                + self.memory_dim * self.dim + self.dim * self.copy_slots)

    @property
    def copy_logit_width(self) -> int:
        """Bonuses the copy logits decide per token: one per (window offset, surface slot)."""
        return len(self.window_offsets) * self.copy_slots if self.copy_logits else 0

    @property
    def follows_pointer(self) -> bool:
        """Whether what a token reads depends on where its text has reached: generation then
        needs a pointer (dualmind.model.pointer); render mode without positions does not."""
        return (self.mask_mode != "render" or self.cross_rope or self.pointer_feed
                or self.copy_logits)

    @property
    def window_offsets(self) -> list[int]:
        """Offsets from the pointer of the units in its window: lo .. hi."""
        lo, hi = self.pointer_window
        return list(range(lo, hi + 1))

    @property
    def feed_width(self) -> int:
        """Inputs of the pointer feed's projection: one memory vector per window offset."""
        return len(self.window_offsets) * self.memory_dim if self.pointer_feed else 0

    @property
    def cross_layers(self) -> list[int]:
        """Indices of the blocks that cross-attend to the core."""
        return list(range(0, self.n_layers, self.cross_every))

    @property
    def n_cross(self) -> int:
        """Cross-attention layers: at least one, since block 0 always reads the core."""
        return math.ceil(self.n_layers / self.cross_every)

    def cross_params(self) -> int:
        """One cross-attention sub-layer: query norm, key/value norm (over memory_dim), wq, wk,
        wv, wo, the null key and value, and the gate scalar if gated."""
        projections = (self.dim * self.q_dim + 2 * self.memory_dim * self.kv_dim
                       + self.q_dim * self.dim)
        return projections + self.dim + self.memory_dim + 2 * self.kv_dim + int(self.gated)

    def num_params(self) -> int:
        """Closed form; equals ``sum(p.numel() for p in LanguageDecoder(cfg).parameters())``."""
        return (self.text_stack().num_params() + self.n_cross * self.cross_params()
                + self.reading_params())

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
        per_core_state = 2 * self.memory_dim * self.kv_dim + self.memory_dim  # wk, wv, kv norm
        cross = self.n_cross * (per_token + per_core_state * core_len / seq_len)
        # once per core state, whatever the cross layers: the layer mix and the copy channel
        reading = (self.copy_slots * self.dim
                   + ((self.core_layers or 0) + 1) * self.core_dim * (self.core_read == "mix"))
        cross += reading * core_len / seq_len + (self.feed_width + self.copy_logit_width) * self.dim
        cross += self.boundary_matmul_params()  # once per token, like the output head
        cross_attention = self.n_cross * self.n_heads * self.head_dim * (core_len + 1)
        return (self.text_stack().flops_per_token(seq_len, training=training)
                + factor * cross + attn_factor * cross_attention)


def available_decoders() -> list[str]:
    return conf_names("decoder")
