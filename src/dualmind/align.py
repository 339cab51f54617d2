"""Stage align: the language decoder learns to read a frozen hyper-core.

Isolation is enforced here, not promised: the core is loaded from its checkpoint (a Lightning
``.ckpt`` of stage core, or a ``dualmind export`` folder), every parameter gets
``requires_grad=False``, it stays in eval mode, runs under ``torch.no_grad`` and its states are
detached before the decoder sees them. Only the decoder's parameters reach the optimizer
(:meth:`dualmind.lit.DualMindModule.trainable_parameters`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from dualmind.data.align_datamodule import IGNORE
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


def core_doc_ids(core_doc: torch.Tensor) -> torch.Tensor:
    """The alignment's core doc ids (padding -1) as the core wants them: padding becomes one
    more document of its own, so real positions never attend to it."""
    pad = core_doc < 0
    if not bool(pad.any()):
        return core_doc
    return torch.where(pad, core_doc.max() + 1, core_doc)


def core_states(core: HyperCore, batch: dict, read: str = "final") -> torch.Tensor:
    """What the decoder reads of the frozen core over the batch's core ids (detached):
    :func:`dualmind.model.core_reading.read_core` with ``read`` (the decoder's ``core_read``),
    scenes for ``centred`` from the batch's alignment. The output head is skipped: the decoder
    reads states only, and the head is a large share of a small core's forward (core_mini: 4.2M
    of its 8.9M matmul weights) and a [B,S,V] tensor."""
    from dualmind.model.core_reading import read_core

    alignment = batch["alignment"]
    return read_core(core, batch["core_ids"], read, doc_ids=core_doc_ids(alignment.core_doc),
                     scene_ids=alignment.core_scene_groups())


def shuffled(batch_states: torch.Tensor, core_ids: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The control: every row reads the next row's core states and unit ids (rolled by one along
    the batch), its own text and mask unchanged. What the decoder then still codes well, it did
    not take from its own scene's core."""
    if batch_states.shape[0] < 2:
        raise ValueError("the shuffled-states control needs batches of at least 2 rows")
    return batch_states.roll(1, dims=0), core_ids.roll(1, dims=0)


class DecoderCode(NamedTuple):
    """The decoder's code length of a batch: ``nll`` summed nats over the text targets (the
    pointer's nats included), ``targets`` how many, ``pointer_nll`` the boundary head's share (0
    without one: the alignment is then side information the code does not pay for)."""

    nll: torch.Tensor
    targets: torch.Tensor
    pointer_nll: torch.Tensor


def decoder_nll(decoder: torch.nn.Module, states: torch.Tensor, batch: dict,
                mask_mode: str | None = None, core_ids: torch.Tensor | None = None
                ) -> DecoderCode:
    """The decoder's code length of the batch's text. mask_mode: default the decoder's own;
    core_ids: default the batch's (pass the control's rolled ones with it). A decoder with a
    boundary head also codes each token's advance through the hyperphrase, read from the
    alignment, before the token (the control keeps the row's own alignment: it changes what is
    read, not where)."""
    alignment = batch["alignment"].to(states.device)
    ids = batch["core_ids"] if core_ids is None else core_ids
    logits, hidden = decoder(batch["text_ids"], states, cross_mask=alignment, mask_mode=mask_mode,
                             core_ids=ids.to(states.device), return_hidden=True)
    targets = batch["targets"]
    real = targets != IGNORE
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                          ignore_index=IGNORE, reduction="sum")
    pointer_nll = nll.new_zeros(())
    if getattr(decoder, "boundary", None) is not None:
        from dualmind.model.boundary import advance_targets, tokens_said_at_pointer

        pointer = alignment.pointers()
        advance, _ = advance_targets(alignment.text_span, pointer, decoder.cfg.max_advance)
        said = tokens_said_at_pointer(alignment.text_span, alignment.text_scene,
                                      alignment.text_doc)
        unit = None
        if decoder.cfg.unit_lengths:  # the pointer's core id: its row is its scene's start + it
            from dualmind.model.masks import cross_positions

            row = cross_positions(alignment)[0].clamp(0, ids.shape[1] - 1)
            unit = ids.to(states.device).gather(1, row)[real]
        scores = decoder.advance_logits(hidden[real], pointer[real], said[real], unit)
        pointer_nll = F.cross_entropy(scores.float(), advance[real], reduction="sum")
    return DecoderCode(nll + pointer_nll, real.sum(), pointer_nll)


def align_step_flops(core_cfg, decoder_cfg, batch: dict) -> float:
    """Model FLOPs of one alignment step (torchtitan's convention, padding not counted): the
    decoder trains on the batch's text targets (DecoderConfig.flops_per_token, training) and the
    frozen core runs forward over its real units up to its hidden states (CoreConfig.
    flops_per_token, training=False, head=False: core_states skips the output head), attention
    charged at the batch's padded lengths: what benchmarks/equal_compute_flops.py counts for its
    budgets."""
    units = int((batch["alignment"].core_doc >= 0).sum())
    targets = int((batch["targets"] != IGNORE).sum())
    S, T = max(int(batch["core_ids"].shape[1]), 1), int(batch["text_ids"].shape[1])
    return (decoder_cfg.flops_per_token(T, S, training=True) * targets
            + core_cfg.flops_per_token(S, training=False, head=False) * units)


def row_context(cfg: dict) -> dict[str, int | None]:
    """The row a run trained on, which evaluation reuses: core units and text positions per row
    (stage core: units only; stage lm: text only). Recorded in checkpoints as meta["context"]."""
    stage, seq_len = cfg.get("stage"), int(cfg["data"]["seq_len"])
    if stage == "lm":
        return {"core": None, "text": seq_len}
    if stage == "align":
        return {"core": seq_len, "text": int(cfg["decoder"]["max_seq_len"])}
    return {"core": seq_len, "text": None}
