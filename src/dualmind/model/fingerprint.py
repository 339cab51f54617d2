"""A short, stable identity for a set of weights, so that pieces trained together can prove it.

A decoder aligned to one core, or a LoRA adapter trained on one core, records the core's
fingerprint; loading it against any other core is refused with both fingerprints in the message.
The hash covers every tensor's name, dtype, shape and bytes in sorted-name order, so it does not
depend on dict order, device or whether tied weights are stored once or twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

FINGERPRINT_CHARS = 16


def weights_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """Hex digest (16 characters) of a state dict's names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach()
        if tensor.device.type == "meta":
            raise ValueError(f"{name}: a meta tensor has no values to fingerprint")
        tensor = tensor.to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # bf16 has no numpy dtype: hash the raw bytes through a uint8 view of the storage.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:FINGERPRINT_CHARS]
