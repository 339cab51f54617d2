"""Training FLOPs of the equal-compute study, counted per real batch, and the step counts that
spend one budget.

Convention: torchtitan's model FLOPs (6·N + attention per trained position, 2·N + attention/3
per forward-only position; CoreConfig / DecoderConfig.flops_per_token), counted on the positions
that carry data (padding is not counted). The two-headed model pays for everything it trains:

    core pretraining   core.flops_per_token(seq_len) x symbols           (every row is full)
    alignment          decoder.flops_per_token(T, S) x text targets      (the decoder trains)
                     + core.flops_per_token(S, forward, no head) x units (the frozen core's
                                                                          forward to its states)
    BPE baseline       lm.flops_per_token(T) x text targets

Align and baseline rows differ in length, so their FLOPs are summed batch by batch over the very
batches training will draw (the order is seeded and deterministic), and a run's step count is the
first step at which its cumulative FLOPs reach its budget: the runs then differ by less than one
step's FLOPs, which the table reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from dualmind.model.loss import IGNORE  # noqa: F401 - the study's padding label
from dualmind.model.step_flops import align_step_flops, lm_step_flops


def core_step_flops(core_cfg, seq_len: int, batch_size: int) -> float:
    """One core pretraining step: every row is seq_len symbols, all predicted."""
    return core_cfg.flops_per_token(seq_len, training=True) * seq_len * batch_size


# One alignment batch: what stage align itself logs as train/flops_total (the decoder trains on
# its text targets, the frozen core runs forward over its real units), so the budgets here and
# the training logs can never disagree.
align_batch_flops = align_step_flops


# One BPE baseline batch: every text target trained, attention at the batch's padded length;
# what stage lm itself logs, so a trainer.max_flops run stops where this study's would.
lm_batch_flops = lm_step_flops


@dataclass
class Schedule:
    """A run's step count under a budget and its cumulative FLOPs after each step."""

    steps: int
    cumulative: np.ndarray  # [steps] FLOPs spent after step 1, 2, ...

    @property
    def flops(self) -> float:
        return float(self.cumulative[-1]) if self.steps else 0.0

    def at_step(self, step: int) -> float:
        """FLOPs spent after `step` optimizer steps (0 before the first)."""
        return float(self.cumulative[step - 1]) if step > 0 else 0.0


def steps_for_budget(budget: float, step_flops: Callable[[int], float],
                     max_steps: int = 1_000_000) -> Schedule:
    """The fewest steps whose cumulative FLOPs reach `budget`; step_flops(j) is step j's
    (0-based) cost. A budget of 0 or less gives 0 steps."""
    spent, cumulative = 0.0, []
    while spent < budget:
        if len(cumulative) >= max_steps:
            raise ValueError(f"budget {budget:.3g} FLOPs not reached in {max_steps} steps")
        spent += float(step_flops(len(cumulative)))
        cumulative.append(spent)
    return Schedule(len(cumulative), np.asarray(cumulative, dtype=np.float64))


def constant_steps(steps: int, per_step: float) -> Schedule:
    return Schedule(steps, per_step * np.arange(1, steps + 1, dtype=np.float64))


def split_budget(budget: float, core_share: float, core_per_step: float) -> int:
    """Core pretraining steps of a two-headed run: core_share of the budget, at least one."""
    if not 0.0 < core_share < 1.0:
        raise ValueError(f"core_share must be in (0, 1), got {core_share}")
    return max(1, round(core_share * budget / core_per_step))


def total(schedules: Iterable[Schedule]) -> float:
    return sum(s.flops for s in schedules)
