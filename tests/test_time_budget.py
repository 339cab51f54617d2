"""trainer.time_budget_s (issue 12): a run that would not fit its budget lowers max_steps early,
looks again once later, and its learning-rate schedule ends at the last step decided."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dualmind.train.optim import WarmupCosine
from dualmind.train.time_budget import TimeBudget


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_trainer(max_steps: int):
    schedule = WarmupCosine(5, max_steps, 0.1)
    epoch_loop = SimpleNamespace(max_steps=max_steps)
    trainer = SimpleNamespace(global_step=0, fit_loop=SimpleNamespace(epoch_loop=epoch_loop),
                              lr_scheduler_configs=[SimpleNamespace(
                                  scheduler=SimpleNamespace(lr_lambdas=[schedule]))])
    return trainer, schedule


def run(budget: float, step_s: float, max_steps: int, steps: int = 30, first_s: float = 5.0,
        later_s: float | None = None):
    """A run of `steps` steps: the first takes first_s, the next 9 step_s, the rest later_s
    (default step_s)."""
    clock = Clock()
    trainer, schedule = fake_trainer(max_steps)
    callback = TimeBudget(budget, probe_steps=10, margin=0.0, clock=clock, review_steps=50)
    callback.on_train_start(trainer, None)
    for i in range(steps):
        clock.now += first_s if i == 0 else step_s if i < 10 or later_s is None else later_s
        trainer.global_step += 1
        trainer.max_steps = trainer.fit_loop.epoch_loop.max_steps  # Trainer's property
        callback.on_train_batch_end(trainer, None, None, None, i)
    return trainer, schedule, callback


def test_a_run_that_would_not_fit_stops_early_with_a_full_schedule(capsys):
    # 1 s per step after a 5 s first step: 100 steps fit in 104 s, not 300
    trainer, schedule, callback = run(budget=104.0, step_s=1.0, max_steps=300)
    assert callback.decided_steps == 100
    assert trainer.fit_loop.epoch_loop.max_steps == 100 and schedule.total == 100
    assert schedule(99) == pytest.approx(0.1, abs=1e-3)  # the cosine reaches its floor at the end
    assert "stops at step 100" in capsys.readouterr().out


def test_a_run_that_fits_is_left_alone(capsys):
    trainer, schedule, callback = run(budget=1000.0, step_s=1.0, max_steps=300)
    assert callback.decided_steps == 300
    assert trainer.fit_loop.epoch_loop.max_steps == 300 and schedule.total == 300
    assert capsys.readouterr().out == ""


def test_a_budget_already_spent_still_ends_on_a_step_after_the_probe():
    trainer, _, callback = run(budget=3.0, step_s=1.0, max_steps=300)
    assert callback.decided_steps == 11  # the probe's own steps are done; the next one ends it


def test_slow_first_steps_are_given_back_at_the_second_look(capsys):
    # 2 s per step while the probe times it, 1 s after: the probe cuts 300 steps to 148
    # (10 + 277 s / 2 s); the second look at step 50 (1.18 s a step over steps 2-50) gives back
    # what now fits: 50 + 237 s / 1.18 s
    trainer, schedule, callback = run(budget=300.0, step_s=2.0, max_steps=300, steps=60,
                                      later_s=1.0)
    out = capsys.readouterr().out
    assert "stops at step 148" in out and "stops at step 250, not 148" in out
    assert callback.decided_steps == trainer.fit_loop.epoch_loop.max_steps == schedule.total
    assert callback.reviewed


def test_a_run_that_slows_down_after_the_probe_is_cut_at_the_second_look(capsys):
    trainer, schedule, callback = run(budget=320.0, step_s=1.0, max_steps=300, steps=60,
                                      later_s=3.0)
    assert "looked at again at step 50" in capsys.readouterr().out
    assert callback.decided_steps == trainer.fit_loop.epoch_loop.max_steps == schedule.total
    assert 50 < callback.decided_steps < 300


def test_the_second_look_never_goes_past_the_runs_own_steps():
    trainer, schedule, callback = run(budget=10_000.0, step_s=3.0, max_steps=300, steps=60,
                                      later_s=0.1)
    assert callback.decided_steps == 300 == trainer.fit_loop.epoch_loop.max_steps


def test_the_second_look_leaves_a_small_drift_alone(capsys):
    # the probe decides 148 steps; at step 50 the rate is 2% faster: 150 would fit, not worth a
    # second schedule change
    trainer, schedule, callback = run(budget=300.0, step_s=2.0, max_steps=300, steps=60,
                                      later_s=1.96)
    assert callback.decided_steps == trainer.fit_loop.epoch_loop.max_steps == 148
    assert "looked at again" not in capsys.readouterr().out


def test_the_budget_must_be_positive():
    with pytest.raises(ValueError, match="time_budget_s"):
        TimeBudget(0)
