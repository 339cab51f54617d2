"""`python train.py recipe=core_70b trainer.dry_run=true`: check a large run before it starts.

Builds the configured core on ``meta`` (no memory), applies the same sharding as training
(dualmind.distributed.parallel: fully_shard per block, then the root) over a *fake* process group
of the configured world size, and reads each rank's shard off the sharded parameters. The memory
split comes from the planner's model (dualmind.plan.memory.fsdp_memory): one source of truth for
what a GPU holds. Refuses (DryRunError) a plan that does not fit the configured GPU memory.
Stage align (a frozen core read by a trained decoder) is planned by
dualmind.distributed.dry_run_align.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from omegaconf import DictConfig

from dualmind.distributed.dry_run_world import (
    DryRunError,
    fake_mesh,
    local_params,
    policy_of,
    shortfall_message,
    world_of,
)
from dualmind.plan.memory import MemoryEstimate, fsdp_memory
from dualmind.plan.shape import from_core_config
from dualmind.plan.units import human_count, human_gib


@dataclass
class DryRun:
    name: str
    world_size: int
    data_parallel: int
    tensor_parallel: int
    params: int
    shard_params: int  # parameters held by the largest shard (rank 0; padding goes last)
    memory: MemoryEstimate
    hbm_bytes: float
    tokens_per_step: int
    flops_per_step: float
    build_s: float

    def report(self) -> str:
        m = self.memory
        lines = [
            f"dry run: {self.name} on {self.world_size} GPUs "
            f"(data parallel {self.data_parallel} x tensor parallel {self.tensor_parallel}), "
            f"built on meta and sharded in {self.build_s:.2f} s, nothing allocated",
            f"  parameters            {self.params:,} ({human_count(self.params)})",
            f"  per-rank shard        {self.shard_params:,} parameters",
            f"  precision policy      {m.precision} ({m.bytes_per_param_sharded} B/param: "
            f"weights + grads + AdamW, sharded)",
            f"  per GPU  model state  {human_gib(m.model_state_per_gpu)}"
            "  (params + grads + optimizer, sharded):",
            *self._state_split(),
            f"           working set  {human_gib(m.working_set)}"
            "  (gathered blocks, their grads, root)",
            f"           activations  {human_gib(m.activations)}"
            f"  (checkpointing={m.checkpointing}, {m.micro_batch} x {m.seq_len} symbols)",
            f"           logits       {human_gib(m.logits)}  ({logit_rows(m)})",
            f"           total        {human_gib(m.per_gpu)} of {human_gib(m.usable_hbm)} usable "
            f"({human_gib(self.hbm_bytes)} HBM less headroom)",
            f"  tokens per step       {self.tokens_per_step:,}",
            f"  FLOPs per step        {self.flops_per_step:.3e}",
        ]
        if m.min_gpus is not None:
            lines.append(f"  fits from             {m.min_gpus_nodes_of_8} GPUs (nodes of 8)")
        lines.append("  verdict               " + ("fits" if m.fits else "DOES NOT FIT"))
        return "\n".join(lines)

    def _state_split(self) -> list[str]:
        """The sharded model state by kind, in the planner's bytes per parameter."""
        from dualmind.plan.memory import PRECISIONS

        m = self.memory
        per_param = m.model_state_per_gpu / m.bytes_per_param_sharded
        return [f"             {label:<11}{human_gib(per_param * b)}  ({b} B/param)"
                for label, b in zip(("parameters", "gradients", "optimizer"),
                                    PRECISIONS[m.precision], strict=True)]

    def shortfall(self) -> str:
        m = self.memory
        return shortfall_message(self.name, m, self.hbm_bytes, m.min_gpus,
                                 "data.batch_size / data.seq_len")


def _sharded_on_meta(core, world: int, tp: int) -> int:
    """fully_shard the meta core as training does; rank 0's parameter count."""
    from dualmind.distributed.parallel import parallelize_core

    with fake_mesh(world, tp) as mesh:
        parallelize_core(core, mesh)
        return local_params(core)


def loss_chunk_of(cfg: DictConfig) -> int | None:
    """strategy.loss_chunk as the planner's memory model takes it: None for full logits."""
    return int(cfg.strategy.get("loss_chunk", 0) or 0) or None


def logit_rows(m: MemoryEstimate) -> str:
    """Which logits the figure counts: every position's, or one chunk's (strategy.loss_chunk)."""
    if m.loss_chunk and m.loss_chunk < m.micro_batch * m.seq_len:
        return f"one chunk of {m.loss_chunk:,} positions, strategy.loss_chunk"
    return f"all {m.micro_batch * m.seq_len:,} positions at once"


def dry_run(cfg: DictConfig):
    """Build, shard and size the configured run (a DryRun; stage align: a
    dualmind.distributed.dry_run_align.AlignDryRun); raises DryRunError if it cannot be planned."""
    import torch

    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    if cfg.stage == "align":  # a frozen core read by a trained decoder: planned apart
        from dualmind.distributed.dry_run_align import dry_run_align

        return dry_run_align(cfg)
    t, s = cfg.trainer, cfg.strategy
    world, tp, hbm = world_of(cfg)
    model_cfg = CoreConfig.from_dict(dict(cfg.model), source="cfg.model")
    start = time.perf_counter()
    with torch.device("meta"):
        core = HyperCore(model_cfg)
    params = sum(p.numel() for p in core.parameters())
    shard = _sharded_on_meta(core, world, tp) if s.name == "fsdp2" else params
    build_s = time.perf_counter() - start

    seq_len, micro = int(cfg.data.seq_len), int(cfg.data.batch_size)
    precision = policy_of(cfg)
    # Tensor parallelism splits each block's state and activations by tp; the planner's model
    # is pure FSDP, so at tp > 1 this figure is an upper bound.
    memory = fsdp_memory(from_core_config(model_cfg, cfg.name), world, hbm, micro, seq_len,
                         checkpointing=s.activation_checkpointing, precision=precision,
                         loss_chunk=loss_chunk_of(cfg))
    dp = world // tp
    tokens = micro * seq_len * dp * int(t.accumulate_grad_batches)
    result = DryRun(
        name=cfg.name, world_size=world, data_parallel=dp, tensor_parallel=tp, params=params,
        shard_params=shard, memory=memory, hbm_bytes=hbm, tokens_per_step=tokens,
        flops_per_step=model_cfg.flops_per_token(seq_len) * tokens, build_s=build_s,
    )
    return result


def main(cfg: DictConfig) -> int:
    """train.py's dry-run path: print the report; exit 2 with the shortfall if it does not fit."""
    import sys

    from dualmind.config.schema import ConfigError, validate
    from dualmind.distributed.parallel import ParallelConfigError

    try:
        validate(cfg)
        result = dry_run(cfg)
    except (ConfigError, DryRunError, ParallelConfigError) as err:  # the plan cannot be applied
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result.report())
    if not result.memory.fits:
        print(f"error: {result.shortfall()}", file=sys.stderr)
        return 2
    return 0
