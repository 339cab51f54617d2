"""`dualmind export`: a training checkpoint -> safetensors + config JSON, for sharing.

    dualmind export runs/core_mini/checkpoints/last.ckpt --out runs/core_mini/export
    dualmind export runs/core_mini            # a run folder: uses its checkpoints/last.ckpt

Writes OUT/<component>.safetensors (core, and the decoder of align checkpoints) and
OUT/config.json with the model config, the lexicon fingerprint and the stage. A sharded
checkpoint folder of an fsdp2 run is consolidated tensor by tensor
(dualmind.checkpoint.export_sharded), never whole in memory. No pickle anywhere: the checkpoint is
read with `torch.load(weights_only=True)` and the export is plain tensors + JSON. Tensors that share
storage (tied embeddings) are stored once and recorded as aliases.

    from dualmind.checkpoint.export import load_core
    core, meta = load_core("runs/core_mini/export", expect_lexicon=lexicon.fingerprint)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

EXPORT_FORMAT = "dualmind-export"
EXPORT_VERSION = 1
# Prefixes of the LightningModule's state dict that are exported (decoder: align checkpoints).
COMPONENTS = ("core", "decoder")


class ExportError(ValueError):
    """Bad checkpoint/export input; the message names the path."""


def _resolve_checkpoint(path: Path) -> Path:
    from dualmind.checkpoint.export_sharded import is_sharded_checkpoint

    if is_sharded_checkpoint(path):  # an fsdp2 run's DCP folder
        return path
    if path.is_dir():
        candidates = [path / "checkpoints" / "last.ckpt", path / "last.ckpt"]
        for c in candidates:
            if c.is_file() or is_sharded_checkpoint(c):
                return c
        raise ExportError(f"{path}: a folder without checkpoints/last.ckpt; pass a .ckpt file "
                          "or a sharded checkpoint folder")
    if not path.is_file():
        raise ExportError(f"{path}: no such checkpoint")
    return path


def unique_tensors(tensors: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Keep one copy of tensors that share storage (a tied head); return (unique tensors, detached,
    contiguous and on the CPU as safetensors writes them, alias -> kept key). Every writer of an
    export folder (this command, a bridge's model/, a merged adapter) stores ties this way."""
    seen: dict[tuple, str] = {}
    unique, aliases = {}, {}
    for key, t in tensors.items():
        ident = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if t.numel() and ident in seen:
            aliases[key] = seen[ident]
            continue
        seen[ident] = key
        unique[key] = t.detach().contiguous().cpu()
    return unique, aliases


