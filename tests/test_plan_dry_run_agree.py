"""`dualmind plan` and `train.py ... trainer.dry_run=true` size a GPU alike: the same memory unit
(GiB: the planner's GPU table and strategy.device_memory_gib), the same policy read from the
recipe (precision, activation checkpointing, strategy.loss_chunk), the same memory model, so the
same per-GPU total and the same smallest GPU count. Before, the planner read an H100 as 80e9
bytes (74.5 GiB) and the dry run as 80 GiB: 80 against 64 GPUs for core_70b."""

from __future__ import annotations

import pytest

from dualmind.config.schema import compose
from dualmind.distributed.dry_run import dry_run
from dualmind.plan.hardware import gpu_spec
from dualmind.plan.planner import plan
from dualmind.plan.request import PlanRequest


@pytest.mark.parametrize("recipe", ["core_70b", "core_200b"])
@pytest.mark.parametrize("gpu,chunk", [("h100", None), ("h200", None), ("h100", 0)])
def test_planner_and_dry_run_agree_on_memory_and_smallest_gpu_count(recipe, gpu, chunk):
    spec = gpu_spec(gpu)
    extra = [] if chunk is None else [f"strategy.loss_chunk={chunk}"]
    cfg = compose([f"recipe={recipe}", f"strategy.device_memory_gib={spec.memory_gib:g}", *extra])
    dry = dry_run(cfg).memory
    planned = plan(PlanRequest(recipe=recipe, gpu=gpu, overrides=extra)).memory
    assert planned["usable_hbm"] == dry.usable_hbm
    assert planned["loss_chunk"] == dry.loss_chunk == (None if chunk == 0 else 2048)
    for key in ("model_state_per_gpu", "working_set", "activations", "logits", "per_gpu"):
        assert planned[key] == pytest.approx(getattr(dry, key), rel=1e-12), key
    assert planned["min_gpus"] == dry.min_gpus is not None
    assert planned["min_gpus_nodes_of_8"] == dry.min_gpus_nodes_of_8


def test_the_recipes_gpu_memory_is_the_planners_default_gpu():
    """The large recipes plan for 80 GiB GPUs, the planner's default H100, in the same unit."""
    default = gpu_spec(PlanRequest().gpu)
    for recipe in ("core_70b", "core_200b", "decoder_align_70b"):
        assert compose([f"recipe={recipe}"]).strategy.device_memory_gib == default.memory_gib


def test_the_planner_counts_the_recipes_chunk_and_loss_chunk_0_restores_full_logits():
    """strategy.loss_chunk=2048 (the recipes') counts one chunk's logits, not every position's."""
    full = plan(PlanRequest(recipe="core_70b", loss_chunk=0)).memory
    chunked = plan(PlanRequest(recipe="core_70b")).memory
    vocab = compose(["recipe=core_70b"]).model.vocab_size
    assert full["logits"] == 16384 * vocab * 6 and chunked["logits"] == 2048 * vocab * 6
    assert chunked["min_gpus"] < full["min_gpus"]
