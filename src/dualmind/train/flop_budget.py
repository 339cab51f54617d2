"""Train for a FLOP budget (``trainer.max_flops``): equal-compute comparisons in one command.

    python train.py recipe=core_mini trainer.max_flops=5e13

The budget is counted as the run logs ``train/flops_total`` and as benchmarks/equal_compute.py
counts its budgets: 6·N + attention per trained position, the frozen core's forward in stage
align (``DualMindModule.batch_flops``; tests/test_flop_budget.py checks the two agree). When
training starts, before the first step, the run sums the FLOPs of the very batches it will draw
(the order is seeded, so they are known; stage core's packed rows all cost the same) and sets
``max_steps`` to the first step at which the total reaches the budget, so it overshoots by less
than one step, as the benchmark's runs do. The learning-rate schedule ends there: the run is a
complete schedule for its budget. The budget replaces ``trainer.max_steps`` (the recipe's step
count is for another budget), upwards too; a resumed run counts what its checkpoint already
spent and decides the same last step.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

MAX_STEPS = 100_000_000  # a budget that needs more steps is a mistake (FLOPs or a unit off)
STAGES = ("core", "align", "lm")  # whose batches global_step_flops knows how to draw


def steps_for_flops(budget: float, spent: float, start: int,
                    step_flops: Callable[[int], float], max_steps: int = MAX_STEPS) -> int:
    """The first optimizer step (counted from 0, ``start`` done already, ``spent`` FLOPs so far)
    after which the run has spent ``budget``; ``step_flops(j)`` is step j's cost (0-based).
    ``start`` when the budget is already spent."""
    step = start
    while spent < budget:
        if step >= max_steps:
            raise ValueError(f"trainer.max_flops={budget:.4g} is not reached in {max_steps} "
                             f"steps of ~{step_flops(start):.4g} FLOPs: is it in FLOPs?")
        cost = float(step_flops(step))
        if not cost > 0:
            raise ValueError(f"step {step} costs {cost} FLOPs: trainer.max_flops cannot stop it")
        spent += cost
        step += 1
    return step


class FlopBudget(L.Callback):
    """Sets max_steps from ``trainer.max_flops`` when training starts (see the module doc)."""

    def __init__(self, max_flops: float):
        if not max_flops > 0:
            raise ValueError(f"trainer.max_flops must be positive FLOPs, got {max_flops!r}")
        self.max_flops = float(max_flops)
        self.decided_steps: int | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        # The fit loop skips a resumed run whose step is past max_steps before on_train_start,
        # and the step and the schedule are restored only after this hook: so no limit until
        # on_train_start decides one (the optimizer and its schedule exist already).
        self._planned = trainer.max_steps
        trainer.fit_loop.epoch_loop.max_steps = -1

    def on_train_start(self, trainer, pl_module) -> None:
        start, spent = trainer.global_step, float(pl_module.flops_total)
        step_flops = global_step_flops(trainer, pl_module)
        # a resumed run whose budget is spent gets max_steps = its step: it trains no more
        steps = steps_for_flops(self.max_flops, spent, start, step_flops)
        planned = getattr(self, "_planned", trainer.max_steps)
        self.decided_steps = steps
        trainer.fit_loop.epoch_loop.max_steps = steps
        warmup = 0
        for config in trainer.lr_scheduler_configs:  # the cosine ends at the budget's last step
            for schedule in getattr(config.scheduler, "lr_lambdas", []):
                if hasattr(schedule, "total"):
                    schedule.total = max(steps, 1)
                    warmup = max(warmup, getattr(schedule, "warmup", 0))
        first = step_flops(start) if steps > start else 0.0
        _say(f"FLOP budget: trainer.max_flops={self.max_flops:.4g}, {spent:.4g} spent at step "
             f"{start}; steps of {first:.4g} FLOPs (the global batch) reach it at step {steps}: "
             f"max_steps={steps} (trainer.max_steps={planned} replaced, the "
             "learning-rate schedule with it)")
        if warmup >= steps > start:  # the recipe's warmup was chosen for its own step count
            _say(f"FLOP budget: optim.warmup_steps={warmup} is not below the budget's {steps} "
                 "steps, so the learning rate never leaves its warmup: lower optim.warmup_steps")


def global_step_flops(trainer, pl_module) -> Callable[[int], float]:
    """Optimizer step j's training FLOPs over the global batch: every data-parallel rank's
    batches, each once (as train/flops_total counts them), times gradient accumulation."""
    accumulate = int(trainer.accumulate_grad_batches)
    dp = pl_module.data_parallel()[1]
    if pl_module.stage == "core":  # packed rows: every batch is batch_size x seq_len symbols
        per_batch = pl_module.flops_per_symbol * pl_module.symbols_per_batch
        return lambda j: per_batch * accumulate * dp
    from dualmind.train.align_datamodule import AlignTrainBatches

    dm = trainer.datamodule
    ranks = [AlignTrainBatches(dm.train_packs, dm.batch_size, dm.seed, 0, r, dp)
             for r in range(dp)]

    def step(j: int) -> float:
        return sum(pl_module.batch_flops(r.batch(j * accumulate + a))
                   for a in range(accumulate) for r in ranks)

    return step


@rank_zero_only
def _say(line: str) -> None:
    print(line, flush=True)  # a plain line: it must reach a redirected log too
