"""Parallelism applied to the plain core from outside the model code (torchtitan's order).

    parallelize_core(core, mesh, activation_checkpointing="full", compile=False,
                     param_dtype="bfloat16", reduce_dtype="float32")
    parallelize_align(core, decoder, mesh, ...)     # stage=align: frozen core + decoder

Per block, in this order: tensor parallelism (when the mesh's "tensor_parallel" dimension is
larger than 1), activation checkpointing (none | full | selective), torch.compile, and
``fully_shard`` over the "data_parallel" dimension; then ``fully_shard`` of the root (embedding,
final norm, output head). The model may live on ``meta``: nothing here allocates, and
``materialize_core`` then gives each rank its own shard and initialises it in place, so a 70B
core never exists whole in one process (on GPUs; a CPU mesh, where DTensor cannot draw shards
rank-locally, initialises the whole mini model on each rank and keeps each rank's part).

The mesh is Lightning's ``ModelParallelStrategy.device_mesh`` (dims "data_parallel" and
"tensor_parallel"), or any ``DeviceMesh`` with those names.
"""

from __future__ import annotations

import torch
from torch import nn

AC_POLICIES = ("none", "full", "selective")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}

# Selective checkpointing keeps what is expensive to recompute (matmul and attention outputs)
# and recomputes the cheap element-wise work (norms, RoPE, SiLU·mul): the policy the planner's
# memory model assumes for "selective" (dualmind.plan.memory).
_SAVED_OPS = {
    torch.ops.aten.mm.default,
    torch.ops.aten.addmm.default,
    torch.ops.aten.bmm.default,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default,
    torch.ops.aten._scaled_dot_product_efficient_attention.default,
    torch.ops.aten._scaled_dot_product_flash_attention.default,
    torch.ops.aten._scaled_dot_product_cudnn_attention.default,
}


class ParallelConfigError(ValueError):
    """A parallelism setting that cannot be applied; the message names the key."""


def dtype_of(name: str | None, key: str) -> torch.dtype | None:
    if name is None:
        return None
    if name not in DTYPES:
        raise ParallelConfigError(f"{key}={name!r}: expected one of {sorted(DTYPES)} or null")
    return DTYPES[name]


def _selective_context():
    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

    def policy(ctx, op, *args, **kwargs):
        return CheckpointPolicy.MUST_SAVE if op in _SAVED_OPS else CheckpointPolicy.PREFER_RECOMPUTE

    return create_selective_checkpoint_contexts(policy)


def apply_activation_checkpointing(block: nn.Module, policy: str) -> None:
    """Recompute the block's activations in backward. The block's forward is replaced on the
    instance rather than wrapped in another module, so parameter names (and with them every
    checkpoint) are the same whatever the policy."""
    if policy not in AC_POLICIES:
        raise ParallelConfigError(
            f"strategy.activation_checkpointing={policy!r}: expected one of {AC_POLICIES}"
        )
    if policy == "none":
        return
    from torch.utils.checkpoint import checkpoint

    inner = block.forward
    kwargs = {"context_fn": _selective_context} if policy == "selective" else {}

    def forward(*args, **kw):
        return checkpoint(inner, *args, use_reentrant=False, **kw, **kwargs)

    block.forward = forward


# Megatron-style split of one block: q/k/v and w1/w3 by output columns (each rank holds a share of
# the heads and of the SwiGLU width), wo and w2 by input rows, so one all-reduce per sub-layer.
def _tensor_parallel_plan() -> dict:
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    return {
        "attention.wq": ColwiseParallel(),
        "attention.wk": ColwiseParallel(),
        "attention.wv": ColwiseParallel(),
        "attention.wo": RowwiseParallel(),
        "feed_forward.w1": ColwiseParallel(),
        "feed_forward.w3": ColwiseParallel(),
        "feed_forward.w2": RowwiseParallel(),
    }


