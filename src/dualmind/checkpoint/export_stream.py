"""One tensor at a time: read a checkpoint's tensors, write them into safetensors shards.

What `dualmind export --format hf` streams through (dualmind.checkpoint.export_hf): a .ckpt file
through a memory map, a sharded (DCP) folder with ``export_sharded.load_dcp_tensor``, a
`dualmind export` folder through ``safe_open``; shards named and indexed as transformers names
them, each closed when the next tensor would pass the size limit. No whole state dict is ever built.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from dualmind.checkpoint.export import ExportError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


# ---- reading a checkpoint one tensor at a time ---------------------------------------------


def is_export_folder(path: Path) -> bool:
    """A `dualmind export` folder (config.json + <component>.safetensors)."""
    return path.is_dir() and (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def resolve_source(path: Path) -> Path:
    """A checkpoint (as `dualmind export` takes it) or a `dualmind export` folder."""
    from dualmind.checkpoint.export import _resolve_checkpoint

    return path if is_export_folder(path) else _resolve_checkpoint(path)


class CheckpointTensors:
    """The state_dict tensors of a .ckpt file, a sharded (DCP) folder or a `dualmind export`
    folder, by name (``core.layers.0...``), with their shapes and dtypes, loaded one at a time;
    ``meta``: the checkpoint's dualmind metadata (an export folder's config.json)."""

    def __init__(self, ckpt: Path):
        from dualmind.checkpoint.export_sharded import (
            DCP_META,
            STATE_PREFIX,
            dcp_tensors,
            is_sharded_checkpoint,
            load_dcp_tensor,
        )
        from dualmind.checkpoint.meta import checkpoint_metadata

        self.path = ckpt
        if is_export_folder(ckpt):
            self._read_export(ckpt)
            return
        if is_sharded_checkpoint(ckpt):
            self.checkpoint = torch.load(ckpt / DCP_META, map_location="cpu", weights_only=True)
            found = dcp_tensors(ckpt)
            self.specs = {k[len(STATE_PREFIX):]: v for k, v in found.items()
                          if k.startswith(STATE_PREFIX)}
            self._get = lambda name: load_dcp_tensor(ckpt, STATE_PREFIX + name,
                                                     *self.specs[name])
        else:
            # mmap: a tensor's pages are read when it is written out, never the whole file at once
            self.checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
            state = self.checkpoint.get("state_dict")
            if not isinstance(state, dict):
                raise ExportError(f"{ckpt}: no state_dict in the checkpoint")
            self.specs = {k: (v.shape, v.dtype) for k, v in state.items()}
            self._get = state.__getitem__
        self.meta = checkpoint_metadata(self.checkpoint)

    def _read_export(self, folder: Path) -> None:
        """A `dualmind export` folder (e.g. a merged adapter's): tensors read one at a time."""
        from safetensors import safe_open

        from dualmind.checkpoint.export import read_export_config
        from dualmind.checkpoint.export_sharded import ST_DTYPES

        config = read_export_config(folder)
        dtypes = {name: dtype for dtype, name in ST_DTYPES.items()}
        self.meta, self.checkpoint = config, {"global_step": config.get("global_step")}
        self.specs, files = {}, {}
        for component, entry in config["components"].items():
            file = str(folder / entry["file"])
            with safe_open(file, framework="pt") as f:
                for key in f.keys():
                    part = f.get_slice(key)
                    name = f"{component}.{key}"
                    self.specs[name] = (torch.Size(part.get_shape()), dtypes[part.get_dtype()])
                    files[name] = (file, key)

        def get(name: str) -> torch.Tensor:
            file, key = files[name]
            with safe_open(file, framework="pt") as f:
                return f.get_tensor(key)

        self._get = get

    def component(self, prefix: str) -> dict[str, tuple[torch.Size, torch.dtype]]:
        """Shapes and dtypes of the tensors under ``prefix`` ("core."), names without it."""
        return {k[len(prefix):]: v for k, v in self.specs.items() if k.startswith(prefix)}

    def get(self, name: str) -> torch.Tensor:
        return self._get(name)


# ---- writing safetensors shards --------------------------------------------------------------


def plan_shards(entries: list[tuple[str, torch.Size, torch.dtype]], max_bytes: int
                ) -> list[list[tuple[str, torch.Size, torch.dtype]]]:
    """Split entries, in order, into shards of at most ``max_bytes`` (a larger tensor alone)."""
    shards: list[list] = [[]]
    size = 0
    for entry in entries:
        n = entry[2].itemsize * int(torch.Size(entry[1]).numel())
        if shards[-1] and size + n > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += n
    return [s for s in shards if s]


def write_weights(folder: Path, entries: list[tuple[str, torch.Size, torch.dtype]],
                  tensor_of: Callable[[str], torch.Tensor], max_bytes: int) -> dict:
    """``model.safetensors``, or shards + ``model.safetensors.index.json`` as transformers names
    them; tensors produced (and released) one at a time. Returns {file: tensor count}."""
    from dualmind.checkpoint.export_sharded import write_safetensors

    shards = plan_shards(entries, max_bytes)
    names = ([SINGLE_FILE] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
    weight_map = {}
    for name, shard in zip(names, shards, strict=True):
        # "format": "pt" is what transformers expects in a safetensors header
        write_safetensors(folder / name, shard, tensor_of, {"format": "pt"})
        weight_map.update({entry[0]: name for entry in shard})
    if len(shards) > 1:
        total = sum(e[2].itemsize * int(torch.Size(e[1]).numel()) for e in entries)
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return {name: len(shard) for name, shard in zip(names, shards, strict=True)}
