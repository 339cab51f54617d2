"""A corrupt (truncated) last.ckpt: ckpt_path=last resumes from the newest intact checkpoint of
the run, with a warning naming both; with none intact, or an explicit path that is cut short,
the error names what to pass. And the end-of-run summary counts this invocation's steps."""

from __future__ import annotations

import pytest

from dualmind.config import compose
from dualmind.train_loop import TrainingError, run
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
