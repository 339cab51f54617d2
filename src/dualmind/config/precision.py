"""Which numeric precision a run uses on this machine: the one rule every trainer, script and
benchmark applies (no Lightning needed).

``trainer.precision: auto`` (the default of every CPU-sized recipe) resolves to

- ``bf16-mixed`` on a CUDA GPU that supports bf16 (Ampere and newer);
- ``bf16-mixed`` on a CPU where PyTorch reports native bf16 (oneDNN: AVX512-BF16 or AMX), where
  bf16 autocast trains 1.6-2x faster than fp32;
- ``32-true`` everywhere else. On an AVX2-only CPU bf16 is emulated: a 512x512 bf16 matmul took
  0.33 s against 0.007 s in fp32 (issue 12), and a bf16 demo trained 1 step in 10 minutes.

An explicit setting is obeyed, with a warning when bf16 is asked for on a CPU without it; the one
rewrite kept from before is bf16-mixed on a pre-Ampere GPU, which becomes fp16 autocast (16-mixed).
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO = "auto"
BF16 = ("bf16-mixed", "bf16-true", "bf16")
NO_NATIVE_BF16_CPU = "this CPU has no native bf16"


@dataclass(frozen=True)
class Precision:
    """The precision a run uses (a Lightning precision string), why, and what to warn about."""

    value: str
    reason: str
    warning: str | None = None

    @property
    def bf16(self) -> bool:
        return self.value in BF16

    def line(self) -> str:
        """The start-up line: ``precision: 32-true (this CPU has no native bf16)``."""
        return f"precision: {self.value} ({self.reason})"


def cpu_has_native_bf16() -> bool:
    """PyTorch's own answer (oneDNN's CPU probe); False where the probe is missing.
    ``DUALMIND_NATIVE_BF16=0`` (or 1) overrides it: to time or test, on a machine with native
    bf16, what a machine without it runs (the README's demo time on such CPUs was measured so)."""
    import os

    forced = os.environ.get("DUALMIND_NATIVE_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _device_type(accelerator: str) -> str:
    """cuda or cpu: where a run with this trainer.accelerator computes (Lightning's auto picks
    CUDA when there is one). Anything else (mps, tpu) is returned as given."""
    import torch

    accelerator = str(accelerator or AUTO).lower()
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return accelerator


def _cuda_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve(requested: str, accelerator: str = AUTO) -> Precision:
    """The precision a run asking for ``requested`` (trainer.precision) uses on this machine."""
    requested = str(requested)
    device = _device_type(accelerator)
    if requested == AUTO:
        if device == "cuda":
            if _cuda_bf16():
                return Precision("bf16-mixed", "auto: this GPU supports bf16")
            return Precision("32-true", "auto: this GPU has no bf16; trainer.precision=16-mixed "
                                        "would use fp16 autocast")
        if device == "cpu":
            if cpu_has_native_bf16():
                return Precision("bf16-mixed", "auto: this CPU has native bf16")
            return Precision("32-true", f"auto: {NO_NATIVE_BF16_CPU}")
        return Precision("32-true", f"auto: bf16 is not assumed on accelerator {device}")
    if requested == "bf16-mixed" and device == "cuda" and not _cuda_bf16():
        return Precision("16-mixed", "trainer.precision=bf16-mixed on a GPU without bf16: fp16 "
                                     "autocast with a loss scaler instead")
    if requested in BF16 and device == "cpu" and not cpu_has_native_bf16():
        return Precision(requested, f"trainer.precision={requested}", warning=(
            f"trainer.precision={requested} on a CPU without native bf16: bf16 is emulated here "
            "and trains many times slower than fp32 (~50x per matmul on an AVX2 CPU); "
            "trainer.precision=auto picks 32-true on this machine"))
    return Precision(requested, f"trainer.precision={requested}")


def for_planned_gpu(requested: str) -> str:
    """trainer.precision as the planner and dry run read it: a plan is for GPUs, and every GPU
    the planner knows (dualmind.plan.hardware: A100 and newer) supports bf16, so auto is
    bf16-mixed there whatever this machine has."""
    return "bf16-mixed" if str(requested) == AUTO else str(requested)

