"""Stop a training run cleanly on SIGTERM (Slurm, a container stop, `kill`) or Ctrl-C (SIGINT).

Without this, Ctrl-C raised KeyboardInterrupt in the middle of a step and Lightning exited with
nothing saved, and Lightning's own SIGTERM handling stopped the run (mid-validation even) without
a checkpoint: every step since the last interval's checkpoint was lost.

Here a signal only sets a flag. At the end of the step in progress, the callback saves the same
checkpoint the interval saves make at that point of a step (last.ckpt and step*.ckpt, written
atomically; tests/test_resume_exact.py shows a resume from one continues exactly), prints where,
and ends the run by raising :class:`TrainingStopped` before any more work starts (the next
batch, or a validation due at this step). A second Ctrl-C aborts at once, without saving.
All ranks agree on the step to stop at: the save is a collective under fsdp2.
"""

from __future__ import annotations

import os
import signal
import threading

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

HANDLED = (signal.SIGTERM, signal.SIGINT)


class TrainingStopped(Exception):
    """A run stopped by a signal after saving a resumable checkpoint.

    signum: the signal; step: the last trained step; checkpoint: where it was saved; result:
    the run's TrainResult, attached by dualmind.train.loop.run. Exit code: 128 + signum."""

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.result = None
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; "
                         f"checkpoint: {checkpoint or 'none'}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopOnSignal(L.Callback):
    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal received
        self._stopping: TrainingStopped | None = None
        self._previous: dict[int, object] = {}
        self._step_at_start = -1

    # ---- the handlers: installed for the training loop only ------------------------------------

    def on_train_start(self, trainer, pl_module) -> None:
        # Here, not in setup: Lightning installs its own SIGTERM handler after the callbacks'
        # setup and would otherwise run first and stop the run without a checkpoint.
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only; nothing to install
        for signum in HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame) -> None:
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt  # the second Ctrl-C: abort now, unsaved
        if self.signum is None:
            self.signum = signum
            # os.write, not print: a handler may interrupt a print on the same stream.
            again = " (Ctrl-C again aborts without saving)" if signum == signal.SIGINT else ""
            os.write(2, (f"\n{signal.Signals(signum).name} received: saving a checkpoint at the "
                         f"end of this step, then stopping{again}\n").encode())

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    # ---- the stop ------------------------------------------------------------------------------

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._stopping or trainer.global_step == self._step_at_start:
            return  # mid-accumulation: no optimizer step ended with this batch
        # Every rank asks after every step (one small all-reduce when distributed): a signal
        # reaching one rank mid-step must not leave the others waiting in the save's collectives.
        if not trainer.strategy.reduce_boolean_decision(self.signum is not None, all=False):
            return
        signum = self.signum if self.signum is not None else signal.SIGTERM  # another rank's
        checkpoint = trainer.checkpoint_callback
        path = checkpoint.save_now(trainer) if checkpoint is not None else None
        self._stopping = TrainingStopped(signum, trainer.global_step, path)
        _say(f"{signal.Signals(signum).name}: stopped after step {trainer.global_step}; "
             f"resumable checkpoint saved to {path} (resume with ckpt_path=last)")

    def _raise_if_stopping(self) -> None:
        if self._stopping is not None:
            self._restore()
            raise self._stopping

    # The first hooks after the stopping step: the module's own on_train_batch_end has logged it.
    def on_validation_start(self, trainer, pl_module) -> None:
        self._raise_if_stopping()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._raise_if_stopping()
        self._step_at_start = trainer.global_step

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()  # stopped on the last step: the run is complete, nothing to raise

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()

    def teardown(self, trainer, pl_module, stage) -> None:
        self._restore()


@rank_zero_only
def _say(line: str) -> None:
    print(line, flush=True)
