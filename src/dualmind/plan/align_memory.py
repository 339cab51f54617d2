"""Memory per GPU of stage align under FSDP2: a frozen core read by a trained language decoder.

A GPU holds, for the whole run:
- the frozen core's parameter shard (no gradients, no optimizer state), in the dtype of the
  master weights (dualmind.distributed.parallel.parallelize_align keeps it there, see why there);
- the decoder's shard of weights + gradients + AdamW state (memory.PRECISIONS, as for the core).

and, on top, the larger of its two phases in a step (they never overlap: train.module.DualMindModule
reshards the core right after its forward, and the forward runs under no_grad, so nothing of the
core waits for a backward):
- core forward: the core's gathered root (embedding, head, final norm) and two blocks (current +
  prefetched) in the compute dtype, one block's activations over the rows (transient: no_grad
  frees each block's intermediates before the next), and the states it hands on (no logits:
  align.core_states stops before the output head);
- decoder forward + backward: the cross-attention inputs (the rows' core states in bf16, and
  the boolean cross mask T x (S+1) per row), the decoder's working set and activations under the
  configured checkpointing (memory.fsdp_memory's rules, for its text stack, plus its
  cross-attention layers), and its logits over the text vocabulary (bf16 + fp32 log-softmax).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .memory import HEADROOM_FRACTION, PRECISIONS, activation_bytes
from .shape import ModelShape

COMPUTE_BYTES = 2  # bf16: FSDP2's param_dtype, the dtype gathered weights and activations take


@dataclass(frozen=True)
class AlignMemory:
    precision: str
    checkpointing: str
    rows: int  # micro-batch: rows per GPU
    core_len: int  # core symbols per row
    text_len: int  # text tokens per row
    core_shard: float  # frozen core parameters held by one GPU
    decoder_state: float  # decoder params + grads + AdamW held by one GPU
    core_working: float
    core_activations: float
    cross_inputs: float
    decoder_working: float
    decoder_activations: float
    decoder_logits: float
    usable_hbm: float

    @property
    def core_phase(self) -> float:
        return self.core_working + self.core_activations + self.cross_inputs

    @property
    def decoder_phase(self) -> float:
        return (self.cross_inputs + self.decoder_working + self.decoder_activations
                + self.decoder_logits)

    @property
    def peak_phase(self) -> str:
        return "core forward" if self.core_phase > self.decoder_phase else "decoder step"

    @property
    def per_gpu(self) -> float:
        return self.core_shard + self.decoder_state + max(self.core_phase, self.decoder_phase)

    @property
    def fits(self) -> bool:
        return self.per_gpu <= self.usable_hbm

    def min_gpus(self, world: int) -> int | None:
        """Smallest GPU count at which it fits (the shards scale as 1/GPUs, the rest does not);
        None when the unsharded part alone is too big."""
        fixed = max(self.core_phase, self.decoder_phase)
        if fixed >= self.usable_hbm:
            return None
        return max(1, math.ceil((self.core_shard + self.decoder_state) * world
                                / (self.usable_hbm - fixed)))

    def to_dict(self) -> dict:
        return dict(asdict(self), per_gpu=self.per_gpu, fits=self.fits)


def cross_activation_bytes(dim: int, q_dim: int, core_dim: int, kv_dim: int, text_tokens: int,
                           core_states: int, checkpointing: str, n_cross: int) -> float:
    """What the decoder's cross-attention layers (dualmind.model.cross_attention) keep for
    backward, in bf16, counted from the layer's code and checked against its saved tensors
    (tests/test_plan_align.py):
    - per text token: the q_norm as a block's norms (8d), q and the attention output (2q each),
      and the wo output the tanh gate scales (2d): 10d + 4q;
    - per core state (detached: the norm's fp32 input is not kept): the kv_norm's normalised
      value and output, which wk and wv read (2 core_dim each), and k and v (2 kv each).
    Under full checkpointing one block, so at most one cross layer, is recomputed at a time;
    selective keeps the matmul outputs (q, attention out, wo out; k, v) and recomputes norms."""
    per_text, per_state = 10.0 * dim + 4.0 * q_dim, 4.0 * core_dim + 4.0 * kv_dim
    if checkpointing == "full":
        return per_text * text_tokens + per_state * core_states
    if checkpointing == "selective":
        return n_cross * ((4.0 * q_dim + 2.0 * dim) * text_tokens + 4.0 * kv_dim * core_states)
    return n_cross * (per_text * text_tokens + per_state * core_states)


def align_memory(*, core: ModelShape, core_shard_params: int, core_block_params: int,
                 core_root_params: int, text_stack: ModelShape, decoder_shard_params: int,
                 decoder_block_params: int, decoder_root_params: int, n_cross: int,
                 core_dim: int, hbm_bytes: float, rows: int, core_len: int, text_len: int,
                 checkpointing: str = "full", precision: str = "fp32-master") -> AlignMemory:
    """Per-GPU memory of one align step. Shard and block sizes are parameter counts read off the
    sharded modules (dualmind.distributed.dry_run_align); shapes give the activation and logit
    sizes."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    weight_b, grad_b, _ = PRECISIONS[precision]
    core_states, text_tokens = rows * core_len, rows * text_len
    # Forward only: two gathered blocks and the root, no gradients, no reduce-scatter.
    core_working = (2 * core_block_params + core_root_params) * COMPUTE_BYTES
    # As fsdp_memory: two gathered blocks, the current one's grads, the reduce-scatter buffer.
    decoder_working = (decoder_block_params * (3 * COMPUTE_BYTES + grad_b)
                       + decoder_root_params * 2 * COMPUTE_BYTES)
    decoder_acts = activation_bytes(text_stack, text_tokens, checkpointing) + \
        cross_activation_bytes(text_stack.d_model, text_stack.q_dim, core_dim, text_stack.kv_dim,
                               text_tokens, core_states, checkpointing, n_cross)
    return AlignMemory(
        precision=precision, checkpointing=checkpointing, rows=rows, core_len=core_len,
        text_len=text_len,
        core_shard=float(core_shard_params * weight_b),
        decoder_state=float(decoder_shard_params * sum(PRECISIONS[precision])),
        core_working=float(core_working),
        core_activations=core.activation_bytes_per_token_layer() * core_states,
        cross_inputs=float(core_states * core_dim * COMPUTE_BYTES
                           + text_tokens * (core_len + 1)),
        decoder_working=float(decoder_working),
        decoder_activations=float(decoder_acts),
        decoder_logits=float(text_tokens * text_stack.vocab_size * (COMPUTE_BYTES + 4)),
        usable_hbm=hbm_bytes * (1.0 - HEADROOM_FRACTION),
    )
