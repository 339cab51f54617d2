"""Cross-attention from text tokens to the core's hidden states.

Choices and why:
- Separate RMSNorms for the queries (decoder stream, width dim) and for the keys/values (core
  states, width core_dim): the two streams live on different scales, and the core is frozen.
- Rotary positions only on offsets, and only with ``cross_rope``: a key is rotated by its unit's
  index in the row, a query by the index of the unit its pointer is at (the unit of the token
  it just read, :mod:`dualmind.model.masks`), so a score sees "this unit is the one I am at /
  the next one" and never an absolute place in a pack. Without it the mask alone carries the
  alignment, which in render mode is none at all (docs/alignment.md has the measurements).
- A learned null key/value, prepended to every row's keys, is always visible: a token whose
  mask shows no core state (text before the first unit, padding) attends to "nothing" instead
  of producing NaNs, and any token may choose to ignore the core (RETRO). Both start at zero,
  so "nothing" adds exactly nothing until training says otherwise.
- Optional tanh gate initialised to 0 (Flamingo): with ``gated`` the sub-layer's contribution is
  exactly zero at the start, so a decoder loaded from a pretrained LM begins as that LM.

The attention itself runs through torch SDPA with a boolean mask (the mask is arbitrary, not
causal or block-diagonal, so flash-attn's varlen path does not apply; on CUDA SDPA picks its
memory-efficient kernel, which takes masks). The mask costs T x (S+1) bytes per row (128 MiB for
16K text tokens over 8K core states); far longer packs would want a block mask computed from the
ids (FlexAttention) instead.
"""

from __future__ import annotations

import torch
from torch import nn

from dualmind.model import attention as attn
from dualmind.model.core import RMSNorm
from dualmind.model.decoder_config import DecoderConfig
from dualmind.model.rope import apply_rope, inverse_frequencies, rope_cos_sin

CrossKV = tuple[torch.Tensor, torch.Tensor]  # keys, values [B, 1+S, n_kv_heads, head_dim]


class CrossAttention(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.head_dim = cfg.head_dim  # head counts follow the projection widths
        self.rope_theta = cfg.rope_theta if cfg.cross_rope else None
        self.q_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.kv_norm = RMSNorm(cfg.memory_dim, cfg.norm_eps)
        self.wq = nn.Linear(cfg.dim, cfg.q_dim, bias=False)
        self.wk = nn.Linear(cfg.memory_dim, cfg.kv_dim, bias=False)
        self.wv = nn.Linear(cfg.memory_dim, cfg.kv_dim, bias=False)
        self.wo = nn.Linear(cfg.q_dim, cfg.dim, bias=False)
        self.null_k = nn.Parameter(torch.zeros(cfg.n_kv_heads, cfg.head_dim))
        self.null_v = nn.Parameter(torch.zeros(cfg.n_kv_heads, cfg.head_dim))
        # shape [1], not a scalar: FSDP2 shards parameters along dim 0
        self.gate = nn.Parameter(torch.zeros(1)) if cfg.gated else None

    def keys_values(self, core_states: torch.Tensor, positions: torch.Tensor | None = None
                    ) -> CrossKV:
        """core_states [B,S,memory_dim] -> keys, values [B,1+S,KV,Dh], the null pair first.
        positions [B,S]: each state's rotary position (with ``cross_rope``; default 0..S-1).

        Depends only on the core states: generation computes it once per layer and reuses it.
        """
        B, S, _ = core_states.shape
        # The core's states may arrive in another dtype than this layer's weights (a frozen fp32
        # core feeding bf16 decoder weights whose root does not cast its inputs); under autocast
        # this cast changes nothing for the matmul.
        states = self.kv_norm(core_states).to(self.wk.weight.dtype)
        k = self.wk(states).view(B, S, -1, self.head_dim)
        v = self.wv(states).view(B, S, -1, self.head_dim)
        if self.rope_theta is not None:  # the null key has no place: it stays unrotated
            if positions is None:
                positions = torch.arange(S, device=k.device).expand(B, S)
            k = apply_rope(k, *self._angles(positions))
        null_k = self.null_k.to(k.dtype).expand(B, 1, -1, -1)
        null_v = self.null_v.to(v.dtype).expand(B, 1, -1, -1)
        return torch.cat((null_k, k), dim=1), torch.cat((null_v, v), dim=1)

    def _angles(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = inverse_frequencies(self.head_dim, self.rope_theta, None, positions.device)
        return rope_cos_sin(positions, inv_freq)

    def forward(self, x: torch.Tensor, kv: CrossKV, sdpa_mask: torch.Tensor,
                query_positions: torch.Tensor | None = None) -> torch.Tensor:
        """x [B,T,dim] (the residual stream), sdpa_mask from :func:`with_null` (built once per
        forward, shared by every cross-attention layer), query_positions [B,T] the row index of
        each token's pointer unit (needed with ``cross_rope``) -> the residual update [B,T,dim]."""
        B, T, _ = x.shape
        k, v = kv
        q = self.wq(self.q_norm(x)).view(B, T, -1, self.head_dim)
        if self.rope_theta is not None:
            if query_positions is None:
                raise ValueError("cross_rope: the decoder needs each token's pointer position "
                                 "(pass an Alignment, or cross_positions)")
            q = apply_rope(q, *self._angles(query_positions))
        k, v = k.to(q.dtype), v.to(q.dtype)
        if q.is_cuda and k.shape[2] != q.shape[2]:
            # On CUDA a masked SDPA call with enable_gqa has no fused kernel (flash takes no
            # mask, memory-efficient no head groups) and falls back to the math kernel, which
            # materialises [B,H,T,S] scores; repeating the few kv heads is far cheaper.
            k, v = (t.repeat_interleave(q.shape[2] // t.shape[2], dim=2) for t in (k, v))
        layout = attn.AttentionLayout("sdpa", packed=True, sdpa_mask=sdpa_mask)
        out = self.wo(attn.attend(q, k, v, layout).reshape(B, T, -1))
        if self.gate is not None:
            out = torch.tanh(self.gate).to(out.dtype) * out
        return out

    @torch.no_grad()
    def init_weights(self, std: float, out_std: float) -> None:
        for linear in (self.wq, self.wk, self.wv):
            nn.init.trunc_normal_(linear.weight, std=std, a=-3 * std, b=3 * std)
        nn.init.trunc_normal_(self.wo.weight, std=out_std, a=-3 * out_std, b=3 * out_std)
        nn.init.zeros_(self.null_k)
        nn.init.zeros_(self.null_v)
        if self.gate is not None:
            nn.init.zeros_(self.gate)
        self.q_norm.reset_parameters()
        self.kv_norm.reset_parameters()


def with_null(mask: torch.Tensor | None, batch: int, queries: int, n_states: int,
              device: torch.device) -> torch.Tensor:
    """The cross mask bool [B,T,S] (or None: everything visible) as SDPA wants it:
    [B|1, 1, T|1, 1+S] with the null column always True. Never ``is_causal``."""
    if mask is None:
        return torch.ones(1, 1, 1, 1 + n_states, dtype=torch.bool, device=device)
    if mask.dtype != torch.bool:
        raise TypeError(f"cross_mask must be a bool tensor (True = may attend), got {mask.dtype}")
    if mask.shape != (batch, queries, n_states):
        raise ValueError(f"cross_mask has shape {tuple(mask.shape)}, expected "
                         f"{(batch, queries, n_states)} (batch, text tokens, core states)")
    null = torch.ones(batch, queries, 1, dtype=torch.bool, device=mask.device)
    return torch.cat((null, mask), dim=-1)[:, None]
