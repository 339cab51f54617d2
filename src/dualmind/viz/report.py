"""`write_report`: one prompt through the core (and its decoder) into a self-contained HTML page.

The input text is split into documents at blank lines and packed into one row, the way training
packs documents (``doc_ids``): the core's attention maps then show the packing boundaries, and
the decoder's render mask keeps each document's text on its own units.

What may be drawn is bounded whatever the checkpoint (a 70B core has 80 layers of 64 heads):
at most ``MAX_LAYERS`` layers, ``MAX_HEADS`` heads, ``MAX_POSITIONS`` logit-lens positions and
a window of ``window`` symbols / ``text_window`` text tokens. Asking for more is an error naming
the limit; a longer input is cut to the window with a note at the top of the report.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dualmind.viz import figures, page, probes
from dualmind.viz.decoder_panel import decoder_section
from dualmind.viz.load import VizError, load, load_compare, load_lexicon
from dualmind.viz.select import boundaries, choose

MAX_LAYERS, MAX_HEADS, MAX_POSITIONS = 12, 8, 24
DEFAULT_LAYERS, DEFAULT_HEADS, DEFAULT_POSITIONS = 6, 4, 12
WINDOW, TEXT_WINDOW, TOP = 96, 96, 3
SIZE_MARK = "@@dualmind-viz-report-size@@"  # replaced by the size once the page is complete


def split_documents(text: str) -> list[str]:
    docs = [d.strip() for d in re.split(r"\n\s*\n", text)]
    return [d for d in docs if d]


def _gloss(lexicon, uid: int) -> str:
    return lexicon.gloss(uid) if uid < lexicon.vocab_size else f"#{uid}"


def write_report(checkpoint: str | Path, text: str, out_dir: str | Path,
                 layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                 positions: Sequence[int] | None = None, lexicon_dir: str | Path | None = None,
                 compare: str | Path | None = None, *, window: int = WINDOW,
                 text_window: int = TEXT_WINDOW) -> Path:
    """Write ``out_dir/index.html`` for ``text`` read by ``checkpoint`` (core or align run, .ckpt
    or export folder) and return its path. ``layers``/``heads``: core layers and heads whose
    attention is drawn (and the logit-lens rows); ``positions``: logit-lens columns (indices into
    the windowed symbols); ``compare``: another checkpoint of the same shape, or an adapter
    folder, whose per-layer drift from this core is drawn."""
    started = time.perf_counter()
    models = load(checkpoint)
    core, cfg = models.core, models.core.cfg
    lexicon, lexicon_path = load_lexicon(lexicon_dir, models)
    sel_layers = choose("layers", layers, cfg.n_layers, DEFAULT_LAYERS, MAX_LAYERS)
    sel_heads = choose("heads", heads, cfg.n_heads, DEFAULT_HEADS, MAX_HEADS)
    other = load_compare(compare, models) if compare is not None else None  # fail early
    top_notes: list[str] = []

    docs = split_documents(text)
    if not docs:
        raise VizError("the text is empty: nothing to show")
    ids: list[int] = []
    doc_of: list[int] = []
    for d, doc in enumerate(docs):
        units = lexicon.encode(doc)
        if not units:
            top_notes.append(f"document {d + 1} ({doc[:40]!r}…) encodes to no symbols "
                             f"(only stopwords?) and is left out")
        ids += units
        doc_of += [d] * len(units)
    if not ids:
        raise VizError("the text encodes to no symbols at all with this lexicon")
    limit = min(window, cfg.max_seq_len)
    if len(ids) > limit:
        top_notes.append(f"the input is {len(ids)} symbols long; this report shows only the "
                         f"first {limit} (window={window}, the model's context "
                         f"{cfg.max_seq_len}); pass a shorter text or a larger window")
        ids, doc_of = ids[:limit], doc_of[:limit]
    T = len(ids)
    glosses = [_gloss(lexicon, u) for u in ids]
    pos_labels = [f"{i}:{g}" for i, g in enumerate(glosses)]
    bounds = boundaries(doc_of)

    sel_pos = choose("positions", positions, T, DEFAULT_POSITIONS, MAX_POSITIONS)

    ids_t = torch.tensor([ids], dtype=torch.long)
    doc_t = torch.tensor([doc_of], dtype=torch.long)
    trace = probes.trace_core(core, ids_t, doc_t, sel_layers, sel_heads)

    sections = [_lens_section(core, trace, sel_layers, sel_pos, pos_labels, lexicon)]
    sections.append(_attention_section(trace, sel_layers, pos_labels, bounds))
    sections.append(decoder_section(models, trace, docs, doc_of, glosses, sel_heads,
                                    text_window, lexicon=lexicon, ids=ids))
    sections.append(_norms_section(trace, pos_labels))
    if other is not None:
        sections.append(_compare_section(models, other, ids_t, doc_t))

    header = page.meta_table([
        ("checkpoint", f"{models.source} (stage {models.meta.get('stage')})"),
        ("core", f"{cfg.n_layers} layers, dim {cfg.dim}, {cfg.n_heads} heads "
                 f"({cfg.n_kv_heads} kv), vocab {cfg.vocab_size}"),
        ("decoder", "none (core-only checkpoint)" if models.decoder is None else
         f"{models.decoder.cfg.n_layers} layers, cross-attention at blocks "
         f"{list(models.decoder.cfg.cross_layers)}"),
        ("lexicon", f"{lexicon_path} ({lexicon.level}, fingerprint {lexicon.fingerprint[:12]})"),
        ("input", f"{len(docs)} document(s), {T} symbols shown"),
        ("selection", f"layers {sel_layers}, heads {sel_heads}, lens positions {sel_pos}"),
    ]) + "".join(f'<p class="note">{page.esc(n)}</p>' for n in top_notes)
    header += ("<h2>Input as the core reads it</h2>"
               + page.symbols_html(glosses, {b for b in bounds}))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    footer = (f"dualmind viz · written in {time.perf_counter() - started:.1f} s · "
              f"report size {SIZE_MARK} · works offline (figures are embedded PNGs)")
    document = page.render("dualmind viz: inside the core and the decoder", header, sections,
                           footer)
    size = len(document.replace(SIZE_MARK, "").encode("utf-8"))  # the size line itself aside
    index.write_text(document.replace(SIZE_MARK, f"{size / 1024:.0f} KiB"), encoding="utf-8")
    return index


def _lens_section(core, trace, sel_layers, sel_pos, pos_labels, lexicon) -> page.Section:
    s = page.Section("lens", "Logit lens: the core's thought, layer by layer",
                     "Each cell: the symbol the residual stream after that layer would predict "
                     "next, through the core's final norm and output head (glossed as a word); "
                     "colour: its probability. The last layer is the model's own prediction.")
    # -1: the embeddings (hidden_states[0]); the last layer always, as the model's own output
    last = core.cfg.n_layers - 1
    rows = [-1, *sel_layers] + ([] if last in sel_layers else [last])
    values, top_ids = probes.logit_lens(core, trace.hidden_states, rows, sel_pos, top=TOP)
    labels = ["embeddings" if r < 0 else f"layer {r}" + (" (output)" if r == last else "")
              for r in rows]
    cols = [pos_labels[p] for p in sel_pos]
    words = [[_gloss(lexicon, int(top_ids[i, j, 0])) for j in range(len(sel_pos))]
             for i in range(len(rows))]
    s.figure(figures.logit_lens(values[..., 0].numpy(), words, labels, cols),
             f"logit lens: {len(rows)} rows (embeddings, layers), positions {sel_pos}")
    cells = [[[(_gloss(lexicon, int(top_ids[i, j, k])), float(values[i, j, k]))
               for k in range(top_ids.shape[-1])] for j in range(len(sel_pos))]
             for i in range(len(rows))]
    s.parts.append(page.lens_table(labels, cols, cells))
    return s


def _attention_section(trace, sel_layers, pos_labels, bounds) -> page.Section:
    s = page.Section("attention", "Core attention maps",
                     "Rows: the symbol attending (query); columns: the symbols it reads (keys). "
                     "Probabilities recomputed from the layer's own q/k with the same RoPE and "
                     "causal/document mask as the fused kernel. Red lines: packing boundaries "
                     "(a new document starts; nothing crosses them).")
    if not bounds:
        s.note("The input is one document, so there are no packing boundaries to draw; "
               "separate documents with a blank line to see them.")
    for layer in sel_layers:
        cap = trace.attention[layer]
        s.figure(figures.attention_maps(cap.probs[0].numpy(), cap.heads, pos_labels, bounds,
                                        f"layer {layer}"),
                 f"core layer {layer}, heads {cap.heads}")
    return s


def _norms_section(trace, pos_labels) -> page.Section:
    s = page.Section("norms", "Activation norms per layer",
                     "L2 norm of the residual stream after each layer (0 = embeddings), per "
                     "position, before the final norm.")
    norms = probes.activation_norms(trace.hidden_states).numpy()
    s.figure(figures.activation_norms(norms, pos_labels), "residual stream norms")
    return s


def _compare_section(models, compared, ids_t, doc_t) -> page.Section:
    other, description = compared
    s = page.Section("compare", "How far the compared core moved, layer by layer",
                     "Same input through both cores; per layer, the relative L2 distance and "
                     "the cosine similarity of the residual streams (averaged over positions). "
                     "0 and 1: that layer's representations did not move.")
    base = probes.trace_core(models.core, ids_t, doc_t).hidden_states
    moved = probes.trace_core(other, ids_t, doc_t).hidden_states
    d = probes.representation_drift(base, moved)
    rel, cos = d["relative_l2"].numpy(), d["cosine"].numpy()
    s.figure(figures.drift(rel, cos, description), f"drift of {description}")
    moved_layers = [i for i in range(len(rel)) if rel[i] > 1e-6]
    s.parts.append("<p>" + page.esc(
        f"first layer that moved: {moved_layers[0]} (0 = embeddings); largest relative change "
        f"{float(np.max(rel)):.3g} at layer {int(np.argmax(rel))}" if moved_layers else
        "no layer moved: the two cores compute the same representations on this input") + "</p>")
    return s
