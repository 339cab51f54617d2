"""A corrupt (truncated) last.ckpt: ckpt_path=last resumes from the newest intact checkpoint of
the run, with a warning naming both; with none intact, or an explicit path that is cut short,
the error names what to pass; a step file newer than last.ckpt (a run killed between writing the
two) is resumed from. And the end-of-run summary counts this invocation's steps."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import pytest
import torch

from dualmind.config.schema import compose
from dualmind.train.loop import TrainingError, run
from test_train_support import tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = ["trainer.checkpoint_every_n_steps=4", "trainer.val_check_interval=100",
        "trainer.precision=32-true"]


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def six_steps(tmp_path):
    """A 6-step run: checkpoints/last.ckpt and step0000006.ckpt, both of step 6."""
    result = run(compose(tiny_overrides(tmp_path, "trainer.max_steps=6", *BASE)))
    assert "resumed" not in result.summary().splitlines()[0]
    assert result.summary().startswith("trained 6 steps in")
    return tmp_path / "checkpoints"


def test_a_truncated_last_ckpt_falls_back_to_the_newest_intact_one(tmp_path, six_steps):
    last, step6 = six_steps / "last.ckpt", six_steps / "step0000006.ckpt"
    assert step6.is_file()
    _truncate(last)
    with pytest.warns(UserWarning) as warned:
        resumed = run(compose(tiny_overrides(tmp_path, "trainer.max_steps=8", *BASE,
                                             "ckpt_path=last")))
    message = next(str(w.message) for w in warned if "ckpt_path=last" in str(w.message))
    assert str(last) in message and str(step6) in message and "cannot be read" in message
    assert [r["step"] for r in resumed.train] == [7, 8]
    # the summary says what this invocation trained, and the run's total
    assert resumed.summary().splitlines()[0].startswith(
        "trained 2 steps in ") and "resumed from step 6: 8 steps in total" in resumed.summary()


def test_with_nothing_intact_the_error_names_the_file(tmp_path, six_steps):
    for ckpt in six_steps.iterdir():
        _truncate(ckpt)
    with pytest.raises(TrainingError, match=r"ckpt_path=last: .*last\.ckpt: cannot read "
                                            r"checkpoint.*no other checkpoint"):
        run(compose(tiny_overrides(tmp_path, "trainer.max_steps=8", *BASE, "ckpt_path=last")))


def test_an_explicit_truncated_path_is_refused_naming_the_intact_one(tmp_path, six_steps):
    last = six_steps / "last.ckpt"
    _truncate(last)
    with pytest.raises(TrainingError, match=rf"ckpt_path={last}: cannot read checkpoint .*"
                                            rf"intact one beside it is ckpt_path=.*step0000006"):
        run(compose(tiny_overrides(tmp_path, "trainer.max_steps=8", *BASE,
                                   f"ckpt_path={last}")))


def test_train_py_names_the_intact_checkpoint_beside_a_cut_one(tmp_path, six_steps):
    """train.py checks ckpt_path before the run (dualmind.train.run_paths), so its one line must
    give the hint the run would have given (it said only 'not a readable checkpoint')."""
    from dualmind.train.run_paths import RunPathError, check_run_paths

    last = six_steps / "last.ckpt"
    _truncate(last)
    cfg = compose(tiny_overrides(tmp_path, "trainer.max_steps=8", *BASE, f"ckpt_path={last}"))
    with pytest.raises(RunPathError, match=rf"ckpt_path={last}: not a readable checkpoint .*; "
                                           r"the newest intact one beside it is ckpt_path=.*"
                                           r"step0000006\.ckpt"):
        check_run_paths(cfg)


class KeepLastOfStep4(L.Callback):
    """Copy last.ckpt as it is at step 4, before the step-8 save replaces it."""

    def __init__(self, dst):
        self.dst = dst

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 5:
            shutil.copy(Path(trainer.default_root_dir, "checkpoints", "last.ckpt"), self.dst)


@pytest.mark.parametrize("last", ["of step 4", "missing"])
def test_a_run_killed_between_the_step_file_and_last_resumes_from_the_step_file(tmp_path, last):
    """A save writes step0000008.ckpt, then last.ckpt; killed in between (benchmarks/faults.py),
    last.ckpt is still step 4's, or absent at a run's first save. Resuming from it would redo
    steps (or, with none, Lightning starts again from step 0); the step file is whole and newer."""
    old = tmp_path / "last-step4.ckpt"
    run(compose(tiny_overrides(tmp_path, "trainer.max_steps=8", *BASE)),
        callbacks=[KeepLastOfStep4(old)])
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step0000008.ckpt"]
    if last == "missing":
        (ckpts / "last.ckpt").unlink()
    else:
        shutil.copy(old, ckpts / "last.ckpt")  # now the newest file, yet of the older step
    with pytest.warns(UserWarning, match=r"resuming from .*step0000008\.ckpt \(step 8\)"):
        resumed = run(compose(tiny_overrides(tmp_path, "trainer.max_steps=10", *BASE,
                                             "ckpt_path=last")))
    assert [r["step"] for r in resumed.train] == [9, 10]


def test_resumed_at_the_final_step_from_the_step_file_last_ckpt_is_brought_up_to_date(tmp_path):
    """Killed while writing last.ckpt at the final step: the resume trains nothing, and
    last.ckpt, which export, eval and core.checkpoint read, kept step 4's weights."""
    old = tmp_path / "last-step4.ckpt"
    base = tiny_overrides(tmp_path, "trainer.max_steps=8", *BASE)
    run(compose(base), callbacks=[KeepLastOfStep4(old)])
    ckpts = tmp_path / "checkpoints"
    shutil.copy(old, ckpts / "last.ckpt")
    with pytest.warns(UserWarning, match="step0000008.ckpt"):
        resumed = run(compose([*base, "ckpt_path=last"]))
    assert resumed.train == [] and resumed.steps == 8
    last = torch.load(ckpts / "last.ckpt", weights_only=True)
    step8 = torch.load(ckpts / "step0000008.ckpt", weights_only=True)
    assert last["global_step"] == 8
    assert all(torch.equal(last["state_dict"][k], v) for k, v in step8["state_dict"].items())
