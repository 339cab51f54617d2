"""The frozen core's fingerprint at an align start-up, without hashing 280 GB on every rank.

Align checkpoints record the fingerprint of the core their decoder reads (dualmind.train.align).
Under fsdp2 it used to be computed by gathering and hashing every tensor of the sharded core at
start-up: at 70B, ~280 GB of fp32 through sha256 on every rank. When ``core.checkpoint`` is a
``dualmind export`` folder, the export recorded the fingerprint and a digest per tensor
(dualmind.checkpoint.export_digests), and the start-up checks instead:

- every tensor: the names, dtypes and shapes of the loaded core against the recorded ones, and
  the safetensors file's header (names, dtypes, shapes, byte offsets, file size) against them;
- a sample of ``core.verify_tensors`` tensors (default 8), drawn afresh at every start-up (the
  seed is drawn on rank 0 and shared, and printed): each is gathered whole from the loaded shards
  and re-hashed against its recorded digest;

and then takes the recorded fingerprint as the core's. The trade-off, plainly: a core replaced by
another one (another run, a fine-tune) differs in every tensor and is caught by any sample; a
truncated or re-shaped file is caught by the header and shape checks; but a change confined to
a few tensors outside the sample (a hand-edited head, a flipped bit) passes one start-up
unnoticed: with k of N tensors sampled, each start-up catches a single changed tensor with
probability k/N (8 of 723 at 70B: ~1%), and a resumed run draws a new sample. ``core.verify_tensors
=all`` re-hashes every tensor against its digest (at 70B: the time to hash the core once, on
every rank, as before). A ``.ckpt`` file or a sharded checkpoint folder records no digests: its
core is hashed whole, as before, and so is a core held in another dtype than it was exported in.
"""

from __future__ import annotations

import json
import os
import random
import struct
from pathlib import Path

import torch
from torch import nn

DEFAULT_SAMPLE = 8
ALL = "all"


def _error(msg: str) -> Exception:
    from dualmind.checkpoint.frozen_core import CoreCheckpointError

    return CoreCheckpointError(msg)


def sample_size(value) -> int | None:
    """``core.verify_tensors``: a count >= 0, or "all" (None: hash every tensor)."""
    if value is None:  # not configured (a config from before the key)
        return DEFAULT_SAMPLE
    if str(value) == ALL:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _error(f"core.verify_tensors={value!r}: expected a count of tensors >= 0 or 'all'")
    return value


def recorded_core(path: str | Path) -> dict | None:
    """The export's ``components.core`` entry when it records per-tensor digests, else None."""
    path = Path(path)
    if not (path.is_dir() and (path / "config.json").is_file()):
        return None
    from dualmind.checkpoint.export import read_export_config

    entry = read_export_config(path)["components"].get("core") or {}
    return entry if "tensor_digests" in entry and "fingerprint" in entry else None


def check_file_header(file: Path, recorded: dict[str, dict]) -> None:
    """The safetensors header against the recorded dtypes and shapes, and the file's size against
    the header's last byte offset (a truncated copy): no tensor data is read."""
    from dualmind.checkpoint.export_sharded import ST_DTYPES

    with open(file, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    aliases = json.loads((header.pop("__metadata__", None) or {}).get("aliases", "{}"))
    names = set(header) | set(aliases)
    if names != set(recorded):
        raise _error(f"{file}: holds tensors {sorted(names ^ set(recorded))[:6]} that the export's "
                     "config.json does not record, or lacks recorded ones")
    by_name = {str(dtype): code for dtype, code in ST_DTYPES.items()}
    for name, info in header.items():
        want = recorded[name]
        if info["shape"] != want["shape"] or info["dtype"] != by_name.get(want["dtype"]):
            raise _error(f"{file}: {name} is {info['dtype']} {info['shape']} but the export "
                         f"recorded {want['dtype']} {want['shape']}")
    end = max((info["data_offsets"][1] for info in header.values()), default=0)
    if file.stat().st_size != 8 + length + end:
        raise _error(f"{file}: {file.stat().st_size} bytes, its header describes {8 + length + end}"
                     " (a truncated or appended copy)")


def shared_seed() -> int:
    """A fresh seed, the same on every rank (drawn on rank 0): every rank must gather the same
    tensors, in the same order."""
    seed = torch.tensor([int.from_bytes(os.urandom(4), "little")], dtype=torch.int64)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.broadcast(seed, src=0)
    return int(seed.item())


def sample_names(names, k: int | None, seed: int) -> list[str]:
    """``k`` names drawn from ``names`` with ``seed`` (all of them when k is None or larger)."""
    names = sorted(names)
    if k is None or k >= len(names):
        return names
    return sorted(random.Random(seed).sample(names, k))


def verified_fingerprint(module: nn.Module, path: str | Path, verify_tensors=None,
                         seed: int | None = None) -> tuple[str, str]:
    """(fingerprint, how it was established) of the core loaded into ``module`` (sharded or not)
    from ``path``. A collective when sharded: every rank calls it. Raises CoreCheckpointError when a
    checked tensor differs from what the export recorded."""
    from dualmind.checkpoint.sharded_load import sharded_fingerprint
    from dualmind.model.fingerprint import tensor_digest

    k = sample_size(verify_tensors)
    entry = recorded_core(path)
    state = module.state_dict()
    why_all = None
    if entry is None:
        why_all = "the checkpoint records no per-tensor digests (a `dualmind export` folder does)"
    else:
        recorded = entry["tensor_digests"]
        if set(state) != set(recorded):
            raise _error(f"core.checkpoint={path}: the core has tensors "
                         f"{sorted(set(state) ^ set(recorded))[:6]} that the export does not "
                         "record, or lacks recorded ones")
        for name, t in state.items():
            if list(t.shape) != recorded[name]["shape"]:
                raise _error(f"core.checkpoint={path}: {name} is {list(t.shape)} in the core, "
                             f"{recorded[name]['shape']} in the export's record")
        # Weights held in another dtype than exported (bf16-true casts them) hash differently:
        # only a hash of the whole core can name them, as before.
        if any(str(t.dtype) != recorded[n]["dtype"] for n, t in state.items()):
            why_all = "the core is held in another dtype than it was exported in"
    if why_all is not None:
        return sharded_fingerprint(module), f"hashed all {len(state)} tensors: {why_all}"
    check_file_header(Path(path) / entry["file"], recorded)
    seed = shared_seed() if seed is None else seed
    names = sample_names(recorded, k, seed)
    for name in names:
        t = state[name]
        whole = t.full_tensor() if hasattr(t, "full_tensor") else t  # a collective per tensor
        found = tensor_digest(name, whole)
        del whole
        if found != recorded[name]["digest"]:
            raise _error(f"core.checkpoint={path}: tensor {name} hashes to {found}, the export "
                         f"recorded {recorded[name]['digest']}: the weights changed after they "
                         "were exported (or were read wrongly); re-export the core")
    return entry["fingerprint"], (
        f"the export's record: names, dtypes and shapes of all {len(state)} tensors checked, "
        f"{len(names)} re-hashed against their digests (seed {seed}: {', '.join(names[:4])}"
        f"{', ...' if len(names) > 4 else ''})")
