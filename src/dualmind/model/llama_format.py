"""Llama-format weights <-> HyperCore: start a core from Llama weights, or hand one to Llama tools.

Two source layouts exist:
- transformers (``LlamaForCausalLM.state_dict()``, safetensors on model hubs): the same RoPE layout
  as the core (rotate_half pairs feature i with i + head_dim/2), so tensors map by name only.
- Meta's original ``consolidated.*.pth``: RoPE pairs neighbours (2i, 2i+1), so the rows of wq and
  wk are permuted into the half-split layout — the permutation transformers' converter applies.

Nothing is downloaded here; callers bring a state dict.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dualmind.model.config import CoreConfig

if TYPE_CHECKING:
    from dualmind.model.core import HyperCore

# HyperCore name <- transformers name, per block ({i} = layer index)
_HF_BLOCK = {
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "attention_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
_HF_TOP = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def core_config_from_hf(hf_config: Any, **overrides: Any) -> CoreConfig:
    """CoreConfig with the shape and numerics of a Llama config: a transformers ``LlamaConfig``
    or the dict of its ``config.json``.

    Supports rope types default, linear and llama3 (transformers 4.x ``rope_scaling`` or 5.x
    ``rope_parameters``); others (yarn, dynamic, longrope), biases and activations other than
    SiLU raise ValueError.
    """
    if isinstance(hf_config, Mapping):
        get = hf_config.get
    else:
        def get(key: str, default: Any = None) -> Any:
            return getattr(hf_config, key, default)
    params = {**(get("rope_scaling") or {}), **(get("rope_parameters") or {})}
    theta = params.get("rope_theta", get("rope_theta", 10000.0))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        scaling = None
    elif kind == "linear":
        scaling = {"type": "linear", "factor": params["factor"]}
    elif kind == "llama3":
        scaling = {"type": "llama3", "factor": params["factor"],
                   "low_freq_factor": params["low_freq_factor"],
                   "high_freq_factor": params["high_freq_factor"],
                   "original_max_seq_len": params["original_max_position_embeddings"]}
    else:
        raise ValueError(f"rope type {kind!r} of this Llama config is not supported by the core "
                         "(supported: default, linear, llama3)")
    if get("attention_bias", False) or get("mlp_bias", False):
        raise ValueError("Llama configs with attention_bias/mlp_bias are not supported by the core")
    if get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {get('hidden_act')!r} is not supported (the core's SwiGLU "
                         "uses silu)")
    values = dict(
        vocab_size=get("vocab_size"), dim=get("hidden_size"), n_layers=get("num_hidden_layers"),
        n_heads=get("num_attention_heads"),
        n_kv_heads=get("num_key_value_heads") or get("num_attention_heads"),
        ffn_dim=get("intermediate_size"), head_dim=get("head_dim"), norm_eps=get("rms_norm_eps"),
        rope_theta=float(theta), rope_scaling=scaling, max_seq_len=get("max_position_embeddings"),
        tie_embeddings=bool(get("tie_word_embeddings", False)),
    )
    values.update(overrides)
    return CoreConfig(**values)


def load_hf_checkpoint(directory: str | os.PathLike, dtype: torch.dtype | None = None,
                       **overrides: Any) -> HyperCore:
    """A HyperCore holding the weights of a local Llama checkpoint directory (``config.json`` and
    ``model.safetensors`` or sharded ``model-*.safetensors`` with their index), as written by
    ``save_pretrained``. Needs no transformers; nothing is downloaded.

    A Llama's vocabulary is BPE tokens, not hyperphrase symbols: such weights serve to verify the
    architecture and as a warm start, not as a ready core.
    """
    from safetensors.torch import load_file

    from dualmind.model.core import HyperCore

    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: not a Llama checkpoint directory")
    cfg = core_config_from_hf(json.loads(config_path.read_text()), **overrides)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (directory / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"no model.safetensors (or its index) in {directory}")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        state.update(load_file(directory / name))
    with torch.device("meta"):
        model = HyperCore(cfg)
    core_state = from_hf_state_dict(state, cfg)
    if dtype is not None:
        core_state = {k: v.to(dtype) for k, v in core_state.items()}
    model.load_state_dict(core_state, assign=True)
    if cfg.tie_embeddings:
        model.output.weight = model.tok_embeddings.weight  # assign=True replaced them one by one
    return model


def from_hf_state_dict(state_dict: Mapping[str, torch.Tensor], cfg: CoreConfig
                       ) -> dict[str, torch.Tensor]:
    """Rename a ``LlamaForCausalLM`` state dict to HyperCore names (strict: every tensor is used).

    Load the result with ``model.load_state_dict(result)``. Unexpected or missing tensors raise
    KeyError naming them; shapes are checked by ``load_state_dict``.
    """
    rename = _hf_names(cfg)  # hf name -> core name
    out: dict[str, torch.Tensor] = {}
    unused = []
    for name, tensor in state_dict.items():
        if name in rename:
            out[rename[name]] = tensor
        elif not name.endswith("rotary_emb.inv_freq"):  # old checkpoints stored this buffer
            unused.append(name)
    if cfg.tie_embeddings and "tok_embeddings.weight" in out:
        # A tied head is the embedding itself (transformers may or may not list lm_head).
        head = out.setdefault("output.weight", out["tok_embeddings.weight"])
        if not torch.equal(head, out["tok_embeddings.weight"]):
            raise ValueError("tie_embeddings=True but lm_head.weight differs from embed_tokens")
    missing = sorted(set(rename.values()) - set(out))
    if unused or missing:
        raise KeyError(f"Llama state dict does not match the core config: unexpected "
                       f"{sorted(unused)[:8]}, missing {missing[:8]}")
    return out


def to_hf_state_dict(core_state: Mapping[str, torch.Tensor], cfg: CoreConfig
                     ) -> dict[str, torch.Tensor]:
    """The inverse of :func:`from_hf_state_dict` (for exporting a core to Llama tooling)."""
    if cfg.unit_pieces:  # its embed_tokens would be the units' own rows without their pieces
        raise ValueError(f"a core with model.unit_pieces={cfg.unit_pieces} composes each unit's "
                         "row from its own and its pieces' (dualmind.model.unit_pieces); a Llama "
                         "state dict holds one plain embedding: export it with `dualmind export` "
                         "(the dualmind format) instead")
    rename = {core: hf for hf, core in _hf_names(cfg).items()}
    return {rename[name]: t for name, t in core_state.items() if name in rename}


def from_meta_state_dict(state_dict: Mapping[str, torch.Tensor], cfg: CoreConfig
                         ) -> dict[str, torch.Tensor]:
    """Meta's original Llama checkpoint (one shard) -> HyperCore names and RoPE layout."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if name == "rope.freqs":
            continue
        if re.fullmatch(r"layers\.\d+\.attention\.wq\.weight", name):
            tensor = interleaved_to_half(tensor, cfg.n_heads, cfg.head_dim)
        elif re.fullmatch(r"layers\.\d+\.attention\.wk\.weight", name):
            tensor = interleaved_to_half(tensor, cfg.n_kv_heads, cfg.head_dim)
        out[name] = tensor  # Meta's names are the core's names
    return out


def interleaved_to_half(w: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Reorder the output rows of a q/k projection from (2i, 2i+1) RoPE pairs to (i, i+Dh/2)."""
    return (w.view(n_heads, head_dim // 2, 2, -1).transpose(1, 2).reshape(n_heads * head_dim, -1))


def half_to_interleaved(w: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    return (w.view(n_heads, 2, head_dim // 2, -1).transpose(1, 2).reshape(n_heads * head_dim, -1))


def _hf_names(cfg: CoreConfig) -> dict[str, str]:
    names = {hf: core for core, hf in _HF_TOP.items()}
    for i in range(cfg.n_layers):
        for core, hf in _HF_BLOCK.items():
            names[f"model.layers.{i}.{hf}"] = f"layers.{i}.{core}"
    return names
