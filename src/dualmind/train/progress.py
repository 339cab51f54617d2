"""What a training run reports while it runs, wherever its output goes.

On a terminal Lightning's rich bar shows progress. Redirected to a file, a CI log or a Slurm log,
that bar prints nothing until the run ends, so the log stayed silent for many minutes after
"TPU available: False" (issue 12). There this callback prints a plain line instead, every
``trainer.progress_every_n_steps`` optimizer steps or ``trainer.progress_every_s`` seconds,
whichever comes first, plus the first and the last step:

    step 120/300 · loss 4.512 · bpb 2.310 · 2,340 symbols/s · ETA 1m17s

and a line after each validation (``step 100 · val loss 4.601 · val bpb 2.402``).

It also records where this invocation started (a resumed run starts at its checkpoint's step),
which the end-of-run summary reports.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

# What one predicted position is in each stage: text tokens for the decoder and the BPE baseline.
UNIT_OF_STAGE = {"align": "tokens", "lm": "tokens"}


def stdout_is_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def duration(seconds: float) -> str:
    """1h02m, 3m05s, 42s: short enough for a log line."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class TrainingProgress(L.Callback):
    """Plain progress lines (when ``plain``) and the step this invocation started from.

    every_n_steps / every_s: a line when either many steps or seconds passed since the last one
    (0 turns that trigger off). clock: time.monotonic, replaceable so tests need no timing."""

    def __init__(self, every_n_steps: int = 100, every_s: float = 30.0, plain: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.every_n_steps = int(every_n_steps or 0)
        self.every_s = float(every_s or 0)
        self.plain = plain and (self.every_n_steps > 0 or self.every_s > 0)
        self.clock = clock
        self.start_step: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_step = trainer.global_step
        self._t0 = self._t_line = self.clock()
        self._step_line = trainer.global_step
        self._positions = 0.0  # predicted positions since the last line

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.plain:
            return
        counts = getattr(pl_module, "last_counts", None)
        if counts is not None:
            self._positions += float(counts.symbols)
        step, now = trainer.global_step, self.clock()
        if step == self._step_line:  # accumulating gradients: no optimizer step yet
            return
        last = trainer.max_steps is not None and step >= trainer.max_steps > 0
        due = (step == self.start_step + 1 or last
               or (self.every_n_steps and step % self.every_n_steps == 0)  # round numbers
               or (self.every_s and now - self._t_line >= self.every_s))
        if due:
            self._print(self._line(trainer, pl_module, counts, step, now))
            self._t_line, self._step_line, self._positions = now, step, 0.0

    def on_validation_end(self, trainer, pl_module) -> None:
        history = getattr(pl_module, "history", {}).get("val")
        if not self.plain or trainer.sanity_checking or not history:
            return
        v = history[-1]  # appended by the module's on_validation_epoch_end, which ran before
        self._print(f"step {v['step']} · val loss {v['loss']:.3f} · val bpb {v['bpb']:.3f}")

    def _line(self, trainer, pl_module, counts, step: int, now: float) -> str:
        max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        parts = [f"step {step}/{max_steps}" if max_steps else f"step {step}"]
        if counts is not None:
            parts.append(f"loss {float(counts.loss.detach()):.3f}")
            if float(counts.text_bytes) > 0:  # bits per byte of the text those positions stand for
                bpb = float(counts.nll_sum.detach()) / (math.log(2) * float(counts.text_bytes))
                parts.append(f"bpb {bpb:.3f}")
        dt = now - self._t_line
        if dt > 0 and self._positions:
            unit = UNIT_OF_STAGE.get(getattr(pl_module, "stage", ""), "symbols")
            parts.append(f"{self._positions / dt:,.0f} {unit}/s")
        done = step - self.start_step
        if max_steps and done > 0:  # the pace of this invocation so far, validation included
            parts.append(f"ETA {duration((max_steps - step) * (now - self._t0) / done)}")
        return " · ".join(parts)

    @staticmethod
    @rank_zero_only
    def _print(line: str) -> None:
        print(line, flush=True)  # flushed: a redirected stdout is block-buffered
