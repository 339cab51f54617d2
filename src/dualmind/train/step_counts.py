"""What one training batch contributes to the loss and the logs, and the global batch it is part of.

Every rank counts its own batch (summed NLL, predicted symbols, their text bytes, training FLOPs);
the loss normalisation and every logged rate need the *global* batch: each data-parallel rank's
batch, once. Under tensor parallelism the ranks of one tensor-parallel group hold the same batch
(dualmind.train.datamodule.data_parallel_position), so a plain sum over all ranks would count each
data-parallel batch tensor-parallel-size times.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class StepCounts:
    """What one batch contributes: summed NLL (nats), predicted symbols, their text bytes."""

    nll_sum: torch.Tensor
    symbols: torch.Tensor
    text_bytes: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        return self.nll_sum / self.symbols.clamp(min=1)


def global_batch(counts: StepCounts, flops: float, world_size: int,
                 data_parallel_size: int) -> tuple[StepCounts, float]:
    """Counts and FLOPs of the global batch, which every rank then holds.

    One all-reduce of four scalars over ALL ranks, so that every rank judges the NaN stop on the
    same numbers and none is left waiting in a collective; then divided by the tensor-parallel
    size (world / data-parallel size), the number of times the sum holds each data-parallel
    batch. Without a process group (one rank) the counts are the global batch already."""
    if world_size <= 1 or not torch.distributed.is_initialized():
        return counts, flops
    device = counts.symbols.device
    packed = torch.stack([counts.nll_sum.detach().double(), counts.symbols.double(),
                          counts.text_bytes.double(),
                          torch.tensor(flops, dtype=torch.float64, device=device)])
    torch.distributed.all_reduce(packed)
    packed /= world_size // data_parallel_size
    return StepCounts(*packed[:3]), float(packed[3])
