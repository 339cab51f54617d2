"""Gradient-norm clipping for every layout the trainer runs: plain tensors (one process, DDP),
FSDP2's DTensors on the data-parallel mesh, and, with tensor parallelism, a mix of two meshes.

torch.nn.utils.clip_grad_norm_ stacks the per-tensor norms into one tensor, which fails once the
gradients live on different device meshes ("All operands in aten.stack.default must have the same
mesh"): under strategy.tensor_parallel_size > 1 the split projections of each block are DTensors
on the (data_parallel, tensor_parallel) mesh, while norms, embedding and output head are sharded
over the data_parallel mesh alone. So the norm is taken per mesh, made a plain number with
``full_tensor()`` (the collective over that mesh), and the per-mesh norms are combined.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def _by_mesh(tensors: Iterable[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Group tensors by device mesh (plain tensors: one group), in first-seen order, which is the
    optimizer's parameter order and so the same on every rank."""
    groups: dict = {}
    for t in tensors:
        groups.setdefault(getattr(t, "device_mesh", None), []).append(t)
    return list(groups.values())


def total_grad_norm(grads: Iterable[torch.Tensor], norm_type: float = 2.0) -> torch.Tensor:
    """The norm of all gradients together, as a plain tensor that every rank holds.

    A collective per device mesh: every rank must call it with its gradients in the same order."""
    norms = []
    for group in _by_mesh(grads):
        norm = torch.nn.utils.get_total_norm(group, norm_type)
        norms.append(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
    if not norms:
        return torch.tensor(0.0)
    stacked = torch.stack([n.to(norms[0].device) for n in norms])
    if math.isinf(norm_type):
        return stacked.max()
    return stacked.pow(norm_type).sum().pow(1.0 / norm_type)


def clip_gradients(params: list[torch.nn.Parameter], max_value: float,
                   algorithm: str | None) -> torch.Tensor | None:
    """Clip ``params``' gradients in place: by value, or (default) by their global 2-norm.
    Returns the norm before clipping (None when clipping by value)."""
    params = [p for p in params if p.grad is not None]
    if algorithm == "value":
        torch.nn.utils.clip_grad_value_(params, max_value)
        return None
    norm = total_grad_norm([p.grad for p in params])
    for group in _by_mesh(params):  # one scaling per mesh: a fused multiply cannot mix meshes
        torch.nn.utils.clip_grads_with_norm_(group, max_value, norm)
    return norm


def unscale_before_clipping(scaler, optimizer) -> None:
    """fp16 (a loss scaler): make the gradients true gradients before their norm is taken.

    Lightning's AMP plugin unscales before the clipping hook, except for optimizers that unscale
    inside their own step (fused AdamW, dualmind's default on GPUs), whose clipping it refuses
    instead. Those are unscaled here; the scaler records it, so their step does not unscale
    again and still skips a step whose gradients hold an inf. With FSDP2 / tensor parallelism the
    gradients are DTensors on several meshes: the scaler's inf check reduces its flag over each
    gradient's mesh, so every rank skips the same steps."""
    from lightning.fabric.plugins.precision.amp import _optimizer_handles_unscaling

    if _optimizer_handles_unscaling(optimizer):
        scaler.unscale_(optimizer)
