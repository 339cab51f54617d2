"""Exact resume: a run cut in the middle and resumed sees exactly the batches AND the random draws
of the uninterrupted run, so its per-step losses are the same.

The core has no dropout, so the test gives its training step randomness: each step corrupts a
fifth of the input symbols with torch draws and records one numpy and one Python draw as well.
The random stream lives in dualmind.train.rng_state.TrainingRNG, saved per rank in the checkpoint.
Validation runs in between (its loader iterators draw from torch's global generator), and sanity
checks run on resume, so the check also proves the stream is isolated from those draws.

Negative controls: with the RNG restore disabled, or the data position reset, the same comparison
fails — the assertions can fail and do measure the restore.
"""

from __future__ import annotations

import lightning as L
import pytest

from dualmind.config.schema import compose
from dualmind.train.loop import run
from test_resume_support import make_core_step_noisy
from test_train_support import tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = [
    "trainer.max_steps=8",
    "trainer.checkpoint_every_n_steps=4",
    "trainer.val_check_interval=3",
    "trainer.num_sanity_val_steps=1",
    "trainer.precision=32-true",
    "data.val_max_batches=1",
]


class Crash(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 5:  # after the step-4 checkpoint, before the next one
            raise RuntimeError("simulated crash")


@pytest.fixture
def noisy_steps(monkeypatch):
    """Make the training step random; returns the per-step log {step: (batch hash, draws)}."""
    log: dict[int, tuple] = {}
    make_core_step_noisy(monkeypatch, log)
    return log


def _cut_and_resume(tmp_path, name: str, log: dict) -> tuple[list[float], dict]:
    log.clear()
    overrides = tiny_overrides(tmp_path / name, *BASE)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose(overrides), callbacks=[Crash()])
    log.clear()
    resumed = run(compose([*overrides, "ckpt_path=last"]))
    assert [r["step"] for r in resumed.train] == [5, 6, 7, 8]
    return [r["loss"] for r in resumed.train], dict(log)


def test_resume_continues_batches_and_random_draws(tmp_path, noisy_steps, monkeypatch):
    whole = run(compose(tiny_overrides(tmp_path / "whole", *BASE)))
    whole_log = {k: v for k, v in noisy_steps.items() if k >= 4}
    whole_tail = [r["loss"] for r in whole.train[4:]]
    assert len(set(v[1:] for v in whole_log.values())) == 4  # the draws differ from step to step

    losses, log = _cut_and_resume(tmp_path, "cut", noisy_steps)
    assert log == whole_log  # the same batches and the same torch / numpy / Python draws
    assert losses == pytest.approx(whole_tail, abs=1e-6)

    # Negative control 1: without restoring the RNG, the resumed steps draw what steps 1-4 drew.
    from dualmind.train.rng_state import TrainingRNG

    monkeypatch.setattr(TrainingRNG, "load_state_dict", lambda self, state: None)
    losses, log = _cut_and_resume(tmp_path, "no-rng-restore", noisy_steps)
    assert all(log[k][0] == whole_log[k][0] for k in log)  # batches still right ...
    assert all(log[k][1:] != whole_log[k][1:] for k in log)  # ... draws not
    assert max(abs(a - b) for a, b in zip(losses, whole_tail, strict=True)) > 1e-4
    monkeypatch.undo()


def test_resume_without_data_position_is_caught(tmp_path, noisy_steps, monkeypatch):
    """Negative control 2: a loader that restarts at batch 0 on resume is seen as wrong batches."""
    import dualmind.train.datamodule as datamodule

    whole = run(compose(tiny_overrides(tmp_path / "whole", *BASE)))
    whole_log = {k: v for k, v in noisy_steps.items() if k >= 4}
    plain = datamodule.trainer_position
    monkeypatch.setattr(datamodule, "trainer_position",
                        lambda trainer: (0, *plain(trainer)[1:]))
    losses, log = _cut_and_resume(tmp_path, "no-data-position", noisy_steps)
    assert all(log[k][0] != whole_log[k][0] for k in log)
    assert max(abs(a - r["loss"]) for a, r in zip(losses, whole.train[4:], strict=True)) > 1e-4
