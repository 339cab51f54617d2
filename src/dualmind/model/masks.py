"""Which core states each text token may cross-attend to, and where it points.

Built from explicit ids, never from offsets:

    text side  [B,T]  span   unit index (within its scene) of the token the position predicts;
                             -1 = before any unit
                      scene  scene id (larger = later in the document)
                      doc    document id (negative = padding: sees nothing)
    core side  [B,S]  scene, doc as above; unit = index of the state within its scene
                      (default: its position within the run of equal (doc, scene) ids)

The pointer of a position is the unit of its *input* token — the span of the position before it
in the same scene, -1 at a scene's first position: what generation knows, having produced that
token. The span of the token a position predicts is never used to decide what it reads: a
visible set that grew with the predicted token's unit would announce a unit boundary before the
token is coded, and the code length would not be a valid code (``tests/test_masks.py`` changes
token t and checks that rows <= t stay the same, for every mode).

Modes
    render   a token sees every core state of its own scene and of the earlier scenes of its
             document: the decoder re-tells a scene the core has finished reading.
    stream   a token sees the core states of earlier scenes of its document and, in its own
             scene, those of units up to its pointer + 1 (the unit it is at and the next one):
             text can be produced while the core is still reading.
    pointer  a token sees the units of its own scene from pointer + lo to pointer + hi
             (``window``, default (-1, 2)); with ``cross_rope`` the decoder also sees each
             unit's offset from the pointer.

Why it cannot leak through self-attention: the decoder's self-attention is causal within a
document, so a token also "sees" whatever its earlier tokens saw. Both modes are leak-free only if
visibility grows along the text, which holds when (scene, span) never decreases within a document
run; :func:`cross_attention_mask` checks exactly that (and that a document id does not reappear
after another one in a row, which would join two documents in the mask but not in self-attention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dualmind.model.attention import positions_in_document, segment_ids

# one list of modes, one default window and one check of it, in the torch-free config
from dualmind.model.decoder_config import DEFAULT_POINTER_WINDOW as DEFAULT_WINDOW
from dualmind.model.decoder_config import MASK_MODES, check_window


class AlignmentError(ValueError):
    """Span/scene/document ids that cannot give a leak-free mask; the message names row, index."""


def cross_attention_mask(mode: str, text_span: torch.Tensor, text_scene: torch.Tensor,
                         text_doc: torch.Tensor, core_scene: torch.Tensor, core_doc: torch.Tensor,
                         core_unit: torch.Tensor | None = None, check: bool = True,
                         window: tuple[int, int] = DEFAULT_WINDOW) -> torch.Tensor:
    """bool [B,T,S]: True where text token t may attend to core state s (see module doc)."""
    if mode not in MASK_MODES:
        raise ValueError(f"cross-attention mask mode must be one of {MASK_MODES}, got {mode!r}")
    _check_shapes(text_span, text_scene, text_doc, core_scene, core_doc, core_unit)
    if check:
        check_alignment(text_span, text_scene, text_doc, core_doc)
    t_doc, c_doc = text_doc[:, :, None], core_doc[:, None, :]
    t_scene, c_scene = text_scene[:, :, None], core_scene[:, None, :]
    visible = (t_doc == c_doc) & (t_doc >= 0)
    if mode == "render":
        return visible & (c_scene <= t_scene)
    if core_unit is None:
        core_unit = units_in_scene(core_scene, core_doc)
    offset = core_unit[:, None, :] - pointers(text_span, text_scene, text_doc)[:, :, None]
    same_scene = visible & (c_scene == t_scene)
    if mode == "stream":
        return visible & ((c_scene < t_scene) | (same_scene & (offset <= 1)))
    lo, hi = check_window(window)
    return same_scene & (offset >= lo) & (offset <= hi)


def pointers(text_span: torch.Tensor, text_scene: torch.Tensor, text_doc: torch.Tensor
             ) -> torch.Tensor:
    """[B,T] the pointer of each position: the span of the position before it when that one is
    in the same (doc, scene), else -1. Depends only on the text before each position."""
    prev_span = torch.full_like(text_span, -1)
    prev_span[:, 1:] = text_span[:, :-1]
    same = torch.zeros_like(text_span, dtype=torch.bool)
    same[:, 1:] = (text_scene[:, 1:] == text_scene[:, :-1]) & (text_doc[:, 1:] == text_doc[:, :-1])
    return torch.where(same & (text_doc >= 0), prev_span, torch.full_like(text_span, -1))


def cross_positions(alignment: Alignment) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary positions for cross-attention: (queries [B,T], keys [B,S]). A key's position is its
    index in the row; a query's is the row index its pointer unit has (its scene's first unit +
    pointer), so a score sees exactly the offset between a unit and the pointer."""
    core_scene, core_doc = alignment.core_scene, alignment.core_doc
    B, S = core_scene.shape
    keys = torch.arange(S, device=core_scene.device).expand(B, S)
    unit = (alignment.core_unit if alignment.core_unit is not None
            else units_in_scene(core_scene, core_doc))
    scene_start = keys - unit  # row index of each state's scene's first unit
    # text position -> the start of the core run with its (doc, scene): scene ordinals are unique
    # per row (pack_alignment numbers them 0.. per row), so look them up by scene id
    n_scenes = int(core_scene.max()) + 2 if core_scene.numel() else 1
    start_of = torch.zeros(B, n_scenes, dtype=torch.int64, device=core_scene.device)
    real = core_scene >= 0
    start_of.scatter_(1, torch.where(real, core_scene, n_scenes - 1),
                      torch.where(real, scene_start, 0))
    t_scene = alignment.text_scene.clamp(min=0, max=n_scenes - 1)
    queries = start_of.gather(1, t_scene) + pointers(alignment.text_span, alignment.text_scene,
                                                    alignment.text_doc)
    return torch.where(alignment.text_doc >= 0, queries, torch.zeros_like(queries)), keys