def export_checkpoint(ckpt: str | Path, out: str | Path, expect_lexicon: str | None = None) -> Path:
    """Write OUT/config.json and OUT/<component>.safetensors from a Lightning checkpoint."""
    import torch
    from safetensors.torch import save_file

    from dualmind.checkpoint.export_sharded import is_sharded_checkpoint
    from dualmind.checkpoint.meta import LexiconMismatchError, check_lexicon, checkpoint_metadata

    ckpt = _resolve_checkpoint(Path(ckpt))
    if is_sharded_checkpoint(ckpt):
        return _export_sharded(ckpt, Path(out), expect_lexicon)
    try:
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - reported with the path
        raise ExportError(f"{ckpt}: cannot read as a checkpoint without pickle ({err})") from err
    try:
        meta = checkpoint_metadata(checkpoint)
        check_lexicon(meta, expect_lexicon, where=f"checkpoint {ckpt}")
    except (ValueError, LexiconMismatchError) as err:
        raise ExportError(f"{ckpt}: {err}") from err
    state = checkpoint["state_dict"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for component in COMPONENTS:
        prefix = component + "."
        tensors = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not tensors:
            continue
        unique, aliases = unique_tensors(tensors)
        name = f"{component}.safetensors"
        save_file(unique, str(out / name), metadata={"aliases": json.dumps(aliases)})
        files[component] = {"file": name, "tensors": len(unique), "aliases": aliases}
    if "core" not in files:
        raise ExportError(f"{ckpt}: no core weights in the checkpoint's state_dict")
    return _write_config(out, ckpt, checkpoint, meta, files)


def _export_sharded(ckpt: Path, out: Path, expect_lexicon: str | None) -> Path:
    """A DCP folder: consolidated tensor by tensor (dualmind.checkpoint.export_sharded), never
    whole."""
    from dualmind.checkpoint.export_sharded import export_sharded
    from dualmind.checkpoint.meta import LexiconMismatchError, check_lexicon, checkpoint_metadata

    try:
        meta = checkpoint_metadata(torch_load_meta(ckpt))
        check_lexicon(meta, expect_lexicon, where=f"checkpoint {ckpt}")
        files, checkpoint = export_sharded(ckpt, out, COMPONENTS)
    except (ValueError, LexiconMismatchError) as err:
        raise ExportError(f"{ckpt}: {err}") from err
    except Exception as err:  # noqa: BLE001 - DCP read errors, reported with the path
        raise ExportError(f"{ckpt}: cannot consolidate this sharded checkpoint ({err})") from err
    if "core" not in files:
        raise ExportError(f"{ckpt}: no core weights (state_dict.core.*) in the sharded checkpoint")
    return _write_config(out, ckpt, checkpoint, meta, files)


def torch_load_meta(ckpt: Path) -> dict:
    import torch

    return torch.load(ckpt / "meta.pt", map_location="cpu", weights_only=True)


def _write_config(out: Path, ckpt: Path, checkpoint: dict, meta: dict, files: dict) -> Path:
    import dualmind
    from dualmind.checkpoint.export_digests import record_digests

    record_digests(out, files)  # per-tensor digests: an align start-up verifies a sample of them

    config = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "dualmind_version": dualmind.__version__,
        "stage": meta.get("stage"),
        "lexicon_fingerprint": meta.get("lexicon_fingerprint"),
        "model": meta["model"],
        "decoder": meta.get("decoder"),  # the decoder's shape (align checkpoints), else None
        "core_fingerprint": meta.get("core_fingerprint"), "context": meta.get("context"),  # eval
        "components": files,
        "global_step": checkpoint.get("global_step"),
        "flops_total": meta.get("flops_total"),
        "source_checkpoint": str(ckpt),
    }
    # written last and atomically: a folder with a config.json is a finished export, and a crash
    # here leaves the previous config.json (or none) rather than a truncated one
    staged = out / "config.json.tmp"
    staged.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(staged, out / "config.json")
    return out


def read_export_config(path: str | Path) -> dict:
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ExportError(f"{path}: no config.json (not a `dualmind export` folder)")
    config = json.loads(cfg_path.read_text())
    if config.get("format") != EXPORT_FORMAT:
        raise ExportError(
            f"{cfg_path}: format {config.get('format')!r}, expected {EXPORT_FORMAT!r}"
        )
    if config.get("format_version", 0) > EXPORT_VERSION:
        raise ExportError(
            f"{cfg_path}: format_version {config['format_version']} is newer than this "
            f"dualmind reads ({EXPORT_VERSION}); upgrade dualmind"
        )
    return config


def load_component_state(path: str | Path, component: str) -> dict:
    """The state dict of one exported component, aliases (tied weights) restored."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    config = read_export_config(path)
    entry = config["components"].get(component)
    if entry is None:
        raise ExportError(
            f"{path}: no {component!r} in this export (has {sorted(config['components'])})"
        )
    file = path / entry["file"]
    state = load_file(str(file))
    with safe_open(str(file), framework="pt") as f:
        aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    for alias, key in aliases.items():
        state[alias] = state[key]
    return state


def load_core(path: str | Path, expect_lexicon: str | None = None, device: str = "cpu"):
    """Rebuild the HyperCore of an export folder; returns (core, config dict)."""
    from dualmind.checkpoint.meta import LexiconMismatchError, check_lexicon
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    path = Path(path)
    config = read_export_config(path)
    try:
        check_lexicon(config, expect_lexicon, where=f"export {path}")
    except LexiconMismatchError as err:
        raise ExportError(str(err)) from err
    core = HyperCore(CoreConfig.from_dict(config["model"], source=path / "config.json"))
    state = load_component_state(path, "core")
    core.load_state_dict(state, strict=True)
    return core.to(device).eval(), config
