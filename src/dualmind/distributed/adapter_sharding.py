"""stage=lora and stage=unfreeze under strategy=fsdp2.

The adapted core is loaded and adapted as one process does it (the whole core on each rank, in
the module's constructor: weights from ``core.checkpoint``, PEFT's LoRA layers injected or the
top blocks unfrozen), and only then sharded with ``fully_shard`` per block and at the root
(dualmind.distributed.parallel.parallelize_core), so the LoRA matrices shard with the block they
sit in and their gradients are reduce-scattered like any other. Frozen weights are sharded too
(FSDP2 lets frozen and trained parameters share a block): each rank keeps 1/world of them in memory
after start-up. The KL guard's frozen reference (unfreeze with ``adapt.kl_weight > 0``) is sharded
the same way, forward-only.

The limit, plainly: each rank holds the whole fp32 core once, at start-up, before sharding
(a 1B core: 4 GiB of host memory per rank; a 70B one, 280 GB per rank, does not fit a node).
Adapting a 70B core needs the rank-local load stage align has (build on meta, shard, read each
rank's shards: dualmind.checkpoint.sharded_load) extended to PEFT's renamed base weights
(``.base_layer``) and the LoRA matrices' initialisation; not done yet.
"""

from __future__ import annotations

from torch import nn


class AdapterShardingError(ValueError):
    """An fsdp2 setting the adapter stages cannot run with; the message names the key."""


def unsharded_core_to_adapt(core_config, strategy_cfg: dict, stage: str) -> nn.Module:
    """The plain core the adapter stage loads and adapts before sharding (the module's
    constructor built it on meta, as for the stages that load rank-locally)."""
    from dualmind.model.core import HyperCore

    tp = int(strategy_cfg.get("tensor_parallel_size", 1) or 1)
    if tp > 1:
        # PEFT wraps the projections that the tensor-parallel plan splits (attention.wq, ...):
        # there is no split plan for a LoRA-wrapped projection, and unfreeze is untested there.
        raise AdapterShardingError(
            f"strategy.tensor_parallel_size={tp}: stage={stage} shards the core with FSDP2 "
            "only; set strategy.tensor_parallel_size=1")
    return HyperCore(core_config)


def shard_adapted(core: nn.Module, reference: list[nn.Module], mesh, options: dict) -> None:
    """fully_shard the adapted core, and the guard's frozen reference if any, once."""
    from torch.distributed.fsdp import FSDPModule

    from dualmind.distributed.parallel import parallelize_core

    if isinstance(core, FSDPModule):  # configure_model may run again (Lightning calls it per fit)
        return
    parallelize_core(core, mesh, **options)
    for ref in reference:  # forward only, under no_grad: no activation checkpointing
        parallelize_core(ref, mesh, **{**options, "activation_checkpointing": "none"},
                         forward_only=True)
