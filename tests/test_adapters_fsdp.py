"""stage=lora and stage=unfreeze under strategy=fsdp2: two gloo ranks train what one process trains.

Each run loads the same core checkpoint; the single process reads 4 rows per step, each rank 2
(rank r's batch j is global batch 2j + r), so with the global token normalisation the mean of the
ranks' losses is the single process's loss. fp32 throughout, LoRA dropout off (each data-parallel
rank draws from its own random stream, so dropout masks could not match one process's). The
unfreeze run keeps the KL guard on, so its sharded frozen reference is exercised too.
Checks: the loss curves agree to 1e-5 over the steps; what is frozen stays bit-identical on the
ranks (gathered from the shards); LoRA's adapter folder, written from the gathered shards, holds
the single process's adapters (to 1e-5).
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from dualmind.config.schema import compose
from dualmind.train.loop import run
from test_adapters_support import adapt_overrides, qa_corpus, write_core_checkpoint
from test_parallel_support import FSDP2_TWO_CPU_RANKS, spawn_ranks

pytestmark = pytest.mark.multiprocess

STEPS = 6
COMMON = [f"trainer.max_steps={STEPS}", "trainer.num_threads=1", "optim.warmup_steps=2",
          "trainer.checkpoint_every_n_steps=0"]
STAGES = {
    "lora": ("bridge_lora", ["lora.dropout=0.0"]),
    "unfreeze": ("core_unfreeze", ["unfreeze.top_k=1", "adapt.kl_weight=0.5"]),
}


def _full(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The core's whole state, gathered from the shards (a collective on sharded cores)."""
    return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
            for k, v in module.state_dict().items()}


class FrozenCheck(L.Callback):
    """Records whether every parameter that must not train is bit-identical at the end."""

    def __init__(self, out: Path):
        self.out = out

    def on_fit_start(self, trainer, module):
        self.frozen = {n for n, p in module.core.named_parameters() if not p.requires_grad}
        self.before = {k: v for k, v in _full(module.core).items() if k in self.frozen}

    def on_fit_end(self, trainer, module):
        after = _full(module.core)
        same = all(torch.equal(after[k], v) for k, v in self.before.items())
        sharded = all(hasattr(p, "full_tensor") for p in module.core.parameters())  # DTensors
        if trainer.global_rank == 0:
            self.out.write_text(json.dumps({"frozen": len(self.before), "unchanged": same,
                                            "sharded": sharded}))


def _rank_main(rank: int, overrides: list[str], out: str) -> None:
    result = run(compose(overrides), callbacks=[FrozenCheck(Path(out, "frozen.json"))])
    Path(out, f"rank{rank}.json").write_text(json.dumps([r["loss"] for r in result.train]))


# ~40 s each on 2 shared cores (load 9): lora stays in the default suite, unfreeze is slow.
@pytest.mark.parametrize("stage", ["lora", pytest.param("unfreeze", marks=pytest.mark.slow)])
def test_adapter_stage_on_two_fsdp2_ranks_matches_one_process(tmp_path, stage):
    recipe, extra = STAGES[stage]
    qa_corpus()  # built here once, not in each rank
    ckpt = write_core_checkpoint(tmp_path / "core.ckpt")
    single = adapt_overrides(recipe, tmp_path / "single", ckpt, *COMMON, *extra,
                             "data.batch_size=4")
    (tmp_path / "one").mkdir()
    want = [r["loss"] for r in run(compose(single), callbacks=[
        FrozenCheck(tmp_path / "one" / "frozen.json")]).train]

    out = tmp_path / "fsdp2"
    out.mkdir()
    sharded = adapt_overrides(recipe, out, ckpt, *COMMON, *extra, "data.batch_size=2",
                              *FSDP2_TWO_CPU_RANKS, "strategy.activation_checkpointing=full")
    spawn_ranks(_rank_main, 2, sharded, str(out), timeout_s=600)

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank logs the loss of the whole global batch
    got = ranks[0]
    assert len(got) == len(want) == STEPS and got[-1] < got[0]
    worst = max(abs(g - w) for g, w in zip(got, want, strict=True))
    print(f"{stage} fsdp2 x2 vs one process: max |loss difference| over {STEPS} steps "
          f"= {worst:.2e}")
    assert worst <= 1e-5, (got, want)
    for folder, sharded in ((tmp_path / "one", False), (out, True)):
        frozen = json.loads((folder / "frozen.json").read_text())
        assert frozen == {"frozen": frozen["frozen"], "unchanged": True, "sharded": sharded}
        assert frozen["frozen"] > 0
    if stage == "lora":  # the adapters, gathered from the ranks' shards, are one process's
        a = load_file(str(tmp_path / "single" / "adapter" / "adapter_model.safetensors"))
        b = load_file(str(out / "adapter" / "adapter_model.safetensors"))
        assert a.keys() == b.keys() and a
        for k in a:
            torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=0)


def test_tensor_parallelism_is_refused_for_the_adapter_stages_by_name():
    from dualmind.distributed.adapter_sharding import AdapterShardingError, unsharded_core_to_adapt

    with pytest.raises(AdapterShardingError, match=r"tensor_parallel_size=2: stage=lora"):
        unsharded_core_to_adapt(None, {"tensor_parallel_size": 2}, "lora")
