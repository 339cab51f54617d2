"""Exact resume under fsdp2 with 2 ranks: every rank's random stream is gathered into the sharded
checkpoint (meta.pt) and given back to the same rank on resume, so a run stopped at step 4 and
resumed sees, on each rank, the batches and the torch / numpy / Python draws of the uninterrupted
run, and the same losses. The step is made random as in test_resume_exact (the core itself has
no dropout)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest

from dualmind.config.schema import compose
from dualmind.train.loop import run
from test_parallel_support import FSDP2_TWO_CPU_RANKS, spawn_ranks
from test_resume_support import make_core_step_noisy
from test_train_support import tiny_corpus, tiny_overrides

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

BASE = ["trainer.max_steps=8", "trainer.checkpoint_every_n_steps=4",
        "trainer.val_check_interval=3", "data.batch_size=2", "data.val_max_batches=1",
        *FSDP2_TWO_CPU_RANKS]


class StopAt(L.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:  # the step-4 checkpoint is written all the same
            trainer.should_stop = True


def _rank_main(rank: int, overrides: list[str], out: str, stop_at: int | None) -> None:
    log: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        make_core_step_noisy(mp, log)
        result = run(compose(overrides), callbacks=[StopAt(stop_at)] if stop_at else [])
    Path(out, f"rank{rank}.json").write_text(json.dumps(
        {"loss": {r["step"]: r["loss"] for r in result.train},
         "draws": {k: list(v) for k, v in log.items()}}))


def _train(out: Path, overrides: list[str], stop_at: int | None = None) -> list[dict]:
    out.mkdir()
    spawn_ranks(_rank_main, 2, overrides, str(out), stop_at)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_two_rank_resume_continues_each_ranks_draws(tmp_path):
    tiny_corpus()
    whole = _train(tmp_path / "whole", tiny_overrides(tmp_path / "whole-run", *BASE))
    cut_run = tmp_path / "cut-run"
    _train(tmp_path / "cut", tiny_overrides(cut_run, *BASE), stop_at=4)
    ckpt = cut_run / "checkpoints" / "step0000004.ckpt"
    assert ckpt.is_dir()
    resumed = _train(tmp_path / "resumed", tiny_overrides(cut_run, *BASE, f"ckpt_path={ckpt}"))
    for rank in (0, 1):
        tail = {k: v for k, v in whole[rank]["draws"].items() if int(k) >= 4}
        assert resumed[rank]["draws"] == tail, rank
        assert sorted(resumed[rank]["loss"], key=int) == ["5", "6", "7", "8"]
        for step, loss in resumed[rank]["loss"].items():
            assert loss == pytest.approx(whole[rank]["loss"][step], abs=1e-6), (rank, step)
    assert whole[0]["draws"]["4"][1:] != whole[1]["draws"]["4"][1:]  # one stream per rank
