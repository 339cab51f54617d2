"""Shared piece of the activation-memory tests (no tests here): what a forward really keeps for
backward, counted from the storages autograd saves, against which the planner's formulas are
checked (tests/test_plan.py for a core block, tests/test_plan_align.py for cross-attention)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def saved_activation_bytes(model: torch.nn.Module, forward: Callable[[], object]) -> int:
    """Bytes of the distinct storages autograd saves during ``forward()``, the model's own
    parameters excluded (they are counted as weights, not activations)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(storages.values())
