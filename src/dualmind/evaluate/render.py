"""Greedy rendering of held-out scenes: what the decoder says from the frozen core's states alone,
beside the original and its (glossed) hyperphrase. Scored with chrF and exact-word accuracy."""

from __future__ import annotations

from pathlib import Path

import torch

from dualmind.evaluate.report import EvalError, Rendering, chrf, word_accuracy, words_in_order


def render_scenes(core, decoder, corpus_dir: str | Path, split: str = "val", scenes: int = 3,
                  lexicon_dir: str | Path | None = None, max_new_tokens: int | None = None,
                  expect_lexicon: str | None = None, records: list[int] | None = None,
                  temperature: float = 0.0, top_k: int | None = None, seed: int = 0
                  ) -> list[Rendering]:
    """Decoder rendering of the first `scenes` records (or of `records`, by index), each read
    from its own states; up to the original's length + 16 tokens, or `max_new_tokens` (the
    score then compares a prefix of the rendering with the whole original). Greedy by default
    (temperature 0, what chrF is reported for); else sampled, seeded per scene. A decoder with a
    boundary head draws its unit decisions from the head, seeded per scene, even when the tokens
    are greedy (:mod:`dualmind.model.decoder_session`).

    With two or more scenes, each is also rendered from the next chosen scene's states and
    scored against its own text (``Rendering.control_chrf``): the chrF a rendering gets without
    its own core (shared names, register), beside the chrF it gets with it."""
    from dualmind.data.open_corpus import open_shards
    from dualmind.data.text_tokenizer import load_text_tokenizer

    shards = open_shards(corpus_dir, split, expect_lexicon)
    tok = load_text_tokenizer(shards.tokenizer_path)
    special = shards.manifest.get("tokenizer", {}).get("special", {})
    bos, eos = int(special.get("bos", 1)), int(special.get("eos", 2))
    lexicon = _lexicon(lexicon_dir, shards.lexicon_fingerprint, corpus_dir)
    pointing = lexicon  # the pointer needs the lexicon; glossing only when one was given
    if pointing is None and decoder.cfg.follows_pointer:
        from dualmind.train.surfaces import find_corpus_lexicon

        found = find_corpus_lexicon(Path(corpus_dir))
        pointing = _lexicon(found, shards.lexicon_fingerprint, corpus_dir) if found else None
    from dualmind.model.core_reading import read_core
    from dualmind.model.decoder_session import RECORD_END
    from dualmind.model.pointer import pointer_for

    chosen = list(records if records is not None else range(min(scenes, len(shards))))
    seen_of = {i: min(len(shards[i].core), core.cfg.max_seq_len) for i in chosen}
    # each scene's units and what the decoder reads of them, once: a scene is read for its own
    # rendering and again as the control of the scene before it. A scene is closed by the
    # core's EOS where the context has room for it, as alignment read it: its text ends at the
    # last unit.
    closing = {i: [RECORD_END] if len(shards[i].core) < core.cfg.max_seq_len else []
               for i in chosen}
    units_of = {i: torch.as_tensor([*shards[i].core[:seen_of[i]], *closing[i]],
                                   dtype=torch.int64)[None] for i in chosen}
    states_of = {i: read_core(core, units_of[i], decoder.cfg.core_read) for i in chosen}

    def say(i: int, budget: int, seed: int, lang: str | None) -> str:
        """Scene i's states rendered (up to budget tokens, seeded)."""
        units, states = units_of[i], states_of[i]
        try:  # the decoder follows its own text through the hyperphrase, as in training
            pointer = pointer_for(decoder, pointing, tok, seen_of[i], lang=lang)
        except ValueError as err:
            raise EvalError(f"rendering {corpus_dir}: {err} (--lexicon)") from err
        gen = decoder.generate(states, torch.tensor([[bos]]), budget, temperature=temperature,
                               top_k=top_k, eos_id=eos, pointer_fn=pointer, core_ids=units,
                               generator=torch.Generator().manual_seed(seed))
        ids = [int(t) for t in gen.ids[0, 1:]]
        if eos in ids:
            ids = ids[: ids.index(eos)]
        return tok.decode(ids, skip_special_tokens=True)

    out = []
    for k, i in enumerate(chosen):
        scene = shards[i]
        # A scene longer than the core's context is rendered from its first max_seq_len units
        # and compared with the text of those units only (span: unit index per text token),
        # never with text the decoder had no states for; the note says so.
        seen = seen_of[i]
        text = scene.text if seen == len(scene.core) else scene.text[scene.span < seen]
        note = ("" if seen == len(scene.core) else
                f"the core's context holds {seen} of the scene's {len(scene.core)} units; "
                f"compared with the text of those {seen} units")
        budget = min(max_new_tokens or len(text) + 16, decoder.cfg.max_seq_len - 1)
        lang = getattr(scene, "lang", None)
        rendered = say(i, budget, seed + i, lang)
        original = tok.decode([int(t) for t in text], skip_special_tokens=False)
        # The control: the same rendering read from the next chosen scene's states; what it
        # still matches of this scene's text (names, register) the own states did not supply.
        control = None
        if len(chosen) > 1:
            control = chrf(say(chosen[(k + 1) % len(chosen)], budget, seed + i, lang), original)
        shown = scene.core[:seen]
        gloss = ("·".join(lexicon.gloss(int(u)) for u in shown) if lexicon is not None
                 else " ".join(str(int(u)) for u in shown))
        out.append(Rendering(original, gloss, rendered, chrf(rendered, original),
                             word_accuracy(rendered, original), note, control,
                             words_in_order(rendered, original)))
    return out


