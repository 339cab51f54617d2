"""Memory per GPU when a Llama-style model is trained with FSDP (ZeRO-3: everything sharded).

Per GPU = sharded model state / GPUs           (weights, gradients, AdamW m and v)
        + unsharded working set                  (bf16 copies of the block being computed and
                                                  the one prefetched, their gradients before
                                                  reduce-scatter, plus the root's embedding and
                                                  output head, which FSDP keeps gathered)
        + activations                            (per the activation-checkpointing policy,
                                                  at the recipe's micro-batch x sequence length)
        + logits at the loss                     (bf16 logits + fp32 log-softmax, for every
                                                  position, or for one chunk of positions with
                                                  dualmind.model.loss.chunked_cross_entropy)
and must fit in HBM minus a headroom (CUDA context, NCCL buffers, allocator fragmentation).

Mixed-precision policies (``--precision``):
- ``fp32-master`` (default; FSDP2 ``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)``
  over fp32 sharded parameters, what Lightning/torchtitan do): 4 B weights + 4 B grads + 8 B
  AdamW (m, v fp32) = 16 B per parameter, sharded. The large recipes (core_70b, core_200b,
  decoder_align_70b) launch with it: ``trainer.precision=32-true`` +
  ``strategy.param_dtype=bfloat16`` (tests/test_precision_fp32_master.py runs that policy on
  two ranks).
- ``bf16-fp32-adam``: bf16 weights and grads, fp32 AdamW state: 2 + 2 + 8 = 12 B per parameter.
- ``bf16-true`` (Lightning ``precision="bf16-true"``): the model is cast to bf16 before
  sharding and ``torch.optim.AdamW`` keeps m and v in the parameter dtype, so 2 + 2 + 4 = 8 B
  per parameter. Cheapest, and the riskiest numerically (bf16 updates lose small steps). The
  report shows the other of fp32-master and bf16-true beside the plan's own policy.

Activation checkpointing (``none | full | selective``):
- none: every block keeps ``ModelShape.activation_bytes_per_token_layer`` bytes per position.
- full: every block keeps only its input (2*d bytes); during backward one block is recomputed,
  so one block's full activations are live at a time.
- selective: blocks keep the outputs of their matmuls and of attention (q, k, v, attention out,
  w1 and w3 out) and the block input, and recompute norms and SiLU·mul (torchtitan's "op"
  selective AC in spirit): 2*(d + 2q + 2*kv_dim + 2f) bytes per position. dualmind's training
  code does not implement "selective" yet; this is the policy the planner assumes for it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .shape import ModelShape

PRECISIONS = {
    "fp32-master": (4, 4, 8),
    "bf16-fp32-adam": (2, 2, 8),
    "bf16-true": (2, 2, 4),
}  # weights, grads, AdamW bytes/param
CHECKPOINTING = ("none", "full", "selective")
HEADROOM_FRACTION = 0.10  # of HBM, kept free for context, NCCL buffers and fragmentation


@dataclass(frozen=True)
class MemoryEstimate:
    precision: str
    checkpointing: str
    micro_batch: int
    seq_len: int
    bytes_per_param_sharded: int
    model_state_total: float  # all GPUs together
    model_state_per_gpu: float
    working_set: float  # unsharded params/grads being computed
    activations: float
    logits: float
    loss_chunk: int | None
    per_gpu: float
    usable_hbm: float
    fits: bool
    min_gpus: (
        int | None
    )  # smallest count at which it fits; None: never (non-shardable part too big)
    min_gpus_nodes_of_8: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def activation_bytes(shape: ModelShape, tokens: int, checkpointing: str) -> float:
    """Activation bytes of one micro-batch of ``tokens`` positions (micro_batch x seq_len)."""
    per_layer_full = shape.activation_bytes_per_token_layer()
    d, q, kv, f = shape.d_model, shape.q_dim, shape.kv_dim, shape.ffn_hidden
    if checkpointing == "none":
        per_token = shape.n_layers * per_layer_full
    elif checkpointing == "full":
        per_token = shape.n_layers * 2.0 * d + per_layer_full
    elif checkpointing == "selective":
        per_token = shape.n_layers * 2.0 * (d + 2 * q + 2 * kv + 2 * f)
    else:
        raise ValueError(
            f"activation checkpointing must be one of {CHECKPOINTING}, got {checkpointing!r}"
        )
    return per_token * tokens


def fsdp_memory(
    shape: ModelShape,
    n_gpus: int,
    hbm_bytes: float,
    micro_batch: int,
    seq_len: int,
    checkpointing: str = "full",
    precision: str = "fp32-master",
    loss_chunk: int | None = None,
) -> MemoryEstimate:
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {list(PRECISIONS)}, got {precision!r}")
    for label, value in (("--gpus", n_gpus), ("micro-batch", micro_batch), ("seq_len", seq_len)):
        if value <= 0:
            raise ValueError(f"{label} must be a positive count, got {value}")
    bytes_per_param = sum(PRECISIONS[precision])
    state_total = float(bytes_per_param) * shape.num_params()
    # Two blocks gathered in bf16 (current + prefetched), the current block's bf16 grads and
    # the reduce-scatter buffer in the reduce dtype; the root (embedding, head) stays gathered.
    reduce_bytes = PRECISIONS[precision][1]
    working = shape.block_params() * (2 + 2 + 2 + reduce_bytes)
    root_params = shape.num_params() - shape.n_layers * shape.block_params()
    working += root_params * (2 + 2)
    tokens = micro_batch * seq_len
    acts = activation_bytes(shape, tokens, checkpointing)
    logit_rows = tokens if loss_chunk is None else min(tokens, loss_chunk)
    logits = logit_rows * shape.vocab_size * (2 + 4)
    fixed = working + acts + logits
    usable = hbm_bytes * (1.0 - HEADROOM_FRACTION)
    per_gpu = state_total / n_gpus + fixed
    if fixed >= usable:
        min_gpus = None
    else:
        min_gpus = max(1, math.ceil(state_total / (usable - fixed)))
    return MemoryEstimate(
        precision=precision,
        checkpointing=checkpointing,
        micro_batch=micro_batch,
        seq_len=seq_len,
        bytes_per_param_sharded=bytes_per_param,
        model_state_total=state_total,
        model_state_per_gpu=state_total / n_gpus,
        working_set=working,
        activations=acts,
        logits=logits,
        loss_chunk=loss_chunk,
        per_gpu=per_gpu,
        usable_hbm=usable,
        fits=per_gpu <= usable,
        min_gpus=min_gpus,
        min_gpus_nodes_of_8=None if min_gpus is None else 8 * math.ceil(min_gpus / 8),
    )
