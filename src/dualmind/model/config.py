"""The hyper-core's shape: one plain dataclass, read from ``conf/model/<name>.yaml``.

``conf/model/*.yaml`` is the single source of truth for shapes; training, the planner, the dry run
and the tests all build a :class:`CoreConfig` from there. This module imports no torch, so the
planner can count parameters and FLOPs without loading it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

ATTN_BACKENDS = ("auto", "flash", "xformers", "sdpa")
INIT_SCHEMES = ("scaled", "depth")

# rope_scaling kinds and the keys each one takes (besides "type").
#   linear : positions are divided by `factor` (position interpolation, Chen et al. 2023).
#   ntk    : static "NTK-aware" scaling — the base becomes theta * factor ** (d / (d - 2)),
#            stretching low frequencies most and leaving the highest almost untouched.
#   llama3 : Llama 3.1's piecewise rule — wavelengths shorter than
#            original_max_seq_len / high_freq_factor are kept, those longer than
#            original_max_seq_len / low_freq_factor are divided by `factor`, and the band between
#            is interpolated smoothly. Same numbers as transformers' "llama3" rope type.
ROPE_SCALING_KEYS: dict[str, dict[str, bool]] = {  # key -> required?
    "linear": {"factor": True},
    "ntk": {"factor": True},
    "llama3": {
        "factor": True,
        "low_freq_factor": False,  # default 1.0
        "high_freq_factor": False,  # default 4.0
        "original_max_seq_len": True,
    },
}


class ConfigError(ValueError):
    """A model config that cannot describe a model; the message names the key (and file)."""


class StackConfig:
    """What :class:`CoreConfig` and ``DecoderConfig`` (a core-shaped text stack plus
    cross-attention) share: loading, and the attention widths.

    Both are flat dataclasses read from ``conf/<subdir>/<name>.yaml`` with the same rules (unknown
    keys are an error, missing required keys are named, errors carry the file); one copy of those
    rules keeps the two from drifting apart. A subclass sets ``config_kind`` (the word its error
    messages use: "model", "decoder") and ``conf_subdir``, and has the fields n_heads,
    n_kv_heads and head_dim.
    """

    config_kind: ClassVar[str]
    conf_subdir: ClassVar[str]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str | os.PathLike | None = None
                  ) -> Self:
        """Build from a mapping (a parsed yaml, or Hydra's ``cfg.model`` turned into a dict).

        Unknown keys are an error naming the key and ``source``, never silently dropped.
        """
        kind = cls.config_kind
        where = f" in {source}" if source is not None else ""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown {kind} config key(s) {unknown}{where}; "
                              f"known keys: {sorted(known)}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.name not in values)
        if missing:
            raise ConfigError(f"{kind} config{where} lacks required key(s) {missing}")
        values = dict(values)
        if values.get("rope_scaling") is not None:
            values["rope_scaling"] = dict(values["rope_scaling"])  # e.g. from an OmegaConf node
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{err}{where}") from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> Self:
        import yaml  # local: only file loading needs it

        path = Path(path)
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f)
        if not isinstance(values, Mapping):
            raise ConfigError(f"{path}: expected a mapping of {cls.config_kind} config keys, "
                              f"got {type(values).__name__}")
        return cls.from_dict(values, source=path)

    @classmethod
    def from_name(cls, name: str) -> Self:
        """``CoreConfig.from_name("mini")`` reads ``conf/model/mini.yaml``."""
        path = conf_dir() / cls.conf_subdir / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"no {cls.config_kind} shape named {name!r} ({path} does not "
                              f"exist); available: {conf_names(cls.conf_subdir)}")
        return cls.from_yaml(path)

    # ---- sizes ----

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim


@dataclass
class CoreConfig(StackConfig):
    """Shape and numerics of a Llama-style hyper-core.

    vocab_size      number of hyperphrase symbols (must be >= the lexicon's vocab_size)
    dim             width of the residual stream
    n_layers        transformer blocks
    n_heads         query heads
    n_kv_heads      key/value heads (grouped-query attention); None means n_heads (plain MHA)
    ffn_dim         hidden width of the SwiGLU feed-forward
    head_dim        per-head width; None means dim // n_heads
    norm_eps        RMSNorm epsilon
    rope_theta      RoPE base
    rope_scaling    None, or a dict with "type" in linear|ntk|llama3 (see ROPE_SCALING_KEYS)
    max_seq_len     longest sequence (in symbols) the model accepts; RoPE positions stay below it
    tie_embeddings  share the input embedding with the output head
    init_std        std of the normal init of embeddings and input projections
    init_scheme     how output projections (wo, w2) shrink with depth:
                    "scaled": init_std / sqrt(2 * n_layers) for every block (GPT-2, Megatron);
                    "depth":  init_std / sqrt(2 * (layer_id + 1)) (torchtitan's depth init)
    attn_backend    auto|flash|xformers|sdpa (see dualmind.model.attention)
    unit_pieces     0 (off), or K: each unit's embedding (tied with the head) is its own row plus
                    the mean of the first K BPE pieces of its lexicon surface, rows shared by every
                    unit that holds the piece (dualmind.model.unit_pieces); needs tie_embeddings
    piece_vocab     rows of the piece table: >= the corpus tokenizer's size (with unit_pieces)
    """

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    n_kv_heads: int | None = None
    head_dim: int | None = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    max_seq_len: int = 2048
    tie_embeddings: bool = False
    init_std: float = 0.02
    init_scheme: str = "scaled"
    attn_backend: str = "auto"
    unit_pieces: int = 0
    piece_vocab: int = 0

    config_kind: ClassVar[str] = "model"
    conf_subdir: ClassVar[str] = "model"

    def __post_init__(self) -> None:
        for key in ("vocab_size", "dim", "n_layers", "n_heads", "ffn_dim", "max_seq_len"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"model config: {key} must be a positive integer, got {value!r}")
        for key in ("norm_eps", "rope_theta", "init_std"):
            value = getattr(self, key)
            if isinstance(value, str):  # PyYAML reads 1e-5 (no dot) as a string
                try:
                    value = float(value)
                except ValueError:
                    raise ConfigError(f"model config: {key} must be a number, "
                                      f"got {value!r}") from None
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(f"model config: {key} must be a number, got {value!r}")
            setattr(self, key, float(value))
        if not isinstance(self.tie_embeddings, bool):
            raise ConfigError(f"model config: tie_embeddings must be true or false, "
                              f"got {self.tie_embeddings!r}")
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.n_kv_heads <= 0 or self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"model config: n_heads ({self.n_heads}) must be a multiple of "
                f"n_kv_heads ({self.n_kv_heads})"
            )
        if self.head_dim is None:
            if self.dim % self.n_heads:
                raise ConfigError(
                    f"model config: dim ({self.dim}) is not divisible by n_heads ({self.n_heads}); "
                    "set head_dim explicitly"
                )
            self.head_dim = self.dim // self.n_heads
        if self.head_dim <= 0 or self.head_dim % 2:
            raise ConfigError(f"model config: head_dim must be positive and even (RoPE rotates "
                              f"pairs), got {self.head_dim}")
        if self.attn_backend not in ATTN_BACKENDS:
            raise ConfigError(f"model config: attn_backend must be one of {ATTN_BACKENDS}, "
                              f"got {self.attn_backend!r}")
        if self.init_scheme not in INIT_SCHEMES:
            raise ConfigError(f"model config: init_scheme must be one of {INIT_SCHEMES}, "
                              f"got {self.init_scheme!r}")
        if self.rope_theta <= 0 or self.norm_eps <= 0 or self.init_std <= 0:
            raise ConfigError("model config: rope_theta, norm_eps and init_std must be positive")
        if self.rope_scaling is not None:
            self.rope_scaling = _check_rope_scaling(self.rope_scaling)
        for key in ("unit_pieces", "piece_vocab"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"model config: {key} must be an integer >= 0, got {value!r}")
        if self.unit_pieces and (self.piece_vocab < 1 or not self.tie_embeddings):
            raise ConfigError(f"model config: unit_pieces={self.unit_pieces} needs piece_vocab "
                              f">= 1 (got {self.piece_vocab}: the corpus tokenizer's size) and "
                              f"tie_embeddings true (got {self.tie_embeddings}): the composed "
                              "rows serve as the embedding and the head")

    # ---- construction: from_dict, from_yaml, from_name come from StackConfig ----

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/yaml-safe) that round-trips through :meth:`from_dict`."""
        d = dataclasses.asdict(self)
        if d["rope_scaling"] is not None:
            d["rope_scaling"] = dict(d["rope_scaling"])
        return d

    # ---- sizes (q_dim, kv_dim come from StackConfig) ----

    def block_params(self) -> int:
        """Parameters of one transformer block (attention, SwiGLU, two RMSNorm weights)."""
        attention = self.dim * self.q_dim + 2 * self.dim * self.kv_dim + self.q_dim * self.dim
        feed_forward = 3 * self.dim * self.ffn_dim
        return attention + feed_forward + 2 * self.dim

    def num_params(self) -> int:
        """Closed-form parameter count.

        Equals ``sum(p.numel() for p in HyperCore(cfg).parameters())`` (a tied embedding/head
        matrix counted once).
        """
        head = 0 if self.tie_embeddings else self.vocab_size * self.dim
        pieces = (self.piece_vocab + 1) * self.dim if self.unit_pieces else 0  # + a padding row
        return (self.n_layers * self.block_params() + self.dim + self.vocab_size * self.dim + head
                + pieces)

    def non_embedding_params(self) -> int:
        """Kaplan et al.'s N: every parameter except the embedding table and the output head."""
        return self.n_layers * self.block_params() + self.dim

    def matmul_params(self) -> int:
        """Weights that take part in a matmul per position: everything but the embedding lookup.

        The input table is a gather (no FLOPs); the output head is a real matmul, so with tied
        embeddings the shared matrix counts once, as the head. Norm weights are included (they are
        negligible, and torchtitan counts them too).
        """
        return self.n_layers * self.block_params() + self.dim + self.vocab_size * self.dim

    def flops_per_token(self, seq_len: int, training: bool = True, head: bool = True) -> float:
        """Model FLOPs per position, torchtitan's formula.

        training: 6·N + 12·L·H·Dh·T   (forward + backward; N = :meth:`matmul_params`)
        forward:  2·N +  4·L·H·Dh·T   (inference, ``training=False``)

        ``head=False``: a forward that stops at the hidden states (``compute_logits=False``, the
        frozen core under alignment), so N leaves out the output head's vocab·dim weights.

        The attention term counts QKᵀ and AV over the full ``seq_len`` context as torchtitan does
        (no halving for the causal mask). For packed sequences pass the attended length you want
        to charge (the pack length gives the conservative, comparable number).
        """
        if seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        n = self.matmul_params() - (0 if head else self.vocab_size * self.dim)
        attention = self.n_layers * self.n_heads * self.head_dim * seq_len
        if training:
            return float(6 * n + 12 * attention)
        return float(2 * n + 4 * attention)


def _check_rope_scaling(scaling: Mapping[str, Any]) -> dict[str, Any]:
    scaling = dict(scaling)
    kind = scaling.get("type")
    if kind not in ROPE_SCALING_KEYS:
        raise ConfigError(f"model config: rope_scaling.type must be one of "
                          f"{sorted(ROPE_SCALING_KEYS)}, got {kind!r}")
    allowed = ROPE_SCALING_KEYS[kind]
    for key in scaling:
        if key != "type" and key not in allowed:
            raise ConfigError(f"model config: rope_scaling key {key!r} is not used by type "
                              f"{kind!r} (allowed: {sorted(allowed)})")
    for key, required in allowed.items():
        if required and key not in scaling:
            raise ConfigError(f"model config: rope_scaling type {kind!r} needs key {key!r}")
    if not scaling["factor"] >= 1.0:
        raise ConfigError(
            f"model config: rope_scaling.factor must be >= 1, got {scaling['factor']}")
    if kind == "llama3":
        scaling.setdefault("low_freq_factor", 1.0)
        scaling.setdefault("high_freq_factor", 4.0)
        if not scaling["high_freq_factor"] > scaling["low_freq_factor"] > 0:
            raise ConfigError("model config: rope_scaling needs high_freq_factor > "
                              "low_freq_factor > 0")
    return scaling


def conf_dir() -> Path:
    """The repository's ``conf/`` directory: ``$DUALMIND_CONF_DIR`` if set, else beside ``src/``."""
    env = os.environ.get("DUALMIND_CONF_DIR")
    if env:
        path = Path(env)
        if not path.is_dir():
            raise ConfigError(f"DUALMIND_CONF_DIR={env} is not a directory")
        return path
    repo_conf = Path(__file__).resolve().parents[3] / "conf"
    if repo_conf.is_dir():
        return repo_conf
    packaged = Path(__file__).resolve().parents[1] / "conf"  # a wheel may ship conf/ inside
    if packaged.is_dir():
        return packaged
    raise ConfigError(f"cannot find the conf/ directory (looked at {repo_conf} and {packaged}); "
                      "set DUALMIND_CONF_DIR")


def conf_names(subdir: str) -> list[str]:
    """The config names (yaml stems) in ``conf/<subdir>/``."""
    return sorted(p.stem for p in (conf_dir() / subdir).glob("*.yaml"))


def available_shapes() -> list[str]:
    return conf_names("model")
