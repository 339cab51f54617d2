"""strategy=fsdp2 trains what one process trains: two gloo processes (Lightning's
ModelParallelStrategy, fully_shard per block and at the root from dualmind.distributed.parallel)
against one process with strategy=single, from the same weights, on the same global batches.

Rank r's batch j is global batch 2j + r (TrainBatches), so two ranks with batch_size=2 see the
four sequences the single process sees with batch_size=4; FSDP2 averages the gradients, and the
mean of the two ranks' losses is the single process's loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from dualmind.config.schema import compose
from dualmind.train.loop import run
from test_parallel_support import spawn_ranks
from test_train_support import tiny_corpus, tiny_overrides

pytestmark = pytest.mark.multiprocess

STEPS = 10
# fp32 everywhere so the comparison measures sharding, not bf16 rounding.
COMMON = [
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=1000",
    "trainer.checkpoint_every_n_steps=0",
    "trainer.precision=32-true",
    "trainer.num_threads=1",
    "optim.warmup_steps=2",
]


def _reference_weights(overrides: list[str]) -> dict[str, torch.Tensor]:
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    cfg = compose(overrides)
    torch.manual_seed(7)
    return HyperCore(CoreConfig.from_dict(dict(cfg.model))).state_dict()


class StartFrom(L.Callback):
    """Both runs start from the same full weights (rank-local init draws per shard)."""

    def __init__(self, weights: dict[str, torch.Tensor]):
        self.weights = weights

    def on_fit_start(self, trainer, pl_module):
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
        )

        if pl_module.sharded:
            set_model_state_dict(pl_module.core, self.weights,
                                 options=StateDictOptions(full_state_dict=True))
        else:
            pl_module.core.load_state_dict(self.weights)


def _rank_main(rank: int, overrides: list[str], out: str) -> None:
    result = run(compose(overrides), callbacks=[StartFrom(_reference_weights(overrides))])
    Path(out, f"rank{rank}.json").write_text(json.dumps([r["loss"] for r in result.train]))
    if rank == 0:
        Path(out, "checkpoint").write_text(str(result.last_checkpoint))


def test_fsdp2_two_processes_match_one_process(tmp_path):
    tiny_corpus()  # built here once, not in each rank
    single = tiny_overrides(tmp_path / "single", *COMMON, "data.batch_size=4")
    want = run(compose(single), callbacks=[StartFrom(_reference_weights(single))])

    sharded = tiny_overrides(
        tmp_path / "fsdp2", *COMMON, "data.batch_size=2", "strategy=fsdp2",
        "trainer.devices=2", "trainer.accelerator=cpu", "strategy.activation_checkpointing=full",
        "strategy.param_dtype=float32", "strategy.reduce_dtype=float32",
    )
    # The ranks meet through a file store (spawn_ranks): no TCP port to pick, so no race for one.
    spawn_ranks(_rank_main, 2, sharded, str(tmp_path))

    losses = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    got = [(a + b) / 2 for a, b in zip(*losses, strict=True)]
    assert len(got) == len(want.train) == STEPS
    assert got[-1] < got[0]  # it trains
    for step, (g, w) in enumerate(zip(got, (r["loss"] for r in want.train), strict=True)):
        assert abs(g - w) <= 1e-5, f"step {step}: fsdp2 loss {g} vs one process {w}"
    # The sharded run writes a sharded (DCP) checkpoint: a folder, one file per rank.
    ckpt = Path((tmp_path / "checkpoint").read_text())
    assert ckpt.is_dir() and len(list(ckpt.glob("*.distcp"))) == 2
