"""A sharded (DCP) checkpoint resumes at another world size: saved by 2 FSDP2 ranks, resumed by 1,
and the other way round; the resumed steps have the losses of the uninterrupted run.

The global batch is kept (2 ranks x 2 sequences = 1 rank x 4), so the data position — batch j
of rank r is global batch j*world + r — continues exactly where the saving run was.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest

from dualmind.config.schema import compose
from dualmind.train.loop import run
from test_parallel_support import spawn_ranks
from test_train_fsdp2 import StartFrom, _reference_weights
from test_train_support import tiny_corpus, tiny_overrides

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

BASE = [
    "trainer.max_steps=6",
    "trainer.checkpoint_every_n_steps=3",
    "trainer.val_check_interval=1000",
    "trainer.precision=32-true",
    "trainer.num_threads=1",
    "optim.warmup_steps=2",
    "strategy=fsdp2",
    "trainer.accelerator=cpu",
    "strategy.param_dtype=float32",
    "strategy.reduce_dtype=float32",
]


class KeepStep3(L.Callback):
    """save_top_k=1 deletes the step-3 checkpoint once step 6 is saved: keep a copy of it."""

    def __init__(self, dst: Path):
        self.dst = dst

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 4 and trainer.global_rank == 0:  # DCP save done on all ranks
            import shutil

            shutil.copytree(Path(trainer.default_root_dir, "checkpoints", "step0000003.ckpt"),
                            self.dst)


def _rank_main(rank: int, overrides: list[str], out: str, fresh: bool) -> None:
    callbacks = []
    if fresh:
        callbacks = [StartFrom(_reference_weights(overrides)),
                     KeepStep3(Path(out).parent / "step3.ckpt")]
    result = run(compose(overrides), callbacks=callbacks)
    Path(out, f"rank{rank}.json").write_text(
        json.dumps({str(r["step"]): r["loss"] for r in result.train}))


def _train(tmp: Path, world: int, *extra: str, fresh: bool = True) -> dict[int, float]:
    """Run on `world` ranks; the mean loss over ranks per step."""
    out = tmp / f"out-{world}-{'fresh' if fresh else 'resumed'}"
    out.mkdir()
    overrides = tiny_overrides(tmp, *BASE, f"trainer.devices={world}",
                               f"data.batch_size={4 // world}", *extra)
    # The ranks meet through a file store (spawn_ranks), also for world 1: no TCP port is raced for.
    spawn_ranks(_rank_main, world, overrides, str(out), fresh)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]
    return {int(k): sum(r[k] for r in ranks) / world for k in ranks[0]}


@pytest.mark.parametrize("saved_by,resumed_by", [(2, 1), (1, 2)])
def test_sharded_checkpoint_resumes_at_another_world_size(saved_by, resumed_by, tmp_path):
    tiny_corpus()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    uninterrupted = _train(run_dir, saved_by)
    ckpt = run_dir / "step3.ckpt"
    assert ckpt.is_dir() and len(list(ckpt.glob("*.distcp"))) == saved_by
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    resumed = _train(resumed_dir, resumed_by, f"ckpt_path={ckpt}", fresh=False)
    assert sorted(resumed) == [4, 5, 6]
    for step in (4, 5, 6):
        assert resumed[step] == pytest.approx(uninterrupted[step], abs=1e-5), step
