"""A run stopped with SIGTERM or Ctrl-C saves a resumable checkpoint at the end of the step in
progress, says where, exits, and a resume from it continues exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import lightning as L
import pytest
import torch

from dualmind.config.schema import compose, repo_root
from dualmind.train.loop import run
from dualmind.train.stop_signal import StopOnSignal, TrainingStopped
from test_train_support import tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = ["trainer.max_steps=8", "trainer.checkpoint_every_n_steps=4",
        "trainer.val_check_interval=3", "trainer.precision=32-true"]


class SendSignal(L.Callback):
    """Signal this process once step ``at`` is done, as a user or Slurm would mid-run. Listed
    after StopOnSignal, it acts after that step's stop check: the stop comes one step later."""

    def __init__(self, signum: int, at: int):
        self.signum, self.at = signum, at

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_run_saves_at_the_step_end_and_resumes_exactly(tmp_path, signum, capsys):
    whole = run(compose(tiny_overrides(tmp_path / "whole", *BASE)))
    cut = tiny_overrides(tmp_path / "cut", *BASE)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingStopped) as stop:
        run(compose(cut), callbacks=[SendSignal(signum, at=5)])
    assert signal.getsignal(signal.SIGINT) is before  # the run's handlers are gone again
    # Step 6 ended after the signal; the interval checkpoint was step 4's.
    assert stop.value.step == 6 and stop.value.exit_code == 128 + signum
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    assert stop.value.checkpoint == str(last)
    assert torch.load(last, weights_only=True)["global_step"] == 6
    out = capsys.readouterr().out
    assert f"{signal.Signals(signum).name}: stopped after step 6; resumable checkpoint saved " \
           f"to {last}" in out
    assert [r["step"] for r in stop.value.result.train] == [1, 2, 3, 4, 5, 6]  # 6 is logged
    assert f"stopped by {signal.Signals(signum).name}" in stop.value.result.summary()

    resumed = run(compose([*cut, "ckpt_path=last"]))
    assert [r["step"] for r in resumed.train] == [7, 8]
    assert [r["loss"] for r in resumed.train] == pytest.approx(
        [r["loss"] for r in whole.train[6:]], abs=1e-6)


def test_a_second_ctrl_c_aborts_without_waiting():
    stopper = StopOnSignal()
    stopper._handle(signal.SIGINT, None)  # the first asks for a clean stop ...
    assert stopper.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):  # ... the second is an ordinary Ctrl-C
        stopper._handle(signal.SIGINT, None)


def test_train_py_stopped_by_sigterm_leaves_a_resumable_checkpoint(tmp_path):
    """A real SIGTERM from outside, to the Hydra entry point, after the progress line of step 2;
    the run is long (max_steps=100000), so only the signal ends it."""
    base = tiny_overrides(tmp_path / "run", "trainer.precision=32-true",
                          "trainer.checkpoint_every_n_steps=0")
    long_run = [*base, "trainer.max_steps=100000", "trainer.progress_every_n_steps=1",
                "trainer.val_check_interval=100000"]
    child = subprocess.Popen(
        [sys.executable, str(repo_root() / "train.py"), *long_run], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    seen = []
    for line in child.stdout:  # read until training is under way
        seen.append(line)
        if line.startswith("step 2/"):
            child.send_signal(signal.SIGTERM)
            break
    out, err = child.communicate(timeout=300)
    assert child.returncode == 128 + signal.SIGTERM, "".join(seen) + out + err[-3000:]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    step = torch.load(last, weights_only=True)["global_step"]
    assert step >= 2
    assert f"SIGTERM: stopped after step {step}; resumable checkpoint saved to {last}" in out
    assert f"trained {step} steps" in out and "stopped by SIGTERM" in out
    assert not [p for p in last.parent.iterdir() if ".tmp" in p.name]

    resumed = run(compose([*base, f"trainer.max_steps={step + 2}", "ckpt_path=last"]))
    assert [r["step"] for r in resumed.train] == [step + 1, step + 2]
    assert resumed.start_step == step and resumed.steps_this_run == 2
