"""Choosing the next symbol or token from logits; shared by the core's and the decoder's loops."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Generation:
    ids: torch.Tensor  # [B, prompt + new]: the prompt, then the new ids (eos repeated once done)
    logits: torch.Tensor | None  # [B, new, V]: the distribution each new id was drawn from


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """logits [B,V] -> ids [B]. temperature <= 0 is greedy; top_k keeps the k likeliest."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]
