"""`dualmind export` of a sharded (DCP) checkpoint folder, one tensor at a time.

An fsdp2 run saves ``checkpoints/stepN.ckpt/``: one ``.distcp`` file per rank holding that rank's
shards, and ``meta.pt`` with everything that is not a tensor. Consolidating it the obvious way
(gather a full state dict, then ``save_file``) holds the whole model at least twice; a 70B core
does not fit that. Here, without any process group:

1. the DCP metadata gives every tensor's name, global shape and dtype, so each component's
   safetensors header (names, dtypes, shapes, byte offsets) is written before any data;
2. each tensor is then loaded alone (``torch.distributed.checkpoint.load`` reads just its chunks
   from the rank files and assembles it) and its bytes are appended to the file, then dropped.

At most one full tensor is resident at a time (the largest: the embedding or output head), and
the output is byte-for-byte the safetensors format, read back with ``safetensors.safe_open``.
Optimizer state is not exported. Tied matrices are stored once and recorded as aliases.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

DCP_META = "meta.pt"
# safetensors dtype names (the format's spec)
ST_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}
# The LightningModule's state dict goes into DCP under this key (ModelParallelStrategy).
STATE_PREFIX = "state_dict."


def is_sharded_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / DCP_META).is_file()


def dcp_tensors(path: Path) -> dict[str, tuple[torch.Size, torch.dtype]]:
    """Global shape and dtype of every tensor in a DCP folder, by its flattened key."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    metadata = FileSystemReader(str(path)).read_metadata()
    return {key: (m.size, m.properties.dtype) for key, m in metadata.state_dict_metadata.items()
            if isinstance(m, TensorStorageMetadata)}


def load_dcp_tensor(path: Path, key: str, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """One whole tensor of a DCP folder (all ranks' chunks), read without a process group."""
    import warnings

    import torch.distributed.checkpoint as dcp

    tensor = torch.empty(shape, dtype=dtype)
    with warnings.catch_warnings():  # "no process group: loading in a single process" - intended
        warnings.filterwarnings("ignore", message=r"torch\.distributed is disabled")
        dcp.load({key: tensor}, checkpoint_id=str(path), no_dist=True)
    return tensor


def write_safetensors(file: Path, entries: list[tuple[str, torch.Size, torch.dtype]],
                      tensor_of: Callable[[str], torch.Tensor], metadata: dict[str, str]) -> None:
    """A safetensors file whose tensors are produced (and released) one at a time."""
    header: dict = {"__metadata__": metadata}
    offset = 0
    for name, shape, dtype in entries:
        if dtype not in ST_DTYPES:
            raise ValueError(f"{name}: dtype {dtype} has no safetensors name")
        size = dtype.itemsize * int(torch.Size(shape).numel())
        header[name] = {"dtype": ST_DTYPES[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    tmp = file.with_name(f".{file.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape, dtype in entries:
            t = tensor_of(name)
            if t.shape != shape or t.dtype != dtype:
                raise ValueError(f"{name}: loaded {tuple(t.shape)} {t.dtype}, the checkpoint's "
                                 f"metadata says {tuple(shape)} {dtype}")
            f.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().data)
            del t
    tmp.replace(file)


def _tied(meta: dict, component: str) -> bool:
    shape = meta.get("model") if component == "core" else meta.get(component)
    return bool((shape or {}).get("tie_embeddings"))


def component_entries(tensors: dict, component: str, tied: bool
                      ) -> Iterator[tuple[str, str, torch.Size, torch.dtype]]:
    """(name in the export, DCP key, shape, dtype) of one component's tensors, in key order."""
    prefix = f"{STATE_PREFIX}{component}."
    for key in sorted(tensors):
        if key.startswith(prefix):
            name = key[len(prefix):]
            if tied and name == "output.weight":
                continue  # the same matrix as tok_embeddings.weight: stored once, an alias
            yield name, key, *tensors[key]


def export_sharded(ckpt: Path, out: Path, components: tuple[str, ...]) -> tuple[dict, dict]:
    """Write OUT/<component>.safetensors from a DCP folder; returns (files entry, checkpoint
    metadata dict from meta.pt). The caller writes config.json."""
    checkpoint = torch.load(ckpt / DCP_META, map_location="cpu", weights_only=True)
    from dualmind.checkpoint.meta import checkpoint_metadata

    meta = checkpoint_metadata(checkpoint)
    tensors = dcp_tensors(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for component in components:
        tied = _tied(meta, component)
        entries = list(component_entries(tensors, component, tied))
        if not entries:
            continue
        keys = {name: key for name, key, _, _ in entries}
        aliases = {"output.weight": "tok_embeddings.weight"} if tied else {}
        name = f"{component}.safetensors"
        write_safetensors(
            out / name, [(n, s, d) for n, _, s, d in entries],
            lambda n, keys=keys: load_dcp_tensor(ckpt, keys[n], *tensors[keys[n]]),
            {"aliases": json.dumps(aliases)},
        )
        files[component] = {"file": name, "tensors": len(entries), "aliases": aliases}
    return files, checkpoint
