"""trainer.dry_run=true: the 70B and 200B recipes built on meta, sharded for 256 and 1024 GPUs
over a fake process group, sized with the planner's memory model — in seconds, no allocation."""

from __future__ import annotations

import math
import resource
import time

import pytest
import torch

from dualmind.config import compose
from dualmind.dry_run import dry_run, main
from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore

LLAMA3_70B_PARAMS = 70_553_706_496


def _expected_shard(model: str, world: int) -> int:
    """FSDP2 shards every parameter on dim 0; rank 0 holds ceil(rows / world) rows of each."""
    with torch.device("meta"):
        core = HyperCore(CoreConfig.from_name(model))
    return sum(math.ceil(p.shape[0] / world) * (p.numel() // p.shape[0])
               for p in core.parameters())


@pytest.mark.parametrize("recipe,model", [("core_70b", "70b"), ("core_200b", "200b")])
@pytest.mark.parametrize("gpus", [256, 1024])
def test_dry_run_counts_and_shards_without_allocating(recipe, model, gpus):
    cfg = compose([f"recipe={recipe}", "trainer.devices=8", f"trainer.num_nodes={gpus // 8}",
                   "trainer.dry_run=true"])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = dry_run(cfg)
    assert time.perf_counter() - start < 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 1_000_000  # KiB: < 1 GiB
    params = CoreConfig.from_name(model).num_params()
    assert result.params == params
    if model == "70b":
        assert params == LLAMA3_70B_PARAMS
    assert result.world_size == gpus
    assert result.shard_params == _expected_shard(model, gpus)
    assert params / gpus <= result.shard_params < 1.01 * params / gpus + 1e6
    m = result.memory
    assert m.model_state_per_gpu == pytest.approx(m.bytes_per_param_sharded * params / gpus)
    assert m.per_gpu == pytest.approx(m.model_state_per_gpu + m.working_set + m.activations
                                      + m.logits)
    assert result.tokens_per_step == (cfg.data.batch_size * cfg.data.seq_len * gpus
                                      * cfg.trainer.accumulate_grad_batches)
    assert result.flops_per_step > 6 * params * result.tokens_per_step


def test_dry_run_refuses_a_plan_that_does_not_fit(capsys):
    cfg = compose(["recipe=core_200b", "trainer.devices=8", "trainer.num_nodes=1",
                   "trainer.dry_run=true"])
    assert main(cfg) == 2
    out = capsys.readouterr()
    assert "DOES NOT FIT" in out.out
    assert "over by" in out.err and "fits from" in out.err


def test_train_py_dry_run_prints_the_plan(tmp_path):
    import subprocess
    import sys

    from dualmind.config import repo_root

    proc = subprocess.run(
        [sys.executable, str(repo_root() / "train.py"), "recipe=core_70b", "trainer.dry_run=true",
         f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "70,553,706,496" in proc.stdout and "per-rank shard" in proc.stdout
    assert not (tmp_path / "checkpoints").exists()  # nothing trained
