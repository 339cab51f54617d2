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


def tensor_digest(name: str, tensor: torch.Tensor) -> str:
    """Hex digest (16 characters) of one tensor's name, dtype, shape and values: what an export
    records per tensor, so a load can re-hash some tensors instead of all of them."""
    return weights_digests({name: tensor})[1][name]["digest"]


def weights_digests(state: Mapping[str, torch.Tensor]) -> tuple[str, dict[str, dict]]:
    """(:func:`weights_fingerprint` of ``state``, {name: {"digest", "dtype", "shape"}}) in one pass
    over the values: each tensor is read once and fed to both hashes (``state`` may be a mapping
    that loads a tensor only when it is read, one at a time)."""
    whole = hashlib.sha256()
    tensors = {}
    for name in sorted(state):
        tensor = state[name].detach()
        if tensor.device.type == "meta":
            raise ValueError(f"{name}: a meta tensor has no values to fingerprint")
        tensor = tensor.to("cpu").contiguous()
        head = f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode()
        data = tensor.reshape(-1).view(torch.uint8).numpy()
        one = hashlib.sha256(head)
        one.update(data)
        whole.update(head)
        whole.update(data)
        tensors[name] = {"digest": one.hexdigest()[:FINGERPRINT_CHARS],
                         "dtype": str(tensor.dtype), "shape": list(tensor.shape)}
    return whole.hexdigest()[:FINGERPRINT_CHARS], tensors
