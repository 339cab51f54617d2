"""Fit a training run into a wall-clock budget (``trainer.time_budget_s``).

A recipe's step count is chosen for some machine; the same 300 steps take 2.5 minutes on a CPU
with native bf16 and far longer on one without (issue 12). With a budget the run measures its own
step time over its first ``probe_steps`` steps and, if ``max_steps`` would not fit, lowers
``max_steps`` there and shortens the learning-rate schedule with it: the run is a complete
shorter schedule (warmup, cosine to the floor), not a long one cut off half-way. It looks once
more at ``review_steps``, over more steps, and moves the decision if the rate has changed. It
prints what it decided, so a log says why a run stopped where it did. A budget never raises
``max_steps`` above the run's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from dualmind.train.progress import duration

REVIEW_SLACK = 0.02  # the second look moves the last step only by more than this share of it


class TimeBudget(L.Callback):
    """budget_s: seconds the fit loop may take from its first step (start-up, data loading and
    the model build before it are not counted); margin: slack for validation and checkpoints
    between steps, as a fraction of the step time. The step count is decided at ``probe_steps``
    and looked at once more at ``review_steps``, with the steps' rate measured over more of them:
    a machine's first steps after start-up can be slow (the demo's core, timed over its steps
    2-10 at 1.09 s a step, was cut to 275 of 300 steps, then ran at 0.69 s a step and finished
    with 110 s of its budget unused), so the review may give back steps up to ``max_steps``, or
    take more away from a run that slowed down."""

    def __init__(self, budget_s: float, probe_steps: int = 10, margin: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, review_steps: int = 50):
        if not budget_s > 0:
            raise ValueError(f"trainer.time_budget_s must be positive seconds, got {budget_s!r}")
        self.budget_s, self.probe_steps, self.margin = float(budget_s), probe_steps, margin
        self.review_steps, self.clock = review_steps, clock
        self.decided_steps: int | None = None  # max_steps after the decision (None: not yet)
        self.planned: int | None = None  # the run's own max_steps, before any decision
        self.reviewed = False

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0, self._start = self.clock(), trainer.global_step
        self._t_first: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.reviewed:
            return
        done, now = trainer.global_step - self._start, self.clock()
        if done < 1:
            return
        if self._t_first is None:  # the first step pays for warm-up: time the ones after it
            self._t_first, self._done_first = now, done
            return
        first_look = self.decided_steps is None
        if done < (self.probe_steps if first_look else self.review_steps):
            return
        if first_look:
            self.planned = trainer.max_steps
            if self.planned is None or self.planned < 0:  # an open-ended run: nothing to fit
                self.decided_steps, self.reviewed = self.planned, True
                return
        self.reviewed = not first_look or self.review_steps <= self.probe_steps
        per_step = (now - self._t_first) / max(done - self._done_first, 1) * (1 + self.margin)
        fits = trainer.global_step + math.floor(max(self.budget_s - (now - self._t0), 0) / per_step)
        decided = min(self.planned, max(fits, trainer.global_step + 1))
        before = self.planned if first_look else self.decided_steps
        slack = 0 if first_look else max(1, REVIEW_SLACK * self.planned)
        if abs(decided - before) <= slack:  # the same decision, give or take the timer's noise
            self.decided_steps = before
            return
        self.decided_steps = decided
        _end_at(trainer, decided)
        if first_look:
            _say(f"time budget: {per_step:.2f} s per step here, so {self.planned} steps would "
                 f"take ~{duration(per_step * (self.planned - self._start))}, more than "
                 f"trainer.time_budget_s={self.budget_s:g} s: this run stops at step "
                 f"{decided} (its learning-rate schedule shortened to match)")
        else:
            _say(f"time budget, looked at again at step {trainer.global_step}: "
                 f"{per_step:.2f} s per step, so this run stops at step {decided}, "
                 f"not {before} (its learning-rate schedule ends there)")


def _end_at(trainer, steps: int) -> None:
    """The run's last step is ``steps``, and so is its cosine schedule's."""
    trainer.fit_loop.epoch_loop.max_steps = steps
    for config in trainer.lr_scheduler_configs:
        for schedule in getattr(config.scheduler, "lr_lambdas", []):
            if hasattr(schedule, "total"):
                schedule.total = steps


@rank_zero_only
def _say(line: str) -> None:
    print(line, flush=True)  # a plain line: it must reach a redirected log too
