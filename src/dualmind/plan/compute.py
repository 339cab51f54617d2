"""Training compute, time and money; the compute-optimal (Chinchilla) yardstick.

    FLOPs      = tokens * (6 * N_matmul + 12 * layers * d_attn * seq_len)
    GPU-hours  = FLOPs / (peak dense bf16 FLOP/s * MFU * 3600)
    days       = GPU-hours / GPUs / 24
    cost       = GPU-hours * price per GPU-hour

MFU (model FLOPs utilisation, PaLM Appendix B) counts only the model FLOPs above, so it folds
in everything else: recomputation from activation checkpointing, communication stalls,
and — when compared with a published run's *total* GPU-hours — restarts, failures and evaluation.
Llama 3 405B reports 38-43% MFU in steady state (Llama 3 Herd of Models, Table 4); the
default 0.40 sits in that range and is labelled an assumption in every report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .hardware import GPUSpec

DEFAULT_MFU = 0.40
MFU_NOTE = "assumption: Llama 3 405B reported 38-43% bf16 MFU on H100 (Llama 3 paper, Table 4)"

# Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models" (arXiv:2203.15556):
# Chinchilla, 70B parameters, trained on 1.4T tokens, compute-optimal by Approaches 1 and 2
# (Table 3: 67B -> 1.5T tokens); i.e. about 20 tokens per parameter. Epoch AI's replication
# (Besiroglu et al. 2024, arXiv:2404.10102) refits Approach 3 and agrees with ~20.
CHINCHILLA_TOKENS_PER_PARAM = 20.0
CHINCHILLA_NOTE = (
    "compute-optimal tokens ~ 20 x parameters (Hoffmann et al. 2022: Chinchilla 70B on 1.4T "
    "tokens). Fitted on BPE tokens; whether a hyperphrase symbol counts like a token is untested"
)


@dataclass(frozen=True)
class TrainingCompute:
    tokens: float  # positions trained on (symbols x epochs)
    flops_per_token: float
    flops_6nd: float  # 6 * N_matmul * D alone, the usual headline figure
    flops: float  # with the attention term
    gpu_hours: float
    wall_days: float
    cost: float

    def to_dict(self) -> dict:
        return asdict(self)


def training_compute(
    flops_per_token: float,
    matmul_params: float,
    tokens: float,
    gpu: GPUSpec,
    n_gpus: int,
    mfu: float,
    price_per_hour: float,
) -> TrainingCompute:
    check_mfu(mfu)
    if n_gpus <= 0:
        raise ValueError(f"--gpus must be a positive count, got {n_gpus}")
    if tokens <= 0:
        raise ValueError(f"tokens must be positive, got {tokens}")
    flops = flops_per_token * tokens
    gpu_hours = gpu_hours_for(flops, gpu.peak_bf16_flops, mfu)
    return TrainingCompute(
        tokens=tokens,
        flops_per_token=flops_per_token,
        flops_6nd=6.0 * matmul_params * tokens,
        flops=flops,
        gpu_hours=gpu_hours,
        wall_days=gpu_hours / n_gpus / 24.0,
        cost=gpu_hours * price_per_hour,
    )


def gpu_hours_for(flops: float, peak_flops: float, mfu: float) -> float:
    check_mfu(mfu)
    return flops / (peak_flops * mfu * 3600.0)


def implied_mfu(flops: float, gpu_hours: float, peak_flops: float) -> float:
    """The MFU a published run must have averaged to spend ``gpu_hours`` on ``flops``."""
    return flops / (gpu_hours * 3600.0 * peak_flops)


def check_mfu(mfu: float) -> None:
    if not (0.0 < mfu <= 1.0):
        raise ValueError(f"--mfu must be in (0, 1], got {mfu}")


@dataclass(frozen=True)
class ComputeOptimal:
    params: float
    optimal_tokens: float
    actual_tokens: float

    @property
    def ratio(self) -> float:
        """actual / optimal: > 1 is over-trained (more data than compute-optimal)."""
        return self.actual_tokens / self.optimal_tokens

    @property
    def optimal_params_for_compute(self) -> float:
        """The compute-optimal size for this run's 6·N·D budget: C = 6·N·(20·N), N = sqrt(C/120)."""
        return math.sqrt(
            6.0 * self.params * self.actual_tokens / (6.0 * CHINCHILLA_TOKENS_PER_PARAM)
        )

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "ratio": self.ratio,
            "optimal_params_for_compute": self.optimal_params_for_compute,
            "optimal_tokens_for_compute": CHINCHILLA_TOKENS_PER_PARAM
            * self.optimal_params_for_compute,
            "note": CHINCHILLA_NOTE,
        }


def chinchilla_optimal(params: float, actual_tokens: float) -> ComputeOptimal:
    return ComputeOptimal(params, CHINCHILLA_TOKENS_PER_PARAM * params, actual_tokens)
