"""Which batches a rank reads: its data-parallel coordinate, never its global rank.

The ranks of one tensor-parallel group each hold a share of every split block and must all read
the same batch; different data-parallel coordinates read different shares of the global batches.
A real DeviceMesh is built over torch's "fake" process group (no other process), once per
global rank of a 2 x 2 (data_parallel x tensor_parallel) mesh, as Lightning's
ModelParallelStrategy builds it. The 2-process training check is test_tensor_parallel_train.py.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
import torch

from dualmind.train.align_datamodule import AlignDataModule
from dualmind.train.datamodule import (
    CoreDataModule,
    CoreStream,
    TrainBatches,
    data_parallel_position,
    trainer_position,
)
from dualmind.train.rng_state import TrainingRNG, resume


@contextlib.contextmanager
def mesh_2x2(rank: int):
    """Rank ``rank``'s view of Lightning's 2 x 2 device mesh, over a fake process group."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", rank=rank, world_size=4, store=FakeStore())
    try:
        yield init_device_mesh("cpu", (2, 2), mesh_dim_names=("data_parallel", "tensor_parallel"))
    finally:
        dist.destroy_process_group()


def fake_trainer(rank: int, world: int, mesh=None, step: int = 0):
    strategy = SimpleNamespace(device_mesh=mesh) if mesh is not None else SimpleNamespace()
    return SimpleNamespace(global_rank=rank, world_size=world, strategy=strategy,
                           global_step=step, accumulate_grad_batches=1)


def stream(n=4000):
    ids = np.arange(n, dtype=np.int32) % 97 + 4
    return CoreStream(ids, np.full(n, 3, dtype=np.int32), np.zeros(n, dtype=np.int32), "synthetic")


def test_without_a_mesh_the_position_is_the_global_rank():
    """DDP and one process: every rank is its own data-parallel rank."""
    assert data_parallel_position(None) == (0, 1)
    for rank in range(3):
        assert data_parallel_position(fake_trainer(rank, 3)) == (rank, 3)
    assert trainer_position(fake_trainer(2, 3, step=5)) == (5, 2, 3)


def test_a_2x2_mesh_gives_tensor_parallel_peers_one_position():
    """Global ranks 0, 1 form tensor-parallel group 0 (data-parallel rank 0), ranks 2, 3 group 1."""
    got = []
    for rank in range(4):
        with mesh_2x2(rank) as mesh:
            got.append(trainer_position(fake_trainer(rank, 4, mesh, step=3)))
    assert got == [(3, 0, 2), (3, 0, 2), (3, 1, 2), (3, 1, 2)]


def test_tensor_parallel_peers_read_the_same_batches_and_groups_share_the_global_ones():
    s, one = stream(), TrainBatches(stream(), 32, 2, seed=1)
    batches = {}
    for rank in range(4):
        with mesh_2x2(rank) as mesh:
            _, dp_rank, dp_size = trainer_position(fake_trainer(rank, 4, mesh))
        loader = TrainBatches(s, 32, 2, seed=1, rank=dp_rank, world_size=dp_size)
        batches[rank] = [loader.batch(j)["ids"] for j in range(3)]
    for j in range(3):
        assert torch.equal(batches[0][j], batches[1][j])  # peers of group 0
        assert torch.equal(batches[2][j], batches[3][j])  # peers of group 1
        # group g's batch j is global batch 2j + g of one process: together, every batch once
        assert torch.equal(batches[0][j], one.batch(2 * j)["ids"])
        assert torch.equal(batches[2][j], one.batch(2 * j + 1)["ids"])


def test_both_data_modules_hand_their_loader_the_data_parallel_position():
    core = CoreDataModule("unused", seq_len=32, batch_size=2)
    core.train_stream = stream()  # prepared: no corpus is opened
    align = AlignDataModule("unused", core_len=32, text_len=32, batch_size=2)
    align.train_packs = ["a row"] * 8
    for rank in range(4):
        with mesh_2x2(rank) as mesh:
            for dm in (core, align):
                dm.trainer = fake_trainer(rank, 4, mesh, step=7)
                loader = dm.train_dataloader().dataset
                assert (loader.start_batch, loader.rank, loader.world_size) == (7, rank // 2, 2)


def test_a_resume_maps_random_streams_by_data_parallel_rank():
    """Saved by 2 x 2 ranks (peers' streams identical), resumed by another tensor-parallel size
    with the same data-parallel size: each rank continues its data-parallel rank's stream."""
    saved = []
    for rank in range(4):
        rng = TrainingRNG(seed=5, rank=rank // 2)
        with rng.active():
            torch.rand(3)  # the stream moves on
        saved.append(rng.state_dict())
    for dp_rank in (0, 1):
        rng = TrainingRNG(seed=5, rank=dp_rank)
        resume(rng, saved, step=1, rank=dp_rank, data_parallel_size=2)
        with rng.active():
            got = torch.rand(2)
        with TrainingRNG(seed=5, rank=dp_rank).active():
            want = torch.rand(5)[3:]
        assert torch.equal(got, want)
