"""The decoder's panel: which core units each text token read (cross-attention, null slot
included), for the input's own text (teacher forcing) and for what the decoder renders greedily
from the core's states alone.

Documents are packed as in training: each document's text starts with BOS and, under the render
mask, reads every unit of its own document and nothing of the others.
"""

from __future__ import annotations

import torch

from dualmind.viz import figures, page, probes
from dualmind.viz.load import text_tokenizer
from dualmind.viz.select import boundaries, spread

DEFAULT_CROSS, DEFAULT_HEADS = 4, 4
RENDER_TOKENS = 48  # most tokens rendered per document
RENDER_DOCS = 3  # most documents rendered (each is a generation loop: the report's slow part)


def decoder_section(models, trace, docs, doc_of, glosses, sel_heads, text_window,
                    lexicon=None, ids: list[int] | None = None) -> page.Section:
    s = page.Section("cross", "Decoder cross-attention: which core units each text token read",
                     "Rows: text tokens; columns: the null slot (read nothing) and the core's "
                     "units. Each row sums to one; under the render mask a token reads only "
                     "the units of its own document (red lines: document boundaries), so every "
                     "other cell is exactly zero (black). Colours run from 0 to each panel's "
                     "largest weight.")
    decoder = models.decoder
    if decoder is None:
        s.note("This is a core-only checkpoint: it has no decoder, so there is no "
               "cross-attention to show. Pass an align checkpoint (stage align) to see it.")
        return s
    tok, why = text_tokenizer(models)
    if tok is None:
        s.note(f"The decoder's text tokenizer was not found, so its input cannot be built: {why}.")
        return s
    n_heads = decoder.cfg.n_heads
    heads = [h for h in sel_heads if h < n_heads]
    if len(heads) < len(sel_heads):
        s.note(f"The decoder has {n_heads} heads; head(s) "
               f"{[h for h in sel_heads if h >= n_heads]} exist only in the core.")
    heads = heads or list(range(min(n_heads, DEFAULT_HEADS)))
    cross = spread(len(decoder.cross_layers), DEFAULT_CROSS)
    states = trace.final_hidden
    core_ids = torch.tensor([ids]) if ids is not None else None
    if decoder.cfg.core_read != "final":  # what this decoder reads of the core
        from dualmind.model.core_reading import read_core

        states = read_core(models.core, core_ids, decoder.cfg.core_read,
                           doc_ids=torch.tensor([doc_of]), scene_ids=torch.tensor([doc_of]))
    view = _View(decoder, states, core_ids, doc_of, lexicon, tok.tokenizer, models.core)
    kept = sorted(set(doc_of))  # documents with units inside the window

    token_ids, text_doc, labels = [], [], []
    for d in kept:
        encoding = tok.tokenizer.encode(docs[d])
        token_ids += [tok.bos, *encoding.ids]
        text_doc += [d] * (len(encoding.ids) + 1)
        # label a token by the characters it covers: decoding one byte-level token alone
        # would show half a Cyrillic letter as "�"
        labels += ["<bos>"] + [docs[d][a:b] for a, b in encoding.offsets]
    limit = min(text_window, decoder.cfg.max_seq_len)
    if len(token_ids) > limit:
        s.note(f"The input's text is {len(token_ids)} tokens long; only the first {limit} are "
               f"shown (text_window={text_window}).")
        token_ids, text_doc, labels = token_ids[:limit], text_doc[:limit], labels[:limit]
    s.parts.append("<h3>The input's text, read by the decoder (teacher forcing)</h3>")
    _maps(s, view, glosses, token_ids, text_doc, labels, cross, heads, "input text")

    rendered_ids, rendered_doc, rendered_labels, lines = [], [], [], []
    if len(kept) > RENDER_DOCS:
        lines.append(f"<li>(only the first {RENDER_DOCS} of the {len(kept)} documents in the "
                     "window are rendered)</li>")
    for d in kept[:RENDER_DOCS]:
        ids = _render(view, d, tok, min(RENDER_TOKENS, limit - 1))
        text = tok.tokenizer.decode(ids, skip_special_tokens=True)
        shown = text.replace("\n", "⏎").replace("\t", "⇥")  # blank output stays visible
        lines.append(f"<li><b>document {d + 1}</b> ({len(ids)} tokens): "
                     f"{page.esc(shown) or '(nothing: EOS at once)'}</li>")
        rendered_ids += [tok.bos, *ids]
        rendered_doc += [d] * (len(ids) + 1)
        rendered_labels += ["<bos>"] + _token_labels(tok.tokenizer, ids)
    rendered_ids, rendered_doc = rendered_ids[:limit], rendered_doc[:limit]
    rendered_labels = rendered_labels[:limit]
    s.parts.append("<h3>What the decoder renders from the core's states alone (greedy)</h3>"
                   f"<ul>{''.join(lines)}</ul>")
    _maps(s, view, glosses, rendered_ids, rendered_doc, rendered_labels, cross[-1:], heads,
          "greedy rendering")
    s.parts.append(f"<p>Text tokenizer: {page.esc(str(tok.path))}.</p>")
    return s


