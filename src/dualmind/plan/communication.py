"""Can FSDP's communication hide behind the compute? A bound on MFU from the network.

FSDP (ZeRO-3) moves the whole model through every GPU on every micro-batch:
- forward: all-gather each block's parameters in the compute dtype (bf16, 2 bytes/parameter);
- backward: all-gather them again (they were freed after forward; with full activation
  checkpointing the recomputed forward reuses this gather) and reduce-scatter the gradients in
  the reduce dtype (fp32 in the recipes: ``strategy.reduce_dtype``).
A ring collective moves (n-1)/n of the tensor in and out of each GPU, so per micro-batch each GPU
sends about (2 + 2 + reduce bytes) x parameters x (n-1)/n. Across nodes that goes through the
GPU's own NIC (400 Gb/s on H100/H200/B200 servers, 200 Gb/s on A100); within one node through
NVLink. We assume the collectives reach 80% of line rate and overlap perfectly with compute;
then a step takes max(compute, communication), and when communication is longer the MFU cannot
exceed MFU x compute / communication. Gradient-accumulation micro-batches are assumed to
reduce-scatter too (FSDP2 does unless gradient sync is switched off between them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .hardware import GPUSpec

LINK_EFFICIENCY = 0.80  # achieved bus bandwidth / line rate for large NCCL collectives
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class Communication:
    bytes_per_gpu_per_microbatch: float
    link: str
    link_bytes_per_s: float
    comm_seconds: float
    compute_seconds: float  # at the assumed MFU
    bound: str  # "compute" or "communication"
    mfu_ceiling: float  # the assumed MFU, or lower when communication dominates

    def to_dict(self) -> dict:
        return asdict(self)


def fsdp_communication(
    params: float,
    flops_per_microbatch: float,
    gpu: GPUSpec,
    n_gpus: int,
    mfu: float,
    param_bytes: int = 2,
    reduce_bytes: int = 4,
) -> Communication:
    if n_gpus <= 1:
        traffic, link, bandwidth = 0.0, "none (one GPU)", float("inf")
    else:
        traffic = (2 * param_bytes + reduce_bytes) * params * (n_gpus - 1) / n_gpus
        if n_gpus <= 8:
            link, bandwidth = "NVLink (one node)", gpu.nvlink_bytes_per_s
        else:
            link, bandwidth = "inter-node NIC per GPU", gpu.network_bytes_per_s
    comm = traffic / (bandwidth * LINK_EFFICIENCY) if traffic else 0.0
    compute = flops_per_microbatch / (gpu.peak_bf16_flops * mfu)
    bound = "communication" if comm > compute else "compute"
    ceiling = mfu * min(1.0, compute / comm) if comm else mfu
    return Communication(traffic, link, bandwidth, comm, compute, bound, ceiling)
