"""The frozen core of stage align, read from disk: a Lightning ``.ckpt`` of stage core or a
``dualmind export`` folder is loaded, checked against the lexicon, and frozen (every parameter
``requires_grad=False``, eval mode). The fingerprint of its weights pairs a decoder with its core.

Knows no LightningModule: training (train/), evaluation, adapters and the sharded load read cores
through it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dualmind.model.core import HyperCore


class CoreCheckpointError(ValueError):
    """core.checkpoint missing, unreadable, or made for another core shape or lexicon."""


class CorePairingError(ValueError):
    """A decoder put beside a core whose weights are not the ones it was aligned to."""


def core_fingerprint(core: torch.nn.Module) -> str:
    """The frozen core's identity: :func:`dualmind.model.fingerprint.weights_fingerprint` of its
    state dict. Align checkpoints and exports record it as ``core_fingerprint``."""
    from dualmind.model.fingerprint import weights_fingerprint

    return weights_fingerprint(core.state_dict())


def check_core_pairing(expected: str | None, found: str | None, where: str, core: str) -> None:
    """Refuse a decoder (recorded at `where`, aligned to core `expected`) beside core weights
    with fingerprint `found` (from `core`). None on either side: not known, nothing to check."""
    if expected is not None and found is not None and expected != found:
        raise CorePairingError(
            f"{where}: the decoder was aligned to the core with weights fingerprint {expected}, "
            f"but the core given ({core}) has fingerprint {found}; a decoder reads only the "
            "states of its own core — pass that core, or align a new decoder to this one "
            "(recipe=decoder_align core.checkpoint=...)")


def core_state_from(path: str | Path, expect_lexicon: str | None = None) -> tuple[dict, dict]:
    """(core state dict, metadata) of a stage-core checkpoint or export folder."""
    from dualmind.checkpoint.meta import LexiconMismatchError, check_lexicon, checkpoint_metadata

    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        from dualmind.checkpoint.export import load_component_state, read_export_config

        meta = read_export_config(path)
        state = load_component_state(path, "core")
    elif path.is_file():
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            meta = checkpoint_metadata(ckpt)
        except Exception as err:  # noqa: BLE001 - reported with the path
            raise CoreCheckpointError(f"core.checkpoint={path}: not a readable dualmind "
                                      f"checkpoint ({err})") from err
        state = {k[len("core."):]: v for k, v in ckpt["state_dict"].items()
                 if k.startswith("core.")}
    else:
        raise CoreCheckpointError(f"core.checkpoint={path}: no such checkpoint file or export "
                                  "folder (train one with recipe=core_mini first)")
    try:
        check_lexicon(meta, expect_lexicon, where=f"core checkpoint {path}")
    except LexiconMismatchError as err:
        raise CoreCheckpointError(str(err)) from err
    if not state:
        raise CoreCheckpointError(f"core.checkpoint={path}: holds no core weights")
    return state, meta


def load_frozen_core(core: HyperCore, path: str | Path, expect_lexicon: str | None = None) -> dict:
    """Load the checkpoint's weights into `core`, then freeze it; return the checkpoint's
    metadata with ``core_fingerprint`` set to the fingerprint of the weights now in `core`."""
    state, meta = core_state_from(path, expect_lexicon)
    try:
        core.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CoreCheckpointError(f"core.checkpoint={path} does not fit cfg.model (set the "
                                  f"model to the core's shape, e.g. model={meta.get('model')}): "
                                  f"{str(err)[:400]}") from err
    freeze(core)
    return dict(meta, core_fingerprint=core_fingerprint(core))


def freeze(core: torch.nn.Module) -> None:
    core.requires_grad_(False)
    core.eval()
