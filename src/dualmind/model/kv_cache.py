"""Keys and values of past positions, so generation feeds only the newest symbols."""

from __future__ import annotations

import torch


class KVCache:
    """Preallocated per-layer keys/values [B, max_len, n_kv_heads, head_dim] and a fill length.

    ``HyperCore.forward(ids, cache=cache)`` writes the new positions' keys and values, attends
    over everything cached so far, then advances ``length``. Every batch row holds one sequence
    of the same length (no packing, no ragged rows); ``truncate(n)`` rewinds, e.g. to reuse a
    shared prompt.
    """

    def __init__(self, n_layers: int, batch: int, max_len: int, n_kv_heads: int, head_dim: int,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        shape = (n_layers, batch, max_len, n_kv_heads, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def batch(self) -> int:
        return self.k.shape[1]

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def check_room(self, batch: int, new: int) -> None:
        if batch != self.batch:
            raise ValueError(f"KV cache holds {self.batch} rows, the input has {batch}")
        if self.length + new > self.max_len:
            raise ValueError(f"KV cache is full: {self.length} cached + {new} new positions > "
                             f"max_len {self.max_len}")

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new positions' k/v [B,T,KV,Dh]; return all cached k/v [B,length+T,KV,Dh]."""
        end = self.length + k.shape[1]
        self.k[layer, :, self.length:end] = k
        self.v[layer, :, self.length:end] = v
        return self.k[layer, :, :end], self.v[layer, :, :end]

    def advance(self, new: int) -> None:
        self.length += new

    def truncate(self, length: int) -> None:
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of length {self.length} to {length}")
        self.length = length
