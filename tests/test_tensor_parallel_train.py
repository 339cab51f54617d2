"""strategy=fsdp2 with tensor parallelism trains what one process trains.

Two gloo ranks with strategy.tensor_parallel_size=2 form ONE tensor-parallel group (data parallel
size 1): each rank holds half of every block's heads and SwiGLU width, and the group must read
the batch one process reads, with the same random draws. The training step is made random
(test_resume_support.make_core_step_noisy: a fifth of the input symbols flipped, plus a numpy and a
Python draw), because the randomness of a step shapes the replicated input of the split blocks,
so tensor-parallel peers must draw identically. Compared, from the same weights: the per-step
batches and draws of both ranks against one process, the train losses, the validation loss and
the run's FLOPs (counted once per global batch, not once per rank of a group).

The slow 2 x 2 variant (four ranks: two groups of two) checks data and tensor parallelism
together against one process reading both groups' batches at once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L
import pytest
import torch

from dualmind.config.schema import compose
from dualmind.train.loop import run
from test_parallel_support import FSDP2_TWO_CPU_RANKS, spawn_ranks
from test_resume_support import make_core_step_noisy
from test_train_fsdp2 import StartFrom, _reference_weights
from test_train_support import tiny_corpus, tiny_overrides

pytestmark = pytest.mark.multiprocess

STEPS = 4
COMMON = [
    f"trainer.max_steps={STEPS}",
    f"trainer.val_check_interval={STEPS}",
    "trainer.checkpoint_every_n_steps=0",
    "trainer.precision=32-true",
    "trainer.num_threads=1",
    "optim.warmup_steps=1",
    "data.val_max_batches=1",
]
TENSOR_PARALLEL = [*FSDP2_TWO_CPU_RANKS, "strategy.tensor_parallel_size=2"]


class Record(L.Callback):
    """Per step a hash of the batch this rank read; at the end the run's flops_total."""

    def __init__(self):
        self.batches: dict[str, str] = {}
        self.flops_total = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        ids = batch["ids"].numpy().tobytes()
        self.batches[str(trainer.global_step)] = hashlib.sha256(ids).hexdigest()[:16]

    def on_train_end(self, trainer, pl_module):
        self.flops_total = pl_module._flops_total


def _run(overrides: list[str], noisy: bool) -> dict:
    """One run from the reference weights: losses, batches read, FLOPs, and with ``noisy`` a random
    training step whose per-step (batch, draws) are logged."""
    log: dict[int, tuple] = {}
    record = Record()
    with pytest.MonkeyPatch.context() as patch:
        if noisy:
            make_core_step_noisy(patch, log)
        result = run(compose(overrides),
                     callbacks=[StartFrom(_reference_weights(overrides)), record])
    return {"train": [r["loss"] for r in result.train], "val": [r["loss"] for r in result.val],
            "batches": record.batches, "flops_total": record.flops_total,
            "log": {str(k): list(v) for k, v in sorted(log.items())}}


def _rank_main(rank: int, overrides: list[str], noisy: bool, out: str) -> None:
    Path(out, f"rank{rank}.json").write_text(json.dumps(_run(overrides, noisy)))


def _compare(got: dict, want: dict, who: str) -> None:
    for step, (g, w) in enumerate(zip(got["train"], want["train"], strict=True)):
        assert abs(g - w) <= 1e-5, f"{who} step {step}: loss {g} vs one process {w}"
    assert len(got["val"]) == len(want["val"]) == 1
    assert got["val"][0] == pytest.approx(want["val"][0], abs=1e-5), who
    assert got["flops_total"] == pytest.approx(want["flops_total"], rel=1e-12), who


def test_tensor_parallel_group_trains_like_one_process(tmp_path):
    tiny_corpus()  # built here once, not in each rank
    torch.set_num_threads(1)
    want = _run(tiny_overrides(tmp_path / "single", *COMMON, "data.batch_size=2"), noisy=True)

    tp = tiny_overrides(tmp_path / "tp", *COMMON, "data.batch_size=2", *TENSOR_PARALLEL)
    spawn_ranks(_rank_main, 2, tp, True, str(tmp_path), timeout_s=120)
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    assert len(want["log"]) == STEPS and len(want["train"]) == STEPS
    assert want["train"][-1] < want["train"][0]  # it trains
    for rank in (0, 1):
        # The same batch and the same torch / numpy / Python draws as one process, every step.
        assert got[rank]["log"] == want["log"], f"rank {rank}: other batches or draws"
        _compare(got[rank], want, f"rank {rank}")


@pytest.mark.slow
def test_two_tensor_parallel_groups_train_like_one_process(tmp_path):
    """2 x 2: ranks 0, 1 read global batch 2j, ranks 2, 3 batch 2j + 1 (2 sequences each); one
    process reads both (4 sequences). No noise here: one process cannot draw for the batch of
    4 what two groups draw for two batches of 2."""
    tiny_corpus()
    torch.set_num_threads(1)
    want = _run(tiny_overrides(tmp_path / "single", *COMMON, "data.batch_size=4"), noisy=False)

    four = [o if o != "trainer.devices=2" else "trainer.devices=4" for o in TENSOR_PARALLEL]
    # Every rank validates the first val_max_batches x batch_size sequences: the same 4 here.
    common = [o if o != "data.val_max_batches=1" else "data.val_max_batches=2" for o in COMMON]
    tp = tiny_overrides(tmp_path / "tp", *common, "data.batch_size=2", *four)
    spawn_ranks(_rank_main, 4, tp, False, str(tmp_path), timeout_s=300)
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(4)]

    assert got[0]["batches"] == got[1]["batches"] and got[2]["batches"] == got[3]["batches"]
    assert all(got[0]["batches"][k] != got[2]["batches"][k] for k in got[0]["batches"])
    for rank in range(4):
        _compare(got[rank], want, f"rank {rank}")
