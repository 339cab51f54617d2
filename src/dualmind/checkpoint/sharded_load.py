"""Load a trained core's weights into an FSDP2-sharded core, each rank reading only its shard.

stage=align under strategy=fsdp2 builds the frozen core on ``meta``, shards it, and then fills
the shards from ``core.checkpoint`` here. No rank ever holds the whole core:

- a sharded (DCP) checkpoint folder of an fsdp2 core run: ``torch.distributed.checkpoint.load``
  reads straight into each rank's DTensor shards (resharding if the world size changed);
- a ``dualmind export`` folder: safetensors slices, only the rows of this rank's shard are read;
- a Lightning ``.ckpt`` file: opened with ``mmap=True``, so only the pages of this rank's rows
  are touched.

    meta = core_checkpoint_meta(path, expect_lexicon)    # metadata only, lexicon checked
    load_core_shards(core, path)                          # after fully_shard + to_empty
    sharded_fingerprint(core)                             # == the unsharded core's fingerprint
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

# Lightning's ModelParallelStrategy writes the non-tensor part of a sharded checkpoint here.
DCP_META = "meta.pt"


def _core_error(msg: str) -> Exception:
    from dualmind.checkpoint.frozen_core import CoreCheckpointError

    return CoreCheckpointError(msg)


def checkpoint_kind(path: Path) -> str:
    """'dcp' (sharded checkpoint folder), 'export' (dualmind export folder) or 'ckpt' (file)."""
    if path.is_dir() and (path / DCP_META).is_file():
        return "dcp"
    if path.is_dir() and (path / "config.json").is_file():
        return "export"
    if path.is_file():
        return "ckpt"
    raise _core_error(f"core.checkpoint={path}: no such checkpoint file, sharded checkpoint "
                      "folder or export folder (train one with recipe=core_mini first)")


def core_checkpoint_meta(path: str | Path, expect_lexicon: str | None = None) -> dict:
    """The dualmind metadata of a core checkpoint, without reading its tensors."""
    from dualmind.checkpoint.meta import LexiconMismatchError, check_lexicon, checkpoint_metadata

    path = Path(path)
    kind = checkpoint_kind(path)
    try:
        if kind == "export":
            from dualmind.checkpoint.export import read_export_config

            meta = read_export_config(path)
        else:
            file = path / DCP_META if kind == "dcp" else path
            meta = checkpoint_metadata(torch.load(file, map_location="cpu", weights_only=True,
                                                  mmap=kind == "ckpt"))
        check_lexicon(meta, expect_lexicon, where=f"core checkpoint {path}")
    except LexiconMismatchError as err:
        raise _core_error(str(err)) from err
    except Exception as err:  # noqa: BLE001 - reported with the path
        raise _core_error(f"core.checkpoint={path}: not a readable dualmind checkpoint "
                          f"({err})") from err
    return meta


def local_slices(t: torch.Tensor) -> tuple[slice, ...] | None:
    """The index of this rank's shard in the full tensor; None for a plain (unsharded) tensor."""
    from torch.distributed.tensor import DTensor

    if not isinstance(t, DTensor):
        return None
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    shape, offset = compute_local_shape_and_global_offset(t.shape, t.device_mesh, t.placements)
    return tuple(slice(o, o + n) for o, n in zip(offset, shape, strict=True))


def fill_shards(module: nn.Module, read: Callable[[str, tuple[slice, ...] | None], torch.Tensor],
                names: set[str], where: str) -> None:
    """Copy into every tensor of ``module.state_dict()`` the part this rank holds, as returned by
    ``read(name, slices)``; ``names`` are the source's keys (checked both ways, strictly)."""
    targets = module.state_dict(keep_vars=True)
    missing = sorted(set(targets) - names)
    unexpected = sorted(names - set(targets))
    if missing or unexpected:
        raise _core_error(f"{where} does not fit cfg.model: missing {missing[:6]}, unexpected "
                          f"{unexpected[:6]} (set the model to the core's shape)")
    with torch.no_grad():
        for name, target in targets.items():
            slices = local_slices(target)
            local = target.to_local() if slices is not None else target
            part = read(name, slices)
            if tuple(part.shape) != tuple(local.shape):
                raise _core_error(f"{where}: {name} has shape {tuple(part.shape)} for this rank, "
                                  f"the model wants {tuple(local.shape)} (a core of another shape)")
            local.copy_(part)


