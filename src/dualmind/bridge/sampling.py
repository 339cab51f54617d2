"""Drawing the next id from logits: temperature, top-k and top-p (nucleus), one generator.

The model package's sampler has temperature and top-k; the bridge adds top-p, which a chat
wants, without touching the shared loop the training code uses.
"""

from __future__ import annotations

import torch


def pick(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
         top_p: float | None = None, generator: torch.Generator | None = None) -> int:
    """logits [V] -> one id. temperature <= 0: greedy. top_k: keep the k likeliest.
    top_p: keep the smallest set of likeliest ids whose probability sums to >= top_p."""
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(dim=-1)
    if top_p is not None and 0 < top_p < 1:
        sorted_p, order = probs.sort(descending=True)
        # drop an id when the ids before it already reach top_p (the first id always stays)
        drop = (sorted_p.cumsum(0) - sorted_p) >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=generator))


def check_options(temperature: float, top_k: int | None, top_p: float | None) -> None:
    from dualmind.bridge.errors import BridgeError

    if temperature < 0:
        raise BridgeError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 0:
        raise BridgeError(f"top_k must be >= 0 (0 or None = off), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise BridgeError(f"top_p must be in (0, 1], got {top_p}")
