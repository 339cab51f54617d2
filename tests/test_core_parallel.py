"""The core under parallelism applied from outside: FSDP2 per block and tensor parallelism.

Two gloo processes on CPU. Each sharded model must compute what the plain model computes.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from test_parallel_support import leave_rank

pytestmark = pytest.mark.multiprocess

WORLD = 2


def _cfg() -> CoreConfig:
    return CoreConfig(vocab_size=61, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48,
                      max_seq_len=64, tie_embeddings=True)


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 61, (2, 20), generator=g), torch.tensor([[0] * 8 + [1] * 12] * 2)


def _reference():
    torch.manual_seed(0)
    model = HyperCore(_cfg())
    ids, doc_ids = _batch()
    logits = model(ids, doc_ids=doc_ids).logits
    logits.square().mean().backward()
    return model, logits.detach(), {n: p.grad for n, p in model.named_parameters()}


def _fsdp2(rank: int) -> None:
    from torch.distributed.fsdp import fully_shard

    _, want_logits, want_grads = _reference()
    model, _, _ = _reference()
    model.zero_grad()
    for block in model.layers:
        fully_shard(block)
    fully_shard(model)
    assert model.output.weight is model.tok_embeddings.weight  # the tie survives sharding
    ids, doc_ids = _batch()
    logits = model(ids, doc_ids=doc_ids).logits
    logits.square().mean().backward()
    torch.testing.assert_close(logits, want_logits, atol=1e-6, rtol=1e-5)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad.full_tensor(), want_grads[name], atol=1e-6,
                                   rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def _fsdp2_from_meta(rank: int) -> None:
    """The 70B path in miniature: build on meta, shard, materialise rank-locally, init_weights."""
    from torch.distributed.fsdp import fully_shard

    cfg = CoreConfig(vocab_size=61, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128,
                     max_seq_len=64, tie_embeddings=True)
    with torch.device("meta"):
        model = HyperCore(cfg)
    for block in model.layers:
        fully_shard(block)
    fully_shard(model)
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    model.init_weights()
    assert model.output.weight is model.tok_embeddings.weight
    wq = model.layers[0].attention.wq.weight.full_tensor()
    assert wq.abs().max() <= 3 * cfg.init_std and 0.015 < wq.std().item() < 0.025
    assert torch.equal(model.norm.weight.full_tensor(), torch.ones(cfg.dim))
    ids, doc_ids = _batch()
    assert torch.isfinite(model(ids, doc_ids=doc_ids).logits).all()


def _tensor_parallel(rank: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    _, want_logits, want_grads = _reference()
    model, _, _ = _reference()
    model.zero_grad()
    mesh = init_device_mesh("cpu", (WORLD,))
    plan = {"attention.wq": ColwiseParallel(), "attention.wk": ColwiseParallel(),
            "attention.wv": ColwiseParallel(), "attention.wo": RowwiseParallel(),
            "feed_forward.w1": ColwiseParallel(), "feed_forward.w3": ColwiseParallel(),
            "feed_forward.w2": RowwiseParallel()}
    for block in model.layers:  # each rank holds half of the heads and of the SwiGLU width
        parallelize_module(block, mesh, plan)
    ids, doc_ids = _batch()
    logits = model(ids, doc_ids=doc_ids).logits
    logits.square().mean().backward()
    torch.testing.assert_close(logits, want_logits, atol=1e-6, rtol=1e-5)
    wq = model.layers[0].attention.wq.weight
    torch.testing.assert_close(wq.grad.full_tensor(), want_grads["layers.0.attention.wq.weight"],
                               atol=1e-6, rtol=1e-5)


def _worker(rank: int, store: str) -> None:
    torch.set_num_threads(1)
    # A file store, not a TCP port: a port picked free can be taken before gloo binds it.
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:  # both checks in one pair of processes: starting them costs more than the checks
        _fsdp2(rank)
        dist.barrier()
        _fsdp2_from_meta(rank)
        dist.barrier()
        _tensor_parallel(rank)
        dist.barrier()  # no rank tears gloo down while the other is still in a collective
    finally:
        dist.destroy_process_group()
    leave_rank()


def test_fsdp2_and_tensor_parallel_core_compute_what_the_plain_core_computes(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "store"),), nprocs=WORLD, join=True)