def units_in_scene(core_scene: torch.Tensor, core_doc: torch.Tensor) -> torch.Tensor:
    """[B,S] index of each core state within its run of equal (doc, scene) ids."""
    changed = torch.zeros_like(core_scene, dtype=torch.bool)
    changed[:, 1:] = ((core_scene[:, 1:] != core_scene[:, :-1])
                      | (core_doc[:, 1:] != core_doc[:, :-1]))
    return positions_in_document(changed.cumsum(dim=1))


def check_alignment(text_span: torch.Tensor, text_scene: torch.Tensor, text_doc: torch.Tensor,
                    core_doc: torch.Tensor) -> None:
    """Raise :class:`AlignmentError` unless visibility can only grow along each document's text."""
    if bool((text_span < -1).any()):
        b, t = (text_span < -1).nonzero()[0].tolist()
        raise AlignmentError(f"text span id {int(text_span[b, t])} at row {b}, token {t}: "
                             "span ids are unit indices >= 0, or -1 before the first unit")
    for side, doc in (("text", text_doc), ("core", core_doc)):
        _check_document_runs(side, doc)
    same_doc = text_doc[:, 1:] == text_doc[:, :-1]
    scene_back = text_scene[:, 1:] < text_scene[:, :-1]
    span_back = (text_scene[:, 1:] == text_scene[:, :-1]) & (text_span[:, 1:] < text_span[:, :-1])
    bad = same_doc & (scene_back | span_back)
    if bool(bad.any()):
        b, t = bad.nonzero()[0].tolist()
        raise AlignmentError(
            f"text token {t + 1} of row {b} goes back from (scene {int(text_scene[b, t])}, span "
            f"{int(text_span[b, t])}) to (scene {int(text_scene[b, t + 1])}, span "
            f"{int(text_span[b, t + 1])}) within document {int(text_doc[b, t])}: earlier tokens "
            "would pass later units' states on through causal self-attention")


def _check_document_runs(side: str, doc: torch.Tensor) -> None:
    runs = segment_ids(doc)
    for b in range(doc.shape[0]):
        ids = doc[b][doc[b] >= 0]
        n_runs = len(torch.unique(runs[b][doc[b] >= 0]))
        if len(torch.unique(ids)) != n_runs:
            raise AlignmentError(f"{side} row {b}: a document id reappears after another document "
                                 f"(ids {doc[b].tolist()[:32]}...); renumber documents per run")


def _check_shapes(text_span, text_scene, text_doc, core_scene, core_doc, core_unit) -> None:
    if not text_span.shape == text_scene.shape == text_doc.shape or text_span.dim() != 2:
        raise ValueError(f"text span/scene/doc ids must share one [B,T] shape, got "
                         f"{tuple(text_span.shape)}, {tuple(text_scene.shape)}, "
                         f"{tuple(text_doc.shape)}")
    core_shapes = [core_scene.shape, core_doc.shape]
    if core_unit is not None:
        core_shapes.append(core_unit.shape)
    if any(s != core_scene.shape for s in core_shapes) or core_scene.dim() != 2:
        raise ValueError(f"core scene/doc/unit ids must share one [B,S] shape, got "
                         f"{[tuple(s) for s in core_shapes]}")
    if core_scene.shape[0] != text_span.shape[0]:
        raise ValueError(f"text ids have {text_span.shape[0]} rows, core ids {core_scene.shape[0]}")