def parallelize_core(
    core: nn.Module,
    mesh,
    *,
    activation_checkpointing: str = "none",
    compile: bool = False,
    param_dtype: str | None = "bfloat16",
    reduce_dtype: str | None = "float32",
    forward_only: bool = False,
) -> nn.Module:
    """Shard ``core`` (a HyperCore: ``core.layers`` are its blocks) in place; returns it.

    ``forward_only``: a module that never runs backward (stage align's frozen core): every block
    reshards after its forward, the last one too, which no backward would ever free."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    names = mesh.mesh_dim_names or ()
    dp_mesh = mesh["data_parallel"] if "data_parallel" in names else mesh
    tp_mesh = mesh["tensor_parallel"] if "tensor_parallel" in names else None
    mp = MixedPrecisionPolicy(
        param_dtype=dtype_of(param_dtype, "strategy.param_dtype"),
        reduce_dtype=dtype_of(reduce_dtype, "strategy.reduce_dtype"),
    )
    if tp_mesh is not None and tp_mesh.size() > 1:
        from torch.distributed.tensor.parallel import parallelize_module

        cfg = core.cfg
        for n, what in ((cfg.n_heads, "n_heads"), (cfg.n_kv_heads, "n_kv_heads")):
            if n % tp_mesh.size():
                raise ParallelConfigError(
                    f"strategy.tensor_parallel_size={tp_mesh.size()} "
                    f"does not divide model.{what}={n}"
                )
        for block in core.layers:
            parallelize_module(block, tp_mesh, _tensor_parallel_plan())
    for i, block in enumerate(core.layers):
        apply_activation_checkpointing(block, activation_checkpointing)
        if compile:
            block.compile()
        # The last block's parameters are needed at once by backward: no point resharding them.
        fully_shard(block, mesh=dp_mesh, mp_policy=mp,
                    reshard_after_forward=forward_only or i < len(core.layers) - 1)
    fully_shard(core, mesh=dp_mesh, mp_policy=mp)
    return core


def parallelize_align(
    core: nn.Module,
    decoder: nn.Module,
    mesh,
    *,
    activation_checkpointing: str = "none",
    compile: bool = False,
    param_dtype: str | None = "bfloat16",
    reduce_dtype: str | None = "float32",
) -> None:
    """stage=align: shard the frozen core and the decoder, each per block and at its root.

    The core only runs forward under no_grad, so it gets no activation checkpointing (nothing is
    kept for a backward); the decoder gets the configured policy. Tensor parallelism is refused:
    the decoder's cross-attention has no split plan yet.

    Precision: both get the same MixedPrecisionPolicy, so the frozen core computes in param_dtype
    (bf16) like the decoder, while its shards stay in the dtype they are materialised in (fp32
    under the large recipes' trainer.precision=32-true), deliberately not cast down to bf16: the
    core has no gradients or optimizer state, so bf16 storage would save only 2 B/param / world
    (2.1 GiB per GPU for 70B on 64 GPUs, which fits anyway), while fp32 shards stay bit-identical
    to the core checkpoint, so the core fingerprint recorded in align checkpoints (and checked by
    dualmind.checkpoint.frozen_core.check_core_pairing) is the core export's own."""
    names = mesh.mesh_dim_names or ()
    if "tensor_parallel" in names and mesh["tensor_parallel"].size() > 1:
        raise ParallelConfigError(
            f"strategy.tensor_parallel_size={mesh['tensor_parallel'].size()}: stage=align "
            "shards the core and the decoder with FSDP2 only; set strategy.tensor_parallel_size=1"
        )
    common = {"compile": compile, "param_dtype": param_dtype, "reduce_dtype": reduce_dtype}
    parallelize_core(core, mesh, activation_checkpointing="none", forward_only=True, **common)
    parallelize_core(decoder, mesh, activation_checkpointing=activation_checkpointing, **common)


def materialize_core(core: nn.Module, device: torch.device | str) -> None:
    """Allocate the (sharded) parameters of a model built on meta on ``device`` and initialise
    them with the model's own ``init_weights`` (core or decoder); each rank draws only its own
    shard.

    That rank-local draw is DTensor's RNG tracker, which only serves CUDA-like devices. On a CPU
    mesh every rank would draw its shard from the same seeded generator, so all shards came out
    equal (the halves of ``tok_embeddings`` repeating the same rows, TP halves of ``wq`` equal):
    a degenerate model. There, each rank builds the whole model as one process would and keeps
    its part (:func:`_init_from_unsharded_twin`)."""
    if not any(p.is_meta for p in core.parameters()):
        return
    core.to_empty(device=device)
    with torch.no_grad():
        if _needs_unsharded_init(core):
            _init_from_unsharded_twin(core)
        else:
            core.init_weights()


def _needs_unsharded_init(core: nn.Module) -> bool:
    """True when some parameter is a DTensor on a mesh whose device DTensor's RNG tracker cannot
    serve (the test torch.distributed.tensor._random.is_rng_supported_mesh makes, without its
    warning): its device module has no ``set_rng_state`` (CPU)."""
    from torch.distributed.tensor import DTensor

    for p in core.parameters():
        if isinstance(p, DTensor):
            return not hasattr(getattr(torch, p.device_mesh.device_type, None), "set_rng_state")
    return False


def _unsharded_class(core: nn.Module) -> type:
    """The model's own class: ``fully_shard`` swaps in a subclass FSDP<Name>(FSDPModule, Name)."""
    from torch.distributed.fsdp import FSDPModule

    return next(c for c in type(core).__mro__
                if issubclass(c, nn.Module) and not issubclass(c, FSDPModule))


def _init_from_unsharded_twin(core: nn.Module) -> None:
    """Initialise the sharded ``core`` as one process initialises it: build an unsharded twin of
    the same class and config on the CPU (its constructor runs ``init_weights``), from rank 0's
    generator state, and copy into each parameter this rank's part of the twin's. The sharded
    init then equals ``type(core)(core.cfg)`` drawn from that state, bit for bit, in any layout.

    The twin is one whole model per rank: fine here, since CPU meshes run mini models; GPU runs
    keep the rank-local RNG path, so a 70B model never comes through here."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor, distribute_tensor

    cls = _unsharded_class(core)
    if not hasattr(core, "cfg"):
        raise ParallelConfigError(
            f"materialize_core: {cls.__name__} has no .cfg to build its unsharded twin from"
        )
    if dist.is_initialized():
        # Replicated parameters must be drawn alike on every rank. Lightning's seed_everything
        # seeds all ranks with one seed, but any rank-dependent draw before configure_model would
        # silently make them differ; rank 0's state makes it hold by construction.
        state = torch.get_rng_state()
        dist.broadcast(state, src=0)
        torch.set_rng_state(state)
    dtype = next(core.parameters()).dtype
    default_dtype = torch.get_default_dtype()
    try:
        # Drawn in the dtype the model was built in (as one process draws it), whatever default
        # a precision plugin's init context set; placed on the CPU whatever device context is on.
        if dtype.is_floating_point:
            torch.set_default_dtype(dtype)
        with torch.device("cpu"):
            twin = cls(core.cfg)
    finally:
        torch.set_default_dtype(default_dtype)
    # remove_duplicate=False: a tied matrix (FSDP2's to_empty keeps the tie) is filled under both
    # names with the same values.
    for name, param in core.named_parameters(remove_duplicate=False):
        full = twin.get_parameter(name).detach()
        if isinstance(param, DTensor):
            # src_data_rank=None: each rank slices its own part locally, no communication.
            part = distribute_tensor(full, param.device_mesh, param.placements,
                                     src_data_rank=None).to_local()
            param.to_local().copy_(part)
        else:
            param.copy_(full)
    for name, buf in core.named_buffers():
        buf.copy_(twin.get_buffer(name))


def materialize_frozen_core(core: nn.Module, device: torch.device | str, checkpoint) -> None:
    """Allocate the sharded core on ``device`` and fill each rank's shards from the trained
    core's checkpoint (dualmind.checkpoint.sharded_load: read rank-locally, never whole); then
    freeze."""
    from dualmind.checkpoint.sharded_load import load_core_shards

    core.to_empty(device=device)
    load_core_shards(core, checkpoint)
    core.requires_grad_(False)
    core.eval()
