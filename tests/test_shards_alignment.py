"""Property test: for arbitrary Unicode, a lossless encoding cut into scenes and aligned with the
decoder BPE keeps every shard invariant (bytes add up, tokens decode back, spans are valid)."""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dualmind.data.build.alignment import align
from dualmind.data.build.scenes import SceneLimits, cut_scenes, split_blocks
from dualmind.data.text_tokenizer import token_byte_lengths, train_text_tokenizer
from dualmind.lexicon.lexicon import Lexicon
from dualmind.model.pointer import LexiconPointer
from test_corpus_support import small_documents, small_lexicon


@functools.cache
def codecs():
    lex = Lexicon.load(small_lexicon("lossless"))
    tok = train_text_tokenizer([d.text for d in small_documents(3)], vocab_size=400)
    return lex, tok, token_byte_lengths(tok)


# Unicode without lone surrogates (they cannot be UTF-8 encoded, in a file or anywhere else)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400) | st.builds(
    lambda parts: "".join(parts),
    st.lists(
        st.sampled_from(["Hamlet. ", "Ночь, грудь — тьма! ", "\n\n", "ёж 🦔 ", "x", ". ", "  "]),
        max_size=120,
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, small=st.booleans())
# a scene that started on the first byte piece of a 2-byte character held only that piece
# (found by this test in a CI-like run, 2026-12-03): it decoded to U+FFFD, not its text
@example(text="?\r\x8000000\x80\U00010000", small=True)
def test_scene_alignment_invariants(text, small):
    lex, tok, lengths = codecs()
    limits = SceneLimits(3, 12, 6, block_chars=50) if small else SceneLimits()
    rebuilt = []
    for b0, b1 in split_blocks(text, limits.block_chars):
        block = text[b0:b1]
        ids, spans = lex.encode_with_spans(block)
        scenes = cut_scenes(block, spans, limits)
        if not ids:
            assert block == "" and scenes == []
            continue
        for cut in scenes:
            scene = block[cut.char_start : cut.char_end]
            u_ids = ids[cut.unit_start : cut.unit_end]
            u_spans = [
                (a - cut.char_start, b - cut.char_start)
                for a, b in spans[cut.unit_start : cut.unit_end]
            ]
            assert 1 <= len(u_ids) <= limits.max_units
            assert lex.decode(u_ids) == scene, "a lossless scene decodes to its own text"
            enc = tok.encode(scene, add_special_tokens=False)
            core_bytes, span, n_bytes = align(scene, u_spans, enc.ids, lengths)
            assert n_bytes == len(scene.encode("utf-8")) == int(core_bytes.sum())
            assert (core_bytes >= 0).all()
            assert tok.decode(enc.ids, skip_special_tokens=False) == scene
            if len(span):
                assert span.min() >= -1 and span.max() < len(u_ids)
                assert (np.diff(span) >= 0).all()
            rebuilt.append(scene)
    assert "".join(rebuilt) == text


@functools.cache
def semantic_lexicon():
    return Lexicon.load(small_lexicon("semantic"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT)
def test_semantic_scenes_tile_the_text_and_align(text):
    """Semantic units skip function words: scenes still tile the text, and every unit lies
    inside its scene."""
    lex = semantic_lexicon()
    _, tok, lengths = codecs()
    limits = SceneLimits(3, 12, 6, block_chars=60)
    for b0, b1 in split_blocks(text, limits.block_chars):
        block = text[b0:b1]
        ids, spans = lex.encode_with_spans(block)
        scenes = cut_scenes(block, spans, limits)
        assert "".join(block[c.char_start : c.char_end] for c in scenes) == (block if ids else "")
        for cut in scenes:
            scene = block[cut.char_start : cut.char_end]
            u_spans = [
                (a - cut.char_start, b - cut.char_start)
                for a, b in spans[cut.unit_start : cut.unit_end]
            ]
            assert all(0 <= a <= b <= len(scene) for a, b in u_spans)
            enc = tok.encode(scene, add_special_tokens=False)
            core_bytes, span, n_bytes = align(scene, u_spans, enc.ids, lengths)
            assert int(core_bytes.sum()) == n_bytes == len(scene.encode("utf-8"))
            assert len(span) == 0 or (span.min() >= -1 and span.max() < len(u_spans))


def test_the_token_that_enters_a_unit_says_its_word():
    """Byte-level BPE carries a word's leading space in its first token (" night"): that token
    belongs to the word's unit, not to the unit before (ALIGNMENT_RULE), in the shards and for
    the pointer generation follows. A token of spaces only stays with the unit before."""
    lex = semantic_lexicon()
    _, tok, lengths = codecs()
    text = "The night was dark and full of waiting, and the king  slept."
    ids, spans = lex.encode_with_spans(text)
    enc = tok.encode(text, add_special_tokens=False)
    _, span, _ = align(text, spans, enc.ids, lengths)
    starts = np.cumsum([0, *(len(tok.decode([t])) for t in enc.ids)])[:-1]  # ASCII: chars
    pointer = LexiconPointer(lex, tok, len(ids))
    entered = 0
    for unit, (a, _) in enumerate(spans):
        if a == 0 or text[a - 1] != " ":
            continue
        first = int(np.flatnonzero(span == unit)[0])  # the token that enters the unit
        word = tok.decode([enc.ids[first]])
        assert starts[first] + len(word) - len(word.lstrip(" ")) == a, (lex.gloss(ids[unit]), word)
        # generation's pointer (the text so far, re-encoded) puts that token there too
        assert pointer.unit_of_last(enc.ids[: first + 1]) == unit, (lex.gloss(ids[unit]), word)
        entered += 1
    assert entered >= 5
    only_spaces = [i for i, t in enumerate(enc.ids) if tok.decode([t]).strip(" ") == ""]
    for i in only_spaces:  # the double space before "slept": with the unit before
        assert span[i] == np.searchsorted([a for a, _ in spans], starts[i], side="right") - 1


def test_an_align_run_on_a_corpus_aligned_by_another_rule_says_so(capsys):
    from dualmind.data.build.alignment import ALIGNMENT_RULE
    from dualmind.train.align_datamodule import warn_old_alignment

    warn_old_alignment("new", {"settings": {"alignment": ALIGNMENT_RULE}})
    assert capsys.readouterr().out == ""
    warn_old_alignment("old", {"settings": {}})  # built before the rule was recorded
    out = capsys.readouterr().out
    assert "old gives each text token the unit of its 'first-byte'" in out and "--overwrite" in out


def test_special_token_strings_in_text_stay_text(tmp_path):
    """A literal "<|bos|>" in the corpus must not become the decoder's BOS id."""
    from dualmind.data.text_tokenizer import load_text_tokenizer

    _, tok, _ = codecs()
    path = tmp_path / "tokenizer.json"
    path.write_text(tok.to_str())
    loaded = load_text_tokenizer(path)
    text = "He said <|bos|> and <|eos|> aloud."
    ids = loaded.encode(text, add_special_tokens=False).ids
    assert not set(ids) & {0, 1, 2, 3}
    assert loaded.decode(ids, skip_special_tokens=False) == text
    _, _, lengths = codecs()
    assert int(lengths[ids].sum()) == len(text.encode("utf-8"))
