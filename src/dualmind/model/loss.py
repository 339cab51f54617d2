"""Next-symbol loss without a full [B, T, vocab] logits tensor.

With a 128K vocabulary an 8K-symbol pack has 4 GiB of fp32 logits per row, more than the rest of
a block's activations. ``chunked_cross_entropy`` projects ``chunk`` positions at a time and
recomputes each chunk's logits in the backward pass (activation checkpointing per chunk), so peak
memory holds one chunk's logits. Use it with ``HyperCore(..., compute_logits=False)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE = -100  # target of padding positions (F.cross_entropy's ignore_index)


def _chunk_nll(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
               ignore_index: int) -> torch.Tensor:
    logits = F.linear(hidden, weight).float()  # the softmax in fp32 whatever the matmul dtype
    return F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="sum")


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          chunk: int = 4096, ignore_index: int = -100,
                          reduction: str = "mean") -> torch.Tensor:
    """Cross entropy of ``hidden @ weight.T`` against ``targets``, ``chunk`` positions at a time.

    hidden [..., D] (the core's final-normed ``hidden``), weight [V, D] (``model.output.weight``),
    targets [...] int. ``reduction``: "mean" over non-ignored positions, or "sum". Equal to
    ``F.cross_entropy(model.output(hidden).float().flatten(0, -2), targets.flatten())``.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    if hidden.shape[0] != targets.shape[0]:
        raise ValueError(f"{hidden.shape[0]} hidden positions but {targets.shape[0]} targets")
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start:start + chunk], targets[start:start + chunk]
        if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
            total = total + checkpoint(_chunk_nll, h, weight, t, ignore_index, use_reentrant=False)
        else:
            total = total + _chunk_nll(h, weight, t, ignore_index)
    if reduction == "sum":
        return total
    return total / (targets != ignore_index).sum().clamp(min=1)


def next_symbol_nll(core, ids: torch.Tensor, targets: torch.Tensor, *,
                    doc_ids: torch.Tensor | None = None, chunk: int = 0,
                    ignore_index: int = -100) -> torch.Tensor:
    """Summed next-symbol NLL of ``core`` (a HyperCore) over ``targets`` (fp32 softmax).

    ``chunk`` 0: the plain loss over the full [B, T, vocab] logits. ``chunk`` > 0: the output
    head and the loss run ``chunk`` positions at a time (:func:`chunked_cross_entropy`), so the
    full logits never exist, forward or backward. Same value and gradients (to fp32 summation
    order). The head's weight is read after the core's forward, while an FSDP2 root still holds
    it gathered (the root is not resharded between its forward and its backward)."""
    if chunk < 0:
        raise ValueError(f"loss chunk must be >= 0 positions (0: no chunking), got {chunk}")
    if chunk == 0:
        logits = core(ids, doc_ids=doc_ids).logits
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                               ignore_index=ignore_index, reduction="sum")
    hidden = core(ids, doc_ids=doc_ids, compute_logits=False).hidden
    return chunked_cross_entropy(hidden, core.head_weight(), targets, chunk=chunk,
                                 ignore_index=ignore_index, reduction="sum")
