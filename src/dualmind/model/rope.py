"""Rotary position embeddings, with the scaling rules long compressed contexts need.

Layout: the "half split" layout of transformers' Llama (rotate_half): feature i of a head is paired
with feature i + head_dim/2. Meta's original checkpoints pair neighbours (2i, 2i+1) instead;
``llama_format`` permutes their q/k weights on load, exactly as transformers' converter does.

Nothing is stored as a buffer: the inverse frequencies (head_dim/2 numbers) and the cos/sin of the
positions actually used are recomputed every forward. That costs a few tiny kernels, and in
exchange a model built on ``meta`` and materialised later (FSDP) cannot end up with stale or
uninitialised RoPE tables.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def inverse_frequencies(head_dim: int, theta: float, scaling: dict[str, Any] | None,
                        device: torch.device | None = None) -> torch.Tensor:
    """float32 [head_dim/2]: the angle per position of each rotated pair, after scaling."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    if scaling is not None and scaling["type"] == "ntk":
        # NTK-aware: raise the base so the lowest frequency stretches by ~factor while the
        # highest ones (local word order) barely move.
        theta = theta * scaling["factor"] ** (head_dim / (head_dim - 2))
    inv_freq = 1.0 / (theta ** exponents)
    if scaling is None or scaling["type"] == "ntk":
        return inv_freq
    if scaling["type"] == "linear":
        return inv_freq / scaling["factor"]
    if scaling["type"] == "llama3":
        return _llama3_scale(inv_freq, scaling)
    raise ValueError(f"unknown rope_scaling type {scaling['type']!r}")


def _llama3_scale(inv_freq: torch.Tensor, s: dict[str, Any]) -> torch.Tensor:
    """Llama 3.1's rule: keep short wavelengths, divide long ones by factor, blend in between."""
    factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old_len = s["original_max_seq_len"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(is_medium, blended, scaled)


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """positions [B,T] (int) -> cos, sin float32 [B,T,1,head_dim/2] (broadcast over heads)."""
    angles = positions.to(torch.float32)[..., None] * inv_freq
    return angles.cos()[:, :, None, :], angles.sin()[:, :, None, :]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B,T,heads,head_dim] by its positions' angles; computed in float32."""
    return _Rotate.apply(x, cos, sin)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # bf16 * fp32 tables promotes to fp32
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)


class _Rotate(torch.autograd.Function):
    """A rotation's gradient is the inverse rotation (angle -θ): saving only the shared cos/sin
    tables keeps no float32 copy of q and k per layer for the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        cos, sin = ctx.saved_tensors
        return _rotate(grad, cos, -sin), None, None
