"""The world a dry run plans for, shared by the core's dry run (dry_run.py) and the align one
(dry_run_align.py): GPUs, tensor-parallel size, GPU memory and precision policy of the config, a
fake process group over that world, what rank 0 holds of a sharded module, and the refusal."""

from __future__ import annotations

from contextlib import contextmanager

from omegaconf import DictConfig

from dualmind.plan.resolve import PRECISION_OF_TRAINER
from dualmind.plan.units import human_gib

# Lightning precision -> the planner's bytes-per-parameter policy (see dualmind.plan.memory):
# the planner's own table, so `dualmind plan` and the dry run never disagree.
PRECISION_POLICY = PRECISION_OF_TRAINER


class DryRunError(RuntimeError):
    """The configured plan does not fit, or cannot be dry-run; the message says by how much."""


def shortfall_message(name: str, memory, hbm_bytes: float, min_gpus: int | None,
                      knobs: str) -> str:
    """Why a plan is refused, by how much, and what would make it fit (core and align runs)."""
    m = memory
    where = (f"it fits from {8 * -(-min_gpus // 8)} GPUs" if min_gpus is not None
             else "no GPU count fixes it (the unsharded part alone is too big)")
    also = "" if m.checkpointing == "full" else ", or strategy.activation_checkpointing=full"
    return (f"{name}: needs {human_gib(m.per_gpu)} per GPU but "
            f"strategy.device_memory_gib={hbm_bytes / 2**30:g} leaves "
            f"{human_gib(m.usable_hbm)} usable: over by {human_gib(m.per_gpu - m.usable_hbm)}; "
            f"{where}, or lower {knobs}{also}")


@contextmanager
def fake_mesh(world: int, tp: int):
    """A (data_parallel x tensor_parallel) device mesh over a *fake* process group of ``world``
    ranks (this process is rank 0): fully_shard of meta modules runs over it, nothing is sent."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        raise DryRunError("trainer.dry_run=true runs in one process: start it without torchrun")
    dist.init_process_group("fake", rank=0, world_size=world, store=FakeStore())
    try:
        yield init_device_mesh("cpu", (world // tp, tp),
                               mesh_dim_names=("data_parallel", "tensor_parallel"))
    finally:
        dist.destroy_process_group()


def local_params(module) -> int:
    """Parameters rank 0 (this process) holds of a sharded module: the largest shard, since
    FSDP2 splits dim 0 in ceil(rows / world) pieces and the last ranks get the remainder."""
    return sum(p.to_local().numel() for p in module.parameters())


def world_of(cfg: DictConfig) -> tuple[int, int, float]:
    """(GPUs, tensor-parallel size, GPU memory in bytes) of the configured run."""
    t, s = cfg.trainer, cfg.strategy
    if not isinstance(t.devices, int):
        raise DryRunError(f"trainer.devices={t.devices!r}: a dry run needs a GPU count per node")
    world = t.devices * t.num_nodes
    tp = int(s.get("tensor_parallel_size", 1) or 1)
    if world % tp:
        raise DryRunError(f"strategy.tensor_parallel_size={tp} does not divide {world} GPUs")
    if s.get("device_memory_gib") is None:
        raise DryRunError("strategy.device_memory_gib is not set: the dry run needs the GPU memory")
    return world, tp, float(s.device_memory_gib) * 2**30


def policy_of(cfg: DictConfig) -> str:
    """The planner's memory policy (dualmind.plan.memory.PRECISIONS) of trainer.precision."""
    precision = PRECISION_POLICY.get(str(cfg.trainer.precision))
    if precision is None:
        raise DryRunError(f"trainer.precision={cfg.trainer.precision!r}: expected one of "
                          f"{sorted(PRECISION_POLICY)}")
    return precision