@dataclass
class Alignment:
    """The ids of one batch on both sides; ``cross_mask(mode)`` turns them into the mask."""

    text_span: torch.Tensor  # [B,T] long
    text_scene: torch.Tensor  # [B,T]
    text_doc: torch.Tensor  # [B,T]
    core_scene: torch.Tensor  # [B,S]
    core_doc: torch.Tensor  # [B,S]
    core_unit: torch.Tensor | None = None  # [B,S]; None = index within the scene's run

    def cross_mask(self, mode: str, check: bool = True,
                   window: tuple[int, int] = DEFAULT_WINDOW) -> torch.Tensor:
        return cross_attention_mask(mode, self.text_span, self.text_scene, self.text_doc,
                                    self.core_scene, self.core_doc, self.core_unit, check, window)

    def core_scene_groups(self) -> torch.Tensor:
        """[B,S] one id per (document, scene) of the core side: which states form one scene."""
        return self.core_doc * (int(self.core_scene.max()) + 2) + self.core_scene

    def pointers(self) -> torch.Tensor:
        """[B,T] unit index (in its scene) each position points at; see :func:`pointers`."""
        return pointers(self.text_span, self.text_scene, self.text_doc)

    def to(self, device: torch.device | str) -> Alignment:
        moved = {k: (v.to(device) if v is not None else None) for k, v in vars(self).items()}
        return Alignment(**moved)


@dataclass
class SceneSpans:
    """One scene as the shards store it: its unit count, span id per text token, document."""

    n_units: int
    span: Sequence[int]
    doc: int


def pack_alignment(rows: Sequence[Sequence[SceneSpans]]) -> Alignment:
    """Lay each row's scenes back to back on both sides (core units, then text tokens, in the
    same scene order) and pad rows to the longest with doc -1 (padding sees and is seen by
    nothing). Scene ids are the scene's ordinal in its row; the caller packs core ids and text
    ids in the same order."""
    packed = []
    for row in rows:
        text_span, text_scene, text_doc, core_scene, core_doc = [], [], [], [], []
        for ordinal, scene in enumerate(row):
            spans = [int(s) for s in scene.span]
            if any(s >= scene.n_units for s in spans):
                raise AlignmentError(f"scene {ordinal} has {scene.n_units} units but a text token "
                                     f"with span {max(spans)}")
            text_span += spans
            text_scene += [ordinal] * len(spans)
            text_doc += [scene.doc] * len(spans)
            core_scene += [ordinal] * scene.n_units
            core_doc += [scene.doc] * scene.n_units
        packed.append((text_span, text_scene, text_doc, core_scene, core_doc))
    T = max(len(p[0]) for p in packed)
    S = max(len(p[3]) for p in packed)

    def column(i: int, length: int, pad: int) -> torch.Tensor:
        return torch.tensor([p[i] + [pad] * (length - len(p[i])) for p in packed],
                            dtype=torch.int64)

    return Alignment(text_span=column(0, T, -1), text_scene=column(1, T, -1),
                     text_doc=column(2, T, -1), core_scene=column(3, S, -1),
                     core_doc=column(4, S, -1))


def scene_rows(mode: str, pointer: torch.Tensor, n_units: int,
               window: tuple[int, int] = DEFAULT_WINDOW) -> torch.Tensor:
    """Mask rows bool [B,n,S] of positions reading one scene of ``n_units`` states (a rendered
    scene, a thought), given each position's pointer [B,n] (-1: nothing produced yet): what
    :func:`cross_attention_mask` gives those positions, for generation."""
    if mode not in MASK_MODES:
        raise ValueError(f"cross-attention mask mode must be one of {MASK_MODES}, got {mode!r}")
    unit = torch.arange(n_units, device=pointer.device)
    offset = unit[None, None, :] - pointer[:, :, None]
    if mode == "render":
        return torch.ones_like(offset, dtype=torch.bool)
    if mode == "stream":
        return offset <= 1
    lo, hi = check_window(window)
    return (offset >= lo) & (offset <= hi)
