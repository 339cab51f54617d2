"""Progress a person can see: off a terminal (a log file, CI, Slurm) training prints a plain line
every N steps or S seconds; on a terminal the rich bar shows it instead. Under pytest stdout is
captured, so it is not a terminal."""

from __future__ import annotations

import re
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from dualmind.config.schema import compose
from dualmind.train.loop import run
from dualmind.train.progress import TrainingProgress, duration
from dualmind.train.step_counts import StepCounts
from test_train_support import tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")

LINE = re.compile(r"^step (\d+)/6 · loss \d+\.\d{3} · bpb \d+\.\d{3} · [\d,]+ symbols/s · "
                  r"ETA \d+s$")


class Peek(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.bar = type(trainer.progress_bar_callback).__name__


def _run(tmp_path, *extra):
    peek = Peek()
    result = run(compose(tiny_overrides(
        tmp_path, "trainer.max_steps=6", "trainer.val_check_interval=3",
        "trainer.enable_progress_bar=true", "trainer.progress_every_n_steps=2",
        "trainer.progress_every_s=0", "trainer.precision=32-true", *extra)), callbacks=[peek])
    return result, peek


def test_off_a_terminal_training_prints_plain_lines(tmp_path, capsys):
    result, peek = _run(tmp_path)
    printed = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step ")]
    lines = [ln for ln in printed if "val" not in ln]
    assert all(LINE.match(ln) for ln in lines), lines
    # the first step (a sign of life), every 2nd step, and the last
    assert [int(LINE.match(ln)[1]) for ln in lines] == [1, 2, 4, 6]
    step4 = next(r for r in result.train if r["step"] == 4)
    assert f"loss {step4['loss']:.3f} · bpb {step4['bpb']:.3f}" in lines[2]
    # each validation (every 3 steps) too, with what the summary reports
    assert [ln for ln in printed if "val" in ln] == [
        f"step {v['step']} · val loss {v['loss']:.3f} · val bpb {v['bpb']:.3f}"
        for v in result.val]
    assert [v["step"] for v in result.val] == [3, 6]
    assert peek.bar == "NoneType"  # no rich bar: it would print nothing until the end


def test_on_a_terminal_the_rich_bar_shows_progress_instead(tmp_path, capsys, monkeypatch):
    import dualmind.train.progress

    monkeypatch.setattr(dualmind.train.progress, "stdout_is_terminal", lambda: True)
    _, peek = _run(tmp_path)
    assert not [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step ")]
    assert peek.bar == "StepProgressBar"


def test_a_line_every_s_seconds_when_steps_are_slow(capsys):
    """Driven by a fake clock: steps 1..10, 7 s each, a line at least every 20 s."""
    now = [0.0]
    progress = TrainingProgress(every_n_steps=0, every_s=20, clock=lambda: now[0])
    trainer = SimpleNamespace(global_step=0, max_steps=10)
    module = SimpleNamespace(stage="align", last_counts=StepCounts(
        torch.tensor(700.0), torch.tensor(100), torch.tensor(0)))  # no text bytes: no bpb
    progress.on_train_start(trainer, module)
    for step in range(1, 11):
        now[0] += 7.0
        trainer.global_step = step
        progress.on_train_batch_end(trainer, module, None, None, step - 1)
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(" · ")[0] for ln in lines] == ["step 1/10", "step 4/10", "step 7/10",
                                                     "step 10/10"]
    # 3 steps of 100 tokens since the last line, in 21 s; 7 steps took 49 s, 3 to go: 21 s
    assert lines[2] == "step 7/10 · loss 7.000 · 14 tokens/s · ETA 21s"


def test_zero_turns_the_lines_off(tmp_path, capsys):
    _run(tmp_path, "trainer.progress_every_n_steps=0")
    assert not [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("step ")]


def test_durations_read_as_a_person_would_write_them():
    assert [duration(s) for s in (0, 59.4, 61, 3600, 3725)] == ["0s", "59s", "1m01s", "1h00m",
                                                                "1h02m"]


def test_the_summary_counts_this_invocations_steps_and_the_total(tmp_path):
    base = ["trainer.checkpoint_every_n_steps=4", "trainer.val_check_interval=100",
            "trainer.precision=32-true"]
    first = run(compose(tiny_overrides(tmp_path, "trainer.max_steps=4", *base)))
    assert (first.start_step, first.steps_this_run) == (0, 4)
    assert first.summary().startswith("trained 4 steps in ")
    resumed = run(compose(tiny_overrides(tmp_path, "trainer.max_steps=6", *base,
                                         "ckpt_path=last")))
    assert (resumed.start_step, resumed.steps_this_run, resumed.steps) == (4, 2, 6)
    head = resumed.summary().splitlines()[0]
    assert head.startswith("trained 2 steps in ")
    assert "resumed from step 4: 6 steps in total" in head