class _View:
    """What the decoder reads in this report (states, units, documents) and how it points:
    with a decoder that follows its text through the units, each token's unit comes from
    re-encoding the text before it with the lexicon, as at generation (dualmind.model.pointer)."""

    def __init__(self, decoder, states, core_ids, doc_of, lexicon, tokenizer, core=None):
        self.decoder, self.states, self.core_ids, self.doc_of = decoder, states, core_ids, doc_of
        self.lexicon, self.tokenizer, self.core = lexicon, tokenizer, core

    def pointer(self, d: int):
        from dualmind.model.pointer import pointer_for

        return pointer_for(self.decoder, self.lexicon, self.tokenizer, self.doc_of.count(d))

    def scene(self, d: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Document ``d``'s states and unit ids, read as one scene."""
        mine = torch.tensor([doc == d for doc in self.doc_of])
        return (self.states[:, mine],
                self.core_ids[:, mine] if self.core_ids is not None else None)

    def closed_scene(self, d: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Document ``d`` as a rendering reads it: its units closed by the core's EOS, as the
        bridge and `dualmind eval` read theirs (dualmind.model.decoder_session.RECORD_END), so
        the rendering ends after the last unit; the window's own states if there is no core."""
        states, core_ids = self.scene(d)
        if self.core is None or core_ids is None:
            return states, core_ids
        from dualmind.model.core_reading import read_core
        from dualmind.model.decoder_session import RECORD_END

        closed = torch.cat([core_ids, core_ids.new_full((1, 1), RECORD_END)], dim=1)
        return read_core(self.core, closed, self.decoder.cfg.core_read), closed

    @torch.no_grad()
    def head_spans(self, d: int, token_ids: list[int]) -> list[int]:
        """For each position of ``token_ids`` (BOS first), the unit the decoder's boundary head
        decides the next token belongs to, reading document ``d``: where it would go saying
        that text."""
        from dualmind.model.decoder_session import DecoderSession

        states, core_ids = self.scene(d)
        session = DecoderSession(self.decoder, states, 1, len(token_ids), core_ids=core_ids,
                                 generator=torch.Generator().manual_seed(0))
        session.step(torch.tensor([token_ids]))
        return [int(u[0]) for u in session.chosen]

    def alignment(self, token_ids: list[int], text_doc: list[int]):
        """Each input position's span: the unit of the token it predicts, by the same rule
        generation follows (0 everywhere for a decoder that reads every unit alike)."""
        from dualmind.model.masks import Alignment

        spans = [0] * len(token_ids)
        starts = [i for i, d in enumerate(text_doc) if i == 0 or text_doc[i - 1] != d]
        for a, b in zip(starts, [*starts[1:], len(token_ids)], strict=True):
            if self.decoder.boundary is not None:  # the units its own head decides, token by token
                spans[a:b] = self.head_spans(text_doc[a], token_ids[a:b])
                continue
            pointer = self.pointer(text_doc[a])
            if pointer is None:
                continue
            running = -1
            for i in range(a, b):  # position i predicts token i + 1 (the last: EOS, at the end)
                produced = token_ids[a + 1: i + 2]
                unit = pointer.unit_of_last(produced) if i + 1 < b else pointer.n_units - 1
                running = max(running, unit)  # spans never go back along a document's text
                spans[i] = running
        zeros_c = torch.zeros(1, len(self.doc_of), dtype=torch.long)
        return Alignment(text_span=torch.tensor([spans]),
                         text_scene=torch.zeros(1, len(token_ids), dtype=torch.long),
                         text_doc=torch.tensor([text_doc]), core_scene=zeros_c,
                         core_doc=torch.tensor([self.doc_of]))


def _maps(s, view, glosses, token_ids, text_doc, labels, cross, heads, what: str) -> None:
    dtrace = probes.trace_decoder(view.decoder, torch.tensor([token_ids]), view.states,
                                  view.alignment(token_ids, text_doc), cross=cross, heads=heads,
                                  core_ids=view.core_ids)
    for c in cross:
        cap = dtrace.cross[c]
        block = dtrace.layers[c]
        s.figure(figures.cross_attention(cap.probs[0].numpy(), cap.heads, labels, glosses,
                                         boundaries(text_doc), boundaries(view.doc_of),
                                         f"{what}: decoder block {block} (cross-attention {c})"),
                 f"{what}: cross-attention {c} (decoder block {block}), heads {cap.heads}")
        null = cap.probs[0, :, :, 0].mean().item()
        s.parts.append(f"<p>cross-attention {c}: on average {null:.0%} of a token's attention "
                       "goes to the null slot (reading nothing).</p>")


@torch.no_grad()
def _render(view, d: int, tok, budget: int) -> list[int]:
    """Greedy tokens the decoder says for document ``d``, reading only that document's units
    as one scene, closed by the core's EOS (the text's EOS and everything after it dropped)."""
    if budget < 1:
        return []
    states, core_ids = view.closed_scene(d)
    gen = view.decoder.generate(states, torch.tensor([[tok.bos]]), budget,
                                pointer_fn=view.pointer(d), core_ids=core_ids,
                                temperature=0.0, eos_id=tok.eos,
                                generator=torch.Generator().manual_seed(d))
    ids = [int(t) for t in gen.ids[0, 1:]]
    return ids[: ids.index(tok.eos)] if tok.eos in ids else ids


def _token_labels(tokenizer, ids: list[int]) -> list[str]:
    """Each token's text as the growing decode adds it (whole characters where possible)."""
    labels, before = [], ""
    for i in range(len(ids)):
        now = tokenizer.decode(ids[: i + 1], skip_special_tokens=True)
        labels.append(now[len(before):] if now.startswith(before) else now[-1:])
        before = now
    return labels
