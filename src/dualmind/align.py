"""Stage align: the language decoder learns to read a frozen hyper-core.

Isolation is enforced here, not promised: the core is loaded from its checkpoint (a Lightning
``.ckpt`` of stage core, or a ``dualmind export`` folder), every parameter gets
``requires_grad=False``, it stays in eval mode, runs under ``torch.no_grad`` and its states are
detached before the decoder sees them. Only the decoder's parameters reach the optimizer
(:meth:`dualmind.lit.DualMindModule.trainable_parameters`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from dualmind.data.align_datamodule import IGNORE
from dualmind.model.core import HyperCore


class CoreCheckpointError(ValueError):
    """core.checkpoint missing, unreadable, or made for another core shape or lexicon."""


def core_state_from(path: str | Path, expect_lexicon: str | None = None) -> tuple[dict, dict]:
    """(core state dict, metadata) of a stage-core checkpoint or export folder."""
    from dualmind.lit import LexiconMismatchError, check_lexicon, checkpoint_metadata

    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        from dualmind.export import load_component_state, read_export_config

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
    """Load the checkpoint's weights into `core`, then freeze it; return the metadata."""
    state, meta = core_state_from(path, expect_lexicon)
    try:
        core.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CoreCheckpointError(f"core.checkpoint={path} does not fit cfg.model (set the "
                                  f"model to the core's shape, e.g. model={meta.get('model')}): "
                                  f"{str(err)[:400]}") from err
    freeze(core)
    return meta


def freeze(core: torch.nn.Module) -> None:
    core.requires_grad_(False)
    core.eval()


def core_doc_ids(core_doc: torch.Tensor) -> torch.Tensor:
    """The alignment's core doc ids (padding -1) as the core wants them: padding becomes one
    more document of its own, so real positions never attend to it."""
    pad = core_doc < 0
    if not bool(pad.any()):
        return core_doc
    return torch.where(pad, core_doc.max() + 1, core_doc)


def core_states(core: HyperCore, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden [B,S,D] detached, logits [B,S,V]) of the frozen core over the batch's core ids."""
    alignment = batch["alignment"]
    with torch.no_grad():
        out = core(batch["core_ids"], doc_ids=core_doc_ids(alignment.core_doc))
    return out.hidden.detach(), out.logits


def decoder_nll(decoder: torch.nn.Module, states: torch.Tensor, batch: dict,
                mask_mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed NLL in nats over the text targets, number of targets)."""
    alignment = batch["alignment"].to(states.device)
    logits = decoder(batch["text_ids"], states, cross_mask=alignment, mask_mode=mask_mode)
    targets = batch["targets"]
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                          ignore_index=IGNORE, reduction="sum")
    return nll, (targets != IGNORE).sum()
