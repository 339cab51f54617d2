"""A NaN on ONE rank stops EVERY rank at that step: the NaN check reads the all-rank sum of the
step's NLL (which every rank holds after the loss normalisation's all-reduce), so no rank goes on
into backward and waits forever in a collective for the rank that stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dualmind.config.schema import compose
from test_parallel_support import FSDP2_TWO_CPU_RANKS, spawn_ranks
from test_train_support import tiny_corpus, tiny_overrides

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

SHARDED = ["trainer.max_steps=6", "trainer.val_check_interval=1000",
           "trainer.checkpoint_every_n_steps=0", "data.batch_size=2", *FSDP2_TWO_CPU_RANKS]


def _rank_main(rank: int, overrides: list[str], out: str) -> None:
    import torch

    from dualmind.train.loop import run
    from dualmind.train.module import DualMindModule, NonFiniteLossError

    plain = DualMindModule._core_step

    def poisoned(self, batch):
        counts = plain(self, batch)
        if rank == 1 and self.training and self.global_step == 2:
            counts.nll_sum = counts.nll_sum * torch.tensor(float("nan"))
        return counts

    DualMindModule._core_step = poisoned
    try:
        run(compose(overrides))
        result = {"stopped": None}
    except NonFiniteLossError as err:
        result = {"stopped": str(err)}
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))


def test_nan_on_one_rank_stops_all_ranks(tmp_path):
    tiny_corpus()
    try:
        spawn_ranks(_rank_main, 2, tiny_overrides(tmp_path, *SHARDED), str(tmp_path),
                    timeout_s=240)
    except TimeoutError:
        pytest.fail("a rank hung after the other stopped on a NaN loss")
    for rank in (0, 1):
        stopped = json.loads((tmp_path / f"rank{rank}.json").read_text())["stopped"]
        assert stopped and "at step 3" in stopped, (rank, stopped)
