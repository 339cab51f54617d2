"""Matplotlib figures of the report, returned as PNG bytes (embedded in the HTML, no files).

Sizes are bounded by the caller's selection (a handful of layers, heads, positions and a window
of symbols), and the DPI is modest, so a figure stays tens of kilobytes whatever the model.
DejaVu Sans, matplotlib's default font, draws both Latin and Cyrillic glosses.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 80
BOUNDARY = dict(color="#d62728", linewidth=1.2)  # packing (document) boundaries


def _png(fig) -> bytes:
    """PNG bytes, quantised to a 256-colour palette: heatmaps and anti-aliased labels compress
    two to three times smaller that way, with no visible loss at this size."""
    from PIL import Image

    raw = io.BytesIO()
    fig.savefig(raw, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    raw.seek(0)
    out = io.BytesIO()
    Image.open(raw).convert("RGB").quantize(colors=256).save(out, format="PNG", optimize=True)
    return out.getvalue()


_VISIBLE = {"\n": "⏎", "\t": "⇥", "\r": "⏎"}


def _short(label: str, width: int = 10) -> str:
    """A tick label: control characters made visible (fonts have no glyph for them), cut."""
    label = "".join(_VISIBLE.get(c, c) if c.isprintable() or c in _VISIBLE else "·"
                    for c in label)
    label = label if len(label) <= width else label[: width - 1] + "…"
    return label.replace("$", r"\$")  # two $ in a label would start matplotlib's mathtext


def _ticks(ax, axis: str, labels: Sequence[str], max_labels: int = 48) -> None:
    """Every label when few, else every k-th (a 128-symbol axis of labels is unreadable)."""
    step = max(1, int(np.ceil(len(labels) / max_labels)))
    idx = list(range(0, len(labels), step))
    shown = [_short(labels[i]) for i in idx]
    if axis == "x":
        ax.set_xticks(idx)
        ax.set_xticklabels(shown, rotation=90, fontsize=7)
    else:
        ax.set_yticks(idx)
        ax.set_yticklabels(shown, fontsize=7)


def logit_lens(top_prob: np.ndarray, top_word: Sequence[Sequence[str]],
               layer_labels: Sequence[str], position_labels: Sequence[str]) -> bytes:
    """Heatmap layers x positions: colour = probability of the top symbol, text = its gloss."""
    L, P = top_prob.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 1.05 * P + 1.5), max(2.0, 0.42 * L + 1.2)))
    im = ax.imshow(top_prob, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(L):
        for j in range(P):
            ax.text(j, i, _short(top_word[i][j], 11), ha="center", va="center", fontsize=7,
                    color="white" if top_prob[i, j] > 0.6 else "black")
    ax.set_xticks(range(P))
    ax.set_xticklabels([_short(p, 14) for p in position_labels], rotation=45, ha="right",
                       fontsize=7)
    ax.set_yticks(range(L))
    ax.set_yticklabels(layer_labels, fontsize=8)
    ax.set_xlabel("position (input symbol)")
    ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax, fraction=0.025, pad=0.01, label="p(top symbol)")
    return _png(fig)


def attention_maps(probs: np.ndarray, heads: Sequence[int], labels: Sequence[str],
                   boundaries: Sequence[int], title: str) -> bytes:
    """One panel per head: query rows x key columns, document boundaries as red lines."""
    n = len(heads)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    T = probs.shape[-1]
    side = min(5.0, max(2.6, 0.07 * T + 1.0))
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, side * rows + 0.4), squeeze=False,
                             layout="constrained")  # room for every panel's labels
    for a, ax in enumerate(axes.flat):
        if a >= n:
            ax.axis("off")
            continue
        ax.imshow(probs[a], cmap="viridis", vmin=0.0, vmax=max(float(probs[a].max()), 1e-6),
                  interpolation="nearest")
        for b in boundaries:
            ax.axhline(b - 0.5, **BOUNDARY)
            ax.axvline(b - 0.5, **BOUNDARY)
        ax.set_title(f"head {heads[a]}", fontsize=9)
        _ticks(ax, "x", labels, max_labels=32)
        _ticks(ax, "y", labels, max_labels=32)
        if a % cols:  # the row's first panel names the queries; the others would overlap it
            ax.set_yticklabels([])
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def cross_attention(probs: np.ndarray, heads: Sequence[int], token_labels: Sequence[str],
                    unit_labels: Sequence[str], text_boundaries: Sequence[int],
                    core_boundaries: Sequence[int], title: str) -> bytes:
    """One panel per head: text tokens (rows) x [null slot, core units] (columns); colour from
    0 (black, e.g. masked) to the panel's largest weight."""
    n = len(heads)
    T, S1 = probs.shape[-2:]
    width = min(9.0, max(3.5, 0.09 * S1 + 1.5))
    height = min(9.0, max(2.5, 0.09 * T + 1.0))
    cols = 2 if n > 1 else 1
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.4),
                             squeeze=False, layout="constrained")
    columns = ["∅ null", *unit_labels]
    for a, ax in enumerate(axes.flat):
        if a >= n:
            ax.axis("off")
            continue
        # colour scaled to the panel's largest weight: a young decoder spreads its attention
        # thinly, and on a 0..1 scale every readable cell would look equally dark
        ax.imshow(probs[a], cmap="magma", vmin=0.0, vmax=max(float(probs[a].max()), 1e-6),
                  aspect="auto", interpolation="nearest")
        ax.axvline(0.5, color="white", linewidth=1.0)  # the null slot's column
        for b in core_boundaries:
            ax.axvline(b + 0.5, **BOUNDARY)  # +1 for the null column, -0.5 for the edge
        for b in text_boundaries:
            ax.axhline(b - 0.5, **BOUNDARY)
        ax.set_title(f"head {heads[a]}", fontsize=9)
        _ticks(ax, "x", columns, max_labels=40)
        _ticks(ax, "y", token_labels, max_labels=40)
        if a % cols:
            ax.set_yticklabels([])
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def activation_norms(norms: np.ndarray, labels: Sequence[str]) -> bytes:
    """Left: mean (and min-max band) L2 norm of the residual stream per layer; right: the
    layer x position heatmap."""
    L = norms.shape[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.12 * L + 2.2)),
                                      gridspec_kw={"width_ratios": [1, 1.6]})
    x = np.arange(L)
    left.plot(x, norms.mean(axis=1), marker="o", markersize=3, label="mean over positions")
    left.fill_between(x, norms.min(axis=1), norms.max(axis=1), alpha=0.25, label="min-max")
    left.set_xlabel("layer (0 = embeddings)")
    left.set_ylabel("‖residual stream‖₂")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    im = right.imshow(norms, aspect="auto", cmap="cividis", interpolation="nearest")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylabel("layer (0 = embeddings)")
    _ticks(right, "x", labels, max_labels=48)
    fig.colorbar(im, ax=right, fraction=0.04, pad=0.01)
    return _png(fig)


def drift(relative_l2: np.ndarray, cosine: np.ndarray, other: str) -> bytes:
    """Per layer: relative L2 distance and cosine similarity of the compared core's residual
    streams to the base core's, on the same input."""
    x = np.arange(len(relative_l2))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    a.bar(x, relative_l2, color="#1f77b4")
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.set_xlabel("layer (0 = embeddings)")
    a.set_ylabel("mean ‖h_other − h_base‖ / ‖h_base‖")
    a.grid(alpha=0.3, axis="y")
    b.plot(x, cosine, marker="o", markersize=3, color="#2ca02c")
    b.set_xlabel("layer (0 = embeddings)")
    b.set_ylabel("mean cosine(h_other, h_base)")
    b.set_ylim(min(0.9, float(cosine.min()) - 0.02), 1.005)  # small moves stay visible
    b.grid(alpha=0.3)
    fig.suptitle(_short(f"vs {other}", 110), fontsize=9)
    return _png(fig)
