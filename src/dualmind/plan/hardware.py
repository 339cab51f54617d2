"""GPU datasheet figures the planner computes with.

Peak FLOP/s are the vendors' **dense** bf16 tensor-core figures (the datasheets print the
2:4-sparsity number first, which is twice as large; MFU is always quoted against dense).
Memory is the datasheet capacity in **GiB**, the unit the dry run (``strategy.device_memory_gib``)
and every memory figure use, so `dualmind plan` and `train.py ... trainer.dry_run=true` size a GPU
alike. HBM comes in binary-sized stacks (16 or 24 GiB each), so the A100/H100's "80 GB" is 5 x 16
GiB = 80 GiB, not 80e9 bytes; the H200's 141 and the B200's 180 (the enabled part of 6 and 8
stacks of 24 GiB) are read as GiB the same way. (80e9 bytes is 74.5 GiB: the planner used it
before while the dry run used 80 GiB, and for core_70b they answered 80 and 64 GPUs.) What CUDA
reports can be a little less (an H100 SXM's nvidia-smi shows 81,559 MiB = 79.6 GiB); the 10%
headroom of the memory model covers that.

Sources (checked 2026-11):
- A100 SXM4 80GB: NVIDIA A100 Tensor Core GPU datasheet, "BFLOAT16 Tensor Core 312 TFLOPS |
  624 TFLOPS*" (*with sparsity); 80 GB HBM2e. DGX A100: 2x AMD EPYC 7742 (64 cores) for 8 GPUs.
- H100 SXM5 80GB: NVIDIA H100 datasheet, "BF16 Tensor Core 1,979 teraFLOPS*" (*with
  sparsity) -> 989 dense; 80 GB HBM3. DGX H100: 2x Xeon Platinum 8480C (56 cores) for 8 GPUs.
- H200 SXM 141GB: NVIDIA H200 datasheet, same tensor cores as H100 (1,979 sparse -> 989
  dense), 141 GB HBM3e. DGX H200: same CPUs as DGX H100.
- B200 (HGX B200, 1000 W): NVIDIA HGX B200 spec, FP16/BF16 tensor 4.5 PFLOPS sparse ->
  2.25 PFLOPS dense per GPU; 1,440 GB for 8 GPUs = 180 GB each. DGX B200: 2x Xeon Platinum 8570
  (56 cores) for 8 GPUs.

Interconnect per GPU (for the FSDP communication estimate): inter-node, the vendors' 8-GPU
servers give each GPU one NIC — DGX A100: 8x ConnectX-6 200 Gb/s HDR; DGX H100/H200: 8x
ConnectX-7 400 Gb/s; DGX B200: 8x ConnectX-7 400 Gb/s. Inside a node, NVLink per GPU per
direction: A100 300 GB/s (600 total), H100/H200 450 GB/s (900), B200 900 GB/s (1,800).

Prices are NOT datasheet figures: they are round on-demand cloud list prices per GPU-hour
seen in 2025 (an assumption the report labels as such; pass ``--price`` for a real quote).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GPUSpec:
    name: str
    peak_bf16_flops: float  # dense, FLOP/s
    memory_gib: float  # HBM capacity, GiB (see the module doc)
    host_cores_per_gpu: int  # CPU cores per GPU in the vendor's 8-GPU server (codec runs there)
    network_bytes_per_s: float  # inter-node NIC per GPU, one direction
    nvlink_bytes_per_s: float  # intra-node NVLink per GPU, one direction
    price_per_hour: float  # USD per GPU-hour, ASSUMPTION (see module doc)
    source: str

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * 2**30

    def to_dict(self) -> dict:
        return asdict(self)


GPUS: dict[str, GPUSpec] = {
    "a100": GPUSpec(
        "NVIDIA A100 SXM4 80GB",
        312e12,
        80,
        16,
        200e9 / 8,
        300e9,
        1.80,
        "A100 datasheet: BF16 312 TFLOPS dense (624 with sparsity), 80 GB HBM2e",
    ),
    "h100": GPUSpec(
        "NVIDIA H100 SXM5 80GB",
        989e12,
        80,
        14,
        400e9 / 8,
        450e9,
        2.50,
        "H100 datasheet: BF16 1,979 TFLOPS with sparsity = 989 dense, 80 GB HBM3",
    ),
    "h200": GPUSpec(
        "NVIDIA H200 SXM 141GB",
        989e12,
        141,
        14,
        400e9 / 8,
        450e9,
        3.50,
        "H200 datasheet: BF16 1,979 TFLOPS with sparsity = 989 dense, 141 GB HBM3e",
    ),
    "b200": GPUSpec(
        "NVIDIA B200 (HGX, 1000 W)",
        2250e12,
        180,
        14,
        400e9 / 8,
        900e9,
        5.00,
        "HGX B200 spec: BF16 4.5 PFLOPS with sparsity = 2.25 dense per GPU, 180 GB HBM3e",
    ),
}

PRICE_NOTE = "assumed on-demand cloud list price (2025), not a quote; override with --price"


class UnknownGPUError(KeyError):
    """Raised for a GPU name the planner has no datasheet for (never a silent default)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


def gpu_spec(name: str) -> GPUSpec:
    try:
        return GPUS[name.lower()]
    except KeyError:
        raise UnknownGPUError(
            f"unknown GPU {name!r}: choose one of {', '.join(sorted(GPUS))}"
        ) from None