def _lexicon(lexicon_dir, fingerprint: str, corpus_dir):
    """The lexicon to gloss with; one other than the corpus' would print the wrong words."""
    if lexicon_dir is None:
        return None
    from dualmind.lexicon.lexicon import Lexicon

    lexicon = Lexicon.load(lexicon_dir)
    if lexicon.fingerprint != fingerprint:
        raise EvalError(f"{lexicon_dir}: lexicon {lexicon.fingerprint}, but {corpus_dir} was "
                        f"built with lexicon {fingerprint}; pass the corpus' own lexicon")
    return lexicon


def show_scenes(checkpoint: str | Path, corpus_dir: str | Path, scenes: int = 3,
                split: str = "val", lexicon_dir: str | Path | None = None,
                width: int = 400, max_new_tokens: int | None = None,
                temperature: float = 0.7, top_k: int | None = 40, seed: int = 0) -> str:
    """A few held-out scenes as printable text: the original, its hyperphrase (glossed when a
    lexicon folder is given) and what the decoder rendered from the frozen core's states alone.
    For scripts/demo.py: ``print(show_scenes(align_run, corpus, lexicon_dir=lexicon))``.

    Sampled by default (temperature 0.7, top-k 40, seeded: the same text every run): a briefly
    trained decoder's greedy output collapses into one repeated token, which shows less of what
    it learned; temperature=0 renders greedily. The header says which."""
    from dualmind.evaluate.load import load_models

    core, decoder, meta = load_models(checkpoint)
    if decoder is None:
        raise EvalError(f"{checkpoint}: a stage-lm baseline has no decoder to render scenes with")
    out = []
    renderings = render_scenes(core, decoder, corpus_dir, split, scenes, lexicon_dir,
                               max_new_tokens, expect_lexicon=meta.get("lexicon_fingerprint"),
                               temperature=temperature, top_k=top_k, seed=seed)
    how = (f"sampled: temperature {temperature}, top-k {top_k}, seed {seed}" if temperature > 0
           else "greedy")
    for i, r in enumerate(renderings):
        control = ("" if r.control_chrf is None
                   else f"; read from another scene's core: chrF {r.control_chrf:.1f}")
        out.append(f"--- held-out scene {i + 1} ({how}; chrF {r.chrf:.1f}, words in order "
                   f"{r.words_in_order:.0%}, exact words {r.word_accuracy:.0%}{control})\n"
                   f"original    : {clip(r.original, width)}\n"
                   f"hyperphrase : {clip(r.hyperphrase, width)}\n"
                   f"decoder     : {clip(r.rendered, width)}"
                   + (f"\nnote        : {r.note}" if r.note else ""))
    return "\n".join(out)


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line per field
    return text if len(text) <= width else text[: width - 1] + "…"
