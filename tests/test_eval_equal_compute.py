"""The equal-compute study's FLOPs arithmetic: what each run pays, and the steps that spend one
budget (benchmarks/equal_compute_flops.py) — the part of the study that can silently be wrong."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from equal_compute_flops import (  # noqa: E402
    IGNORE,
    align_batch_flops,
    constant_steps,
    core_step_flops,
    lm_batch_flops,
    split_budget,
    steps_for_budget,
)

from dualmind.model.config import CoreConfig  # noqa: E402
from dualmind.model.decoder_config import DecoderConfig  # noqa: E402

CORE = CoreConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, ffn_dim=64, max_seq_len=64)
DECODER = DecoderConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, ffn_dim=32, core_dim=32)


def batch(core_doc, targets):
    core_doc, targets = torch.tensor(core_doc), torch.tensor(targets)
    return {"core_ids": torch.zeros_like(core_doc), "text_ids": torch.zeros_like(targets),
            "targets": targets, "alignment": SimpleNamespace(core_doc=core_doc)}


def test_ignore_matches_the_datamodule():
    from dualmind.model.loss import IGNORE as DATA_IGNORE

    assert IGNORE == DATA_IGNORE


def test_alignment_pays_for_the_decoder_and_the_frozen_cores_forward_on_real_positions():
    b = batch([[0, 0, 1, -1], [0, -1, -1, -1]], [[5, 6, 7, IGNORE, IGNORE], [1, 2, 3, 4, 5]])
    units, targets, S, T = 4, 8, 4, 5  # padding (doc -1, IGNORE) is not counted
    expected = (DECODER.flops_per_token(T, S, training=True) * targets
                + CORE.flops_per_token(S, training=False, head=False) * units)
    assert align_batch_flops(CORE, DECODER, b) == pytest.approx(expected)
    # the frozen core's forward stops at its states: a third of its training cost per
    # position less the output head's 2·vocab·dim, never zero
    head = 2 * CORE.vocab_size * CORE.dim
    assert CORE.flops_per_token(S, training=False, head=False) == pytest.approx(
        CORE.flops_per_token(S, training=False) - head)
    assert CORE.flops_per_token(S, training=False, head=False) > 0
    assert lm_batch_flops(CORE, b) == pytest.approx(CORE.flops_per_token(T) * targets)
    assert core_step_flops(CORE, 64, 8) == pytest.approx(CORE.flops_per_token(64) * 512)


def test_steps_for_budget_stop_at_the_first_step_that_reaches_it():
    costs = [3.0, 5.0, 2.0, 7.0, 1.0]
    s = steps_for_budget(10.0, lambda j: costs[j])
    assert s.steps == 3 and s.flops == 10.0 and list(s.cumulative) == [3.0, 8.0, 10.0]
    s = steps_for_budget(10.5, lambda j: costs[j])
    assert s.steps == 4 and s.flops == 17.0  # overshoot < one step's FLOPs
    assert s.at_step(0) == 0.0 and s.at_step(2) == 8.0
    assert steps_for_budget(0.0, lambda j: 1.0).steps == 0
    with pytest.raises(ValueError, match="not reached"):
        steps_for_budget(10.0, lambda j: 1.0, max_steps=5)


def test_a_two_headed_budget_splits_into_core_and_alignment_that_add_up():
    budget, per_step = 1000.0, 30.0
    core = constant_steps(split_budget(budget, 0.5, per_step), per_step)
    assert core.steps == 17 and core.flops == pytest.approx(510.0)
    align = steps_for_budget(budget - core.flops, lambda j: 40.0 + j)
    assert budget <= core.flops + align.flops < budget + 40.0 + align.steps
    baseline = steps_for_budget(budget, lambda j: 55.0)
    assert abs((core.flops + align.flops) - baseline.flops) < 55.0 + 40.0 + align.steps
    with pytest.raises(ValueError, match="core_share"):
        split_budget(budget, 1.0, per_step)
