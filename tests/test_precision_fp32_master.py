"""The precision policy the large recipes launch with, run for real on two gloo ranks (FSDP2, CPU):
fp32 sharded master weights and fp32 AdamW state, bf16 compute through FSDP2's
MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32).

The policy is read from the recipes themselves (core_70b, decoder_align_70b) and applied to a tiny
model, so these tests fail if a recipe goes back to ``trainer.precision=bf16-true``: that casts the
model to bf16 before the optimizer is built, and AdamW then keeps weights, m and v in bf16 (the
control run below shows the checks tell the two apart).
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest

from dualmind.config.schema import compose
from dualmind.train.loop import run
from test_parallel_support import spawn_ranks
from test_train_align import align_overrides, core_checkpoint  # noqa: F401 - pytest fixture
from test_train_support import tiny_corpus, tiny_overrides

pytestmark = pytest.mark.multiprocess

STEPS = 8
LARGE_RECIPES = ("core_70b", "core_200b", "decoder_align_70b", "core_1b")
COMMON = [f"trainer.max_steps={STEPS}", "trainer.val_check_interval=1000",
          "trainer.checkpoint_every_n_steps=0", "trainer.num_threads=1", "optim.warmup_steps=1",
          "optim.lr=3e-3", "strategy=fsdp2", "trainer.devices=2", "trainer.accelerator=cpu",
          "strategy.activation_checkpointing=full", "data.batch_size=2"]


def launch_policy(recipe: str) -> list[str]:
    """The precision settings ``recipe`` launches with, as overrides for a tiny run."""
    cfg = compose([f"recipe={recipe}"])
    return [f"trainer.precision={cfg.trainer.precision}",
            f"strategy.param_dtype={cfg.strategy.param_dtype}",
            f"strategy.reduce_dtype={cfg.strategy.reduce_dtype}"]


BF16_TRUE = ["trainer.precision=bf16-true", "strategy.param_dtype=bfloat16",
             "strategy.reduce_dtype=float32"]


def _dtype(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def _kinds(tensors) -> list[str]:
    """Distinct 'Type dtype' of the tensors (DTensor = sharded by FSDP2)."""
    return sorted({f"{type(t).__name__} {str(t.dtype).removeprefix('torch.')}" for t in tensors})


class Inspect(L.Callback):
    """Records what the optimizer holds, the gradients it steps with, and the dtype the matmuls
    of the trained (and in align the frozen) model compute in."""

    def __init__(self, out: Path):
        self.out, self.seen = out, {}

    def on_train_start(self, trainer, module):
        trained = module.decoder if module.stage == "align" else module.core
        watch = {"trained_matmul": trained.layers[0].attention.wq}
        if module.stage == "align":
            watch["frozen_matmul"] = module.core.layers[0].attention.wq
            self.seen["frozen_params"] = _kinds(module.core.parameters())
        for name, layer in watch.items():
            layer.register_forward_hook(self._record_dtype(name))

    def _record_dtype(self, name: str):
        def hook(module, args, output) -> None:
            self.seen.setdefault(name, _dtype(output))
            if output.requires_grad:  # the gradient backward sends through this matmul
                output.register_hook(self._record_grad_dtype(f"{name}_grad"))
        return hook

    def _record_grad_dtype(self, name: str):
        def hook(grad) -> None:
            self.seen.setdefault(name, _dtype(grad))
        return hook

    def _params(self, trainer):
        return [p for g in trainer.optimizers[0].param_groups for p in g["params"]]

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.seen.setdefault("grads", _kinds(p.grad for p in self._params(trainer)))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if "state" in self.seen:
            return
        params = self._params(trainer)
        state = trainer.optimizers[0].state
        self.seen["params"] = _kinds(params)
        self.seen["state"] = _kinds(state[p][k] for p in params for k in ("exp_avg", "exp_avg_sq"))
        self.seen["sharded"] = all(p.to_local().numel() < p.numel() for p in params
                                   if p.shape[0] >= 2)
        trained = module.decoder if module.stage == "align" else module.core
        self.seen["optimizes_trained_only"] = (
            {id(p) for p in params} == {id(p) for p in trained.parameters()})

    def on_train_end(self, trainer, module):
        if trainer.global_rank == 0:
            self.out.write_text(json.dumps(self.seen))


def _rank_main(rank: int, runs: list[tuple[str, list[str]]], out: str) -> None:
    for name, overrides in runs:
        result = run(compose(overrides), callbacks=[Inspect(Path(out, f"{name}.json"))])
        if rank == 0:
            Path(out, f"{name}.loss.json").write_text(json.dumps([r["loss"] for r in result.train]))


FP32_MASTER = {"params": ["DTensor float32"], "state": ["DTensor float32"],
               "grads": ["DTensor float32"], "trained_matmul": "bfloat16",
               "trained_matmul_grad": "bfloat16", "sharded": True,
               "optimizes_trained_only": True}


def test_large_recipes_train_with_fp32_master_weights_and_bf16_compute(tmp_path,
                                                                       core_checkpoint):  # noqa: F811
    tiny_corpus()
    runs = [
        ("core", tiny_overrides(tmp_path / "core", *COMMON, *launch_policy("core_70b"))),
        ("core_bf16_true", tiny_overrides(tmp_path / "bf16", *COMMON, *BF16_TRUE)),
        ("align", align_overrides(tmp_path / "align", core_checkpoint, *COMMON,
                                  *launch_policy("decoder_align_70b"))),
    ]
    spawn_ranks(_rank_main, 2, runs, str(tmp_path), timeout_s=240)
    seen = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name, _ in runs}
    loss = {name: json.loads((tmp_path / f"{name}.loss.json").read_text()) for name, _ in runs}

    assert seen["core"] == FP32_MASTER, seen["core"]
    # The frozen core keeps the checkpoint's fp32 shards (see
    # dualmind.distributed.parallel.parallelize_align) and computes in bf16 like the decoder; it is
    # never handed to the optimizer.
    assert seen["align"] == dict(FP32_MASTER, frozen_matmul="bfloat16",
                                 frozen_params=["DTensor float32"]), seen["align"]
    for name in ("core", "align"):
        assert len(loss[name]) == STEPS and loss[name][-1] < loss[name][0] - 0.1, loss[name]
    # Control: bf16-true (what the recipes set before) keeps weights and AdamW m, v in bf16.
    assert seen["core_bf16_true"]["params"] == ["DTensor bfloat16"]
    assert seen["core_bf16_true"]["state"] == ["DTensor bfloat16"]


@pytest.mark.parametrize("recipe", LARGE_RECIPES)
def test_large_recipes_launch_with_fp32_master_weights(recipe):
    from dualmind.distributed.dry_run_world import PRECISION_POLICY

    cfg = compose([f"recipe={recipe}"])
    assert cfg.strategy.name == "fsdp2"
    assert PRECISION_POLICY[cfg.trainer.precision] == "fp32-master"
    assert (cfg.strategy.param_dtype, cfg.strategy.reduce_dtype) == ("bfloat16", "float32")