def _load_export(module: nn.Module, path: Path) -> None:
    from safetensors import safe_open

    from dualmind.checkpoint.export import read_export_config

    entry = read_export_config(path)["components"].get("core")
    if entry is None:
        raise _core_error(f"core.checkpoint={path}: the export holds no core")
    with safe_open(str(path / entry["file"]), framework="pt") as f:
        aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
        keys = set(f.keys())

        def read(name: str, slices):
            src = f.get_slice(aliases.get(name, name))
            return src[slices] if slices is not None else src[:]

        fill_shards(module, read, keys | set(aliases), f"core export {path}")


def _load_ckpt(module: nn.Module, path: Path) -> None:
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    state = {k[len("core."):]: v for k, v in ckpt.get("state_dict", {}).items()
             if k.startswith("core.")}
    if not state:
        raise _core_error(f"core.checkpoint={path}: holds no core weights")

    def read(name: str, slices):
        full = state[name]
        return full[slices] if slices is not None else full

    fill_shards(module, read, set(state), f"core checkpoint {path}")


def _load_dcp(module: nn.Module, path: Path) -> None:
    """DCP reads every rank's shards (and reshards across world sizes) itself: hand it the
    module's sharded state dict under the keys Lightning saved it with (state_dict.core.*)."""
    import warnings

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = {f"core.{k}": v for k, v in get_model_state_dict(module).items()}
    single = not torch.distributed.is_initialized()  # an unsharded core in one process
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"torch\.distributed is disabled")
            dcp.load({"state_dict": state}, checkpoint_id=str(path), no_dist=single)
    except Exception as err:  # noqa: BLE001 - reported with the path
        raise _core_error(f"core.checkpoint={path}: cannot load the core's shards from this "
                          f"sharded checkpoint ({str(err)[:400]})") from err


def load_core_shards(core: nn.Module, path: str | Path) -> None:
    """Fill a materialised (possibly FSDP2-sharded) core from its checkpoint, rank-locally."""
    path = Path(path)
    {"dcp": _load_dcp, "export": _load_export, "ckpt": _load_ckpt}[checkpoint_kind(path)](
        core, path)


class _GatheredOneByOne(Mapping):
    """A sharded module's state dict whose values are gathered whole only when read."""

    def __init__(self, module: nn.Module):
        self.state = module.state_dict()

    def __getitem__(self, name: str) -> torch.Tensor:
        t = self.state[name]
        return t.full_tensor() if hasattr(t, "full_tensor") else t

    def __iter__(self) -> Iterator[str]:
        return iter(self.state)

    def __len__(self) -> int:
        return len(self.state)


def sharded_fingerprint(module: nn.Module) -> str:
    """dualmind.model.fingerprint.weights_fingerprint of a sharded module's full weights, the
    same value its unsharded twin gives. A collective (every rank calls it, each gathers and
    hashes one whole tensor at a time); at 70B that is the time to hash the weights once."""
    from dualmind.model.fingerprint import weights_fingerprint

    return weights_fingerprint(_GatheredOneByOne(module))


def load_frozen_core_any(core: nn.Module, path: str | Path,
                         expect_lexicon: str | None = None) -> dict:
    """stage=align without sharding: dualmind.checkpoint.frozen_core.load_frozen_core, which reads
    .ckpt files and export folders, plus the sharded checkpoint folders of fsdp2 core runs (read
    into the plain core through DCP in this one process). Returns the metadata with
    core_fingerprint."""
    from dualmind.checkpoint.frozen_core import core_fingerprint, freeze, load_frozen_core

    folder = Path(path)
    if not (folder.is_dir() and (folder / DCP_META).is_file()):
        return load_frozen_core(core, path, expect_lexicon)
    meta = core_checkpoint_meta(path, expect_lexicon)
    load_core_shards(core, path)
    freeze(core)
    return dict(meta, core_fingerprint=core_fingerprint(core))
