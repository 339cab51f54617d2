"""Fold a LoRA adapter into its core and write a `dualmind export` folder of the result.

The folder is the one `dualmind export` writes (config.json + core.safetensors, tied weights
stored once), so everything that reads exports — `dualmind eval`,
`dualmind.checkpoint.export.load_core`, stage align's core.checkpoint — reads a merged core without
knowing about adapters.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dualmind.adapters.lora import AdapterError, core_fingerprint, load_adapter, merge


def load_base_core(core_path: str | Path, expect_lexicon: str | None = None):
    """(HyperCore, metadata) of a stage-core .ckpt or a `dualmind export` folder."""
    from dualmind.checkpoint.frozen_core import CoreCheckpointError, core_state_from
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    try:
        state, meta = core_state_from(core_path, expect_lexicon)
    except CoreCheckpointError as err:
        raise AdapterError(str(err).replace("core.checkpoint=", "--core ")) from err
    core = HyperCore(CoreConfig.from_dict(meta["model"], source=str(core_path)))
    core.load_state_dict(state, strict=True)
    return core.eval(), meta


def merge_to_export(adapter_dir: str | Path, core_path: str | Path, out: str | Path) -> Path:
    """Load the core, apply the adapter (fingerprints checked), merge, export to ``out``."""
    from safetensors.torch import save_file

    import dualmind
    from dualmind.adapters.lora import read_adapter_meta
    from dualmind.checkpoint.export import EXPORT_FORMAT, EXPORT_VERSION, unique_tensors

    adapter_meta = read_adapter_meta(adapter_dir)
    core, meta = load_base_core(core_path, adapter_meta.get("lexicon_fingerprint"))
    base_fp = core_fingerprint(core)
    with torch.no_grad():
        merged = merge(load_adapter(core, adapter_dir))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # the tied head is stored once, as export does
    unique, aliases = unique_tensors(merged.state_dict())
    save_file(unique, str(out / "core.safetensors"), metadata={"aliases": json.dumps(aliases)})
    config = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "dualmind_version": dualmind.__version__,
        "stage": "lora-merged",
        "lexicon_fingerprint": meta.get("lexicon_fingerprint"),
        "model": merged.cfg.to_dict(),
        "decoder": None,
        "components": {"core": {"file": "core.safetensors", "tensors": len(unique),
                                "aliases": aliases}},
        "global_step": adapter_meta.get("global_step"),
        "flops_total": None,
        "source_checkpoint": str(core_path),
        "adapter": str(adapter_dir),
        "base_core_fingerprint": base_fp,
        "core_fingerprint": core_fingerprint(merged),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return out
