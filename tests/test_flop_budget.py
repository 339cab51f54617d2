"""trainer.max_flops (issue 14): a run stops at the first step that reaches its FLOP budget,
counted as train/flops_total and benchmarks/equal_compute.py count them, with its learning-rate
schedule ending there."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dualmind.config.schema import ConfigError, compose
from dualmind.model.config import CoreConfig
from dualmind.train.flop_budget import FlopBudget, steps_for_flops
from dualmind.train.loop import run, train
from test_train_support import QUIET, TINY_MODEL, tiny_corpus, tiny_overrides

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from equal_compute import align_schedule  # noqa: E402

from test_train_align import align_overrides  # noqa: E402
from test_train_align import core_checkpoint as core_checkpoint  # noqa: E402 - a fixture


def test_steps_for_flops_stops_at_the_first_step_that_reaches_the_budget():
    costs = [3.0, 5.0, 2.0, 7.0, 1.0]
    assert steps_for_flops(10.0, 0.0, 0, lambda j: costs[j]) == 3
    assert steps_for_flops(10.5, 0.0, 0, lambda j: costs[j]) == 4
    # resumed after 2 steps that spent 8: counted on from step 2
    assert steps_for_flops(10.5, 8.0, 2, lambda j: costs[j]) == 4
    assert steps_for_flops(8.0, 8.0, 2, lambda j: costs[j]) == 2  # spent: no further step
    with pytest.raises(ValueError, match="not reached in 5 steps"):
        steps_for_flops(1e9, 0.0, 0, lambda j: 1.0, max_steps=5)
    with pytest.raises(ValueError, match="costs 0.0 FLOPs"):
        steps_for_flops(1.0, 0.0, 0, lambda j: 0.0)
    with pytest.raises(ValueError, match="trainer.max_flops"):
        FlopBudget(0)


def test_the_key_is_validated_by_name():
    assert compose(["recipe=core_mini", "trainer.max_flops=5e13"]).trainer.max_flops == 5e13
    assert compose(["recipe=core_mini"]).trainer.max_flops is None
    with pytest.raises(ConfigError, match=r"trainer.max_flops=-1.0 must be > 0 training FLOPs"):
        compose(["recipe=core_mini", "trainer.max_flops=-1.0"])


def core_step_flops() -> float:
    cfg = compose(tiny_overrides(Path("unused")))
    model = CoreConfig.from_dict(dict(cfg.model))
    return model.flops_per_token(cfg.data.seq_len) * cfg.data.seq_len * cfg.data.batch_size


def test_a_core_run_spends_its_budget_and_a_resume_counts_what_it_spent(tmp_path, capsys):
    per_step = core_step_flops()
    base = ["trainer.val_check_interval=100", "trainer.max_steps=3"]  # replaced by the budget
    result = train(tiny_overrides(tmp_path, *base, f"trainer.max_flops={7.5 * per_step}"))
    assert result.steps == 8  # 7.5 steps' FLOPs: the 8th step reaches them
    ckpt = torch.load(result.last_checkpoint, weights_only=False)
    spent = ckpt["dualmind"]["flops_total"]
    assert 7.5 * per_step <= spent < 7.5 * per_step + per_step
    assert spent == pytest.approx(8 * per_step, rel=1e-9)
    schedule = ckpt["lr_schedulers"][0]["lr_lambdas"][0]
    assert schedule["total"] == 8  # the cosine ends at the budget's last step
    out = capsys.readouterr().out
    assert "max_steps=8 (trainer.max_steps=3 replaced" in out
    assert "optim.warmup_steps=30 is not below the budget's 8 steps" in out  # core_mini's 30
    # a larger budget resumed from that checkpoint trains only what the first run did not spend
    more = train(tiny_overrides(tmp_path, *base, f"trainer.max_flops={12.2 * per_step}",
                                "ckpt_path=last"))
    assert more.steps == 13 and [x["step"] for x in more.train] == list(range(9, 14))
    ended = torch.load(more.last_checkpoint, weights_only=False)["dualmind"]["flops_total"]
    assert ended == pytest.approx(13 * per_step, rel=1e-9)


@pytest.mark.parametrize("stage", ["lm", "align"])
def test_a_text_run_stops_where_the_equal_compute_study_would(stage, tmp_path, core_checkpoint):
    """Align rows differ in length: the steps come from the very batches the run draws, and
    match the study's own schedule (benchmarks/equal_compute.py align_schedule)."""
    if stage == "lm":
        over = ["recipe=baseline_bpe_mini", f"data.dir={tiny_corpus()}", f"run_dir={tmp_path}",
                *TINY_MODEL, "data.seq_len=128", "data.batch_size=2", "data.val_max_batches=1",
                *QUIET]
    else:
        over = align_overrides(tmp_path, core_checkpoint)
    over += ["trainer.val_check_interval=100", "trainer.precision=32-true"]
    first = align_schedule(over, 1.0).flops  # one step's FLOPs
    study = align_schedule(over, 5.5 * first)
    if stage == "align":
        steps = np.diff(study.cumulative, prepend=0.0)
        assert len(set(steps.tolist())) > 1, "rows of one length: the test would show nothing"
    result = run(compose([*over, f"trainer.max_flops={5.5 * first}"]))
    assert result.steps == study.steps >= 5
    spent = torch.load(result.last_checkpoint, weights_only=False)["dualmind"]["flops_total"]
    assert spent == pytest.approx(study.flops, rel=1e-9)


def test_stages_whose_batches_it_cannot_count_are_refused(tmp_path):
    from dualmind.train.loop import TrainingError, build_trainer

    cfg = compose(["recipe=bridge_lora", "trainer.max_flops=1e12", f"run_dir={tmp_path}"])
    with pytest.raises(TrainingError, match="trainer.max_flops counts the batches of stages"):
        build_trainer(cfg, tmp_path, precision="32-true")
