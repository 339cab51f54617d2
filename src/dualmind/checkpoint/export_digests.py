"""What `dualmind export` records about the weights it writes, so a load need not hash them all.

For each exported component, ``config.json`` gets ``components.<c>.fingerprint`` (the
:func:`dualmind.model.fingerprint.weights_fingerprint` of the component's state dict, tied names
included: the value align checkpoints record as ``core_fingerprint``) and
``components.<c>.tensor_digests`` ({name: digest, dtype, shape}). Both come from one read of the
written safetensors file, one tensor resident at a time, so a 70B export pays one pass over its
bytes here, once, instead of every align start-up paying it on every rank
(:mod:`dualmind.checkpoint.core_verify`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch


class SafetensorsOneByOne(Mapping):
    """A safetensors file's tensors, aliases included, each loaded only when read."""

    def __init__(self, handle, aliases: dict[str, str]):
        self.handle, self.aliases = handle, aliases
        self.names = sorted(set(handle.keys()) | set(aliases))

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.handle.get_tensor(self.aliases.get(name, name))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def file_digests(file: Path) -> tuple[str, dict[str, dict]]:
    """(fingerprint, per-tensor digests) of one exported component file."""
    from safetensors import safe_open

    from dualmind.model.fingerprint import weights_digests

    with safe_open(str(file), framework="pt") as f:
        aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
        return weights_digests(SafetensorsOneByOne(f, aliases))


def record_digests(out: Path, files: dict) -> None:
    """Add ``fingerprint`` and ``tensor_digests`` to each entry of an export's ``components``."""
    for entry in files.values():
        entry["fingerprint"], entry["tensor_digests"] = file_digests(out / entry["file"])
