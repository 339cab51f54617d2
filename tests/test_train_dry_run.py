"""trainer.dry_run=true: the 70B and 200B recipes built on meta, sharded for 256 and 1024 GPUs
over a fake process group, sized with the planner's memory model — in seconds, no allocation;
and stage align (decoder_align_70b): the frozen 70B core and the 8B decoder sharded together."""

from __future__ import annotations

import math
import resource
import time

import pytest
import torch

from dualmind.config.schema import compose
from dualmind.distributed.dry_run import dry_run, main
from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.plan.units import human_gib

LLAMA3_70B_PARAMS = 70_553_706_496


def _expected_shard(model: str | torch.nn.Module, world: int) -> int:
    """FSDP2 shards every parameter on dim 0; rank 0 holds ceil(rows / world) rows of each."""
    if isinstance(model, str):
        with torch.device("meta"):
            model = HyperCore(CoreConfig.from_name(model))
    return sum(math.ceil(p.shape[0] / world) * (p.numel() // p.shape[0])
               for p in model.parameters())


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
    if gpus == compose([f"recipe={recipe}"]).trainer.num_nodes * 8:  # the recipe's own size
        _assert_recipe_quotes(recipe, f"{human_gib(m.model_state_per_gpu)} model state",
                              f"{m.bytes_per_param_sharded} B/param",
                              f"{human_gib(m.per_gpu)} in all")


def _assert_recipe_quotes(recipe: str, *figures: str) -> None:
    """The recipe's comment quotes what its dry run prints (a recipe edit that changes the plan
    must update the comment, or this fails)."""
    from dualmind.config.schema import repo_root

    text = " ".join((repo_root() / "recipes" / "recipe" / f"{recipe}.yaml").read_text()
                    .replace("#", " ").split())
    for figure in figures:
        assert figure in text, f"recipes/recipe/{recipe}.yaml does not quote {figure!r}"


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

    from dualmind.config.schema import repo_root

    proc = subprocess.run(
        [sys.executable, str(repo_root() / "train.py"), "recipe=core_70b", "trainer.dry_run=true",
         f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "70,553,706,496" in proc.stdout and "per-rank shard" in proc.stdout
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


# ---- stage align -------------------------------------------------------------------------------

def _align_models(cfg):
    """The recipe's core and decoder, built on meta as training builds them (unsharded)."""
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    with torch.device("meta"):
        return (HyperCore(CoreConfig.from_dict(dict(cfg.model))),
                LanguageDecoder(DecoderConfig.from_dict(dict(cfg.decoder))))


def test_align_dry_run_plans_the_frozen_core_and_the_trained_decoder():
    from dualmind.distributed.dry_run_align import AlignDryRun
    from dualmind.model.step_flops import align_step_flops

    cfg = compose(["recipe=decoder_align_70b", "trainer.dry_run=true"])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = dry_run(cfg)
    assert time.perf_counter() - start < 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 1_000_000  # KiB: < 1 GiB
    assert isinstance(result, AlignDryRun)
    world = cfg.trainer.devices * cfg.trainer.num_nodes
    assert result.world_size == world == 64
    core, decoder = _align_models(cfg)
    assert result.core_params == sum(p.numel() for p in core.parameters()) == LLAMA3_70B_PARAMS
    assert result.decoder_params == sum(p.numel() for p in decoder.parameters()) \
        == 8_433_029_128  # conf/decoder/8b.yaml's own count
    assert result.core_shard_params == _expected_shard(core, world)
    assert result.decoder_shard_params == _expected_shard(decoder, world)

    m = result.memory  # fp32-master: the core holds fp32 weights only, the decoder 16 B/param
    assert m.precision == "fp32-master"
    assert m.core_shard == 4 * result.core_shard_params
    assert m.decoder_state == 16 * result.decoder_shard_params
    assert m.core_phase == pytest.approx(m.core_working + m.core_activations
                                         + m.cross_inputs)
    assert m.decoder_phase == pytest.approx(m.cross_inputs + m.decoder_working
                                            + m.decoder_activations + m.decoder_logits)
    assert m.per_gpu == pytest.approx(m.core_shard + m.decoder_state
                                      + max(m.core_phase, m.decoder_phase))
    assert m.decoder_logits == 1 * 8192 * 128256 * 6  # one row of 8,192 tokens, bf16 + fp32
    assert m.fits and result.min_gpus <= world

    rows, S, T = cfg.data.batch_size, cfg.data.seq_len, cfg.decoder.max_seq_len
    steps = world * cfg.trainer.accumulate_grad_batches
    assert result.core_symbols_per_step == rows * S * steps
    assert result.text_tokens_per_step == rows * T * steps
    # The formula training logs, over one full micro-batch of real tensors.
    from types import SimpleNamespace

    batch = {"alignment": SimpleNamespace(core_doc=torch.zeros(rows, S, dtype=torch.long)),
             "targets": torch.zeros(rows, T, dtype=torch.long),
             "core_ids": torch.zeros(rows, S, dtype=torch.long),
             "text_ids": torch.zeros(rows, T, dtype=torch.long)}
    want = align_step_flops(core.cfg, decoder.cfg, batch) * steps
    assert result.flops_per_step == pytest.approx(want)
    _assert_recipe_quotes("decoder_align_70b", f"= {human_gib(m.core_shard)}",
                          f"= {human_gib(m.decoder_state)}", "x 16 B",
                          f"{human_gib(m.per_gpu)} of 72 usable")
    report = result.report()
    for part in ("frozen core", "decoder (trained)", "core forward", "decoder step",
                 "cross inputs", "70,553,706,496", "8,433,029,128", "verdict               fits"):
        assert part in report, part


def test_align_dry_run_refuses_a_plan_that_does_not_fit(capsys):
    cfg = compose(["recipe=decoder_align_70b", "trainer.dry_run=true",
                   "strategy.device_memory_gib=16"])
    result = dry_run(cfg)
    over = result.memory.per_gpu - result.memory.usable_hbm
    assert over > 0
    assert main(cfg) == 2
    out = capsys.readouterr()
    assert "DOES NOT FIT" in out.out
    assert f"over by {human_gib(over)}" in out.err and "decoder_align_70b" in out.err


@pytest.mark.parametrize("recipe,override,says", [
    ("decoder_align_70b", "strategy.tensor_parallel_size=2", "stage=align shards the core and"),
    ("core_70b", "strategy.tensor_parallel_size=16", "does not divide model.n_kv_heads=8"),
])
def test_a_sharding_plan_that_cannot_be_applied_is_reported_not_raised(recipe, override, says,
                                                                     capsys):
    cfg = compose([f"recipe={recipe}", "trainer.dry_run=true", override])
    assert main(cfg) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and "tensor_parallel_size" in err
