"""Stage align: the language decoder learns to read a frozen hyper-core.

Isolation is enforced, not promised: the core is loaded from its checkpoint and frozen
(:mod:`dualmind.checkpoint.frozen_core`), it runs under ``torch.no_grad`` here and its states are
detached before the decoder sees them. Only the decoder's parameters reach the optimizer
(:meth:`dualmind.train.module.DualMindModule.trainable_parameters`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from dualmind.model.core import HyperCore
from dualmind.model.loss import IGNORE


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
