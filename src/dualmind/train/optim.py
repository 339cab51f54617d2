"""AdamW with decay on matrices only, and the warmup + cosine learning-rate schedule, from the
``optim`` config group (conf/optim/adamw.yaml)."""

from __future__ import annotations

import math

import torch


def adamw(params: list[torch.nn.Parameter], o: dict) -> torch.optim.AdamW:
    # Decay matrices only: norm gains and biases have no scale to regularise.
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    fused = o.get("fused", "auto")
    if fused == "auto":
        fused = params[0].device.type in ("cpu", "cuda") if params else False
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": o["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=o["lr"],
        betas=tuple(o["betas"]),
        eps=o["eps"],
        fused=bool(fused),
    )


class WarmupCosine:
    """LR multiplier: linear warmup over `warmup` steps, then cosine from 1 to `floor` at `total`.

    A class, not a closure, so the LambdaLR state stays picklable in checkpoints.
    """

    def __init__(self, warmup: int, total: int, floor: float):
        self.warmup, self.total, self.floor = warmup, total, floor

    def __call__(self, step: int) -> float:
        if self.warmup > 0 and step < self.warmup:
            return (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(warmup: int, total: int, floor: float) -> WarmupCosine:
    return WarmupCosine(warmup, total, floor)
