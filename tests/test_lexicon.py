"""Unit tests of the hyperlexicon codec: levels, spans, symbols, languages."""

from __future__ import annotations

import pytest

from dualmind.lexicon.lexicon import Lexicon
from dualmind.lexicon.script import detect_language
from dualmind.lexicon.symbols import MAX_UNITS, id_of, symbol_of
from dualmind.lexicon.units import LexiconError
from test_lexicon_texts import EN, RU, corpus


@pytest.fixture(scope="module")
def lossless() -> Lexicon:
    return Lexicon.build(corpus(), level="lossless", vocab_size=1200, piece_merges=300)


@pytest.fixture(scope="module")
def semantic() -> Lexicon:
    return Lexicon.build(corpus(), level="semantic", vocab_size=1200, piece_merges=300)


TRICKY = [
    "",
    " ",
    "   leading and trailing   ",
    "tabs\tand\nnewlines\r\n\r\n\n\n  mixed \u00a0 nbsp \u2003 em-space",
    "control \x00\x01\x1b[0m chars \x7f",
    "emoji 🎉👩‍👩‍👧 flags 🇷🇺🇬🇧 and skin 👍🏽",
    "mixed scripts: Москва London 東京 Ελλάδα عربى עברית",
    "combining: e\u0301 и\u0306 Z\u0335\u0321a\u0336lgo",
    "numbers 1234567890 3.14159 1,000,000 ½ ² ٣",
    "under_score __init__ a__b",
    "lone surrogate \ud800 inside",
    "unknownwordzzzqx Quixotically flibbertigibbet",
]


# -- symbols -----------------------------------------------------------------------------
@pytest.mark.parametrize("uid", [0, 6399, 6400, 6400 + 65533, 6400 + 65534, MAX_UNITS - 1])
def test_symbol_round_trip_across_private_use_ranges(uid):
    ch = symbol_of(uid)
    assert len(ch) == 1
    assert id_of(ch) == uid


def test_symbol_limits():
    with pytest.raises(ValueError):
        symbol_of(MAX_UNITS)
    with pytest.raises(ValueError):
        symbol_of(-1)
    with pytest.raises(ValueError, match="private-use"):
        id_of("a")


# -- shared API --------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["lossless", "semantic"])
def test_reserved_ids_and_vocab_size(level, lossless, semantic):
    lex = lossless if level == "lossless" else semantic
    assert (Lexicon.PAD, Lexicon.BOS, Lexicon.EOS, Lexicon.UNK) == (0, 1, 2, 3)
    assert [lex.unit(i).kind for i in range(4)] == ["special"] * 4
    assert lex.gloss(Lexicon.BOS) == "<bos>"
    assert lex.vocab_size == len(lex) <= 1200
    assert lex.level == level
    assert len(lex.fingerprint) == 64 and int(lex.fingerprint, 16) >= 0


@pytest.mark.parametrize("level", ["lossless", "semantic"])
def test_hyperphrase_is_one_symbol_per_unit(level, lossless, semantic):
    lex = lossless if level == "lossless" else semantic
    ids = lex.encode(EN[0] + " " + RU[0])
    h = lex.to_hyperphrase(ids)
    assert len(h) == len(ids) > 0
    assert all(0xE000 <= ord(c) <= 0xF8FF or ord(c) >= 0xF0000 for c in h)
    assert lex.from_hyperphrase(h) == ids


def test_from_hyperphrase_rejects_foreign_characters(lossless):
    h = lossless.to_hyperphrase([5, 6])
    with pytest.raises(LexiconError, match="position 1: character U\\+0078"):
        lossless.from_hyperphrase(h[0] + "x")
    with pytest.raises(LexiconError, match="position 0: .*>= vocab_size"):
        lossless.from_hyperphrase(symbol_of(len(lossless) + 5))


def test_decode_and_gloss_reject_out_of_range_ids(lossless):
    with pytest.raises(LexiconError, match="out of range"):
        lossless.decode([len(lossless)])
    with pytest.raises(LexiconError, match="out of range"):
        lossless.gloss(-1)


@pytest.mark.parametrize("level", ["lossless", "semantic"])
def test_encode_batch_matches_encode(level, lossless, semantic):
    lex = lossless if level == "lossless" else semantic
    texts = EN + RU + TRICKY
    assert lex.encode_batch(texts) == [lex.encode(t) for t in texts]


# -- lossless ----------------------------------------------------------------------------
@pytest.mark.parametrize("text", EN + RU + TRICKY)
def test_lossless_round_trip(lossless, text):
    assert lossless.decode(lossless.encode(text)) == text


@pytest.mark.parametrize("text", EN + RU + TRICKY)
def test_lossless_spans_tile_the_text(lossless, text):
    ids, spans = lossless.encode_with_spans(text)
    assert ids == lossless.encode(text)
    assert len(spans) == len(ids)
    pos = 0
    for s, e in spans:
        assert s == pos and e >= s
        pos = e
    assert pos == len(text)
    # Units whose bytes are whole characters cover exactly their own text.
    for (s, e), uid in zip(spans, ids, strict=True):
        if lossless.unit(uid).kind in ("word", "phrase"):
            assert text[s:e] == lossless.gloss(uid)


def test_lossless_learns_multi_word_units_and_compresses(lossless):
    phrases = [u for u in lossless.units if u.kind == "phrase"]
    assert phrases, "no multi-word unit learned from a repetitive corpus"
    assert any(u.text == " of the" for u in phrases)
    text = EN[1]
    ids = lossless.encode(text)
    kinds = {lossless.unit(i).kind for i in ids}
    assert "phrase" in kinds
    # Each unit stands for more text than a word on average on training-like text.
    assert len(text.split()) > len(ids)


def test_lossless_unknown_words_fall_back_to_pieces(lossless):
    ids = lossless.encode("flibbertigibbet")
    assert len(ids) > 1
    assert {lossless.unit(i).kind for i in ids} <= {"piece", "byte", "word"}


# -- semantic ----------------------------------------------------------------------------
def lemmas(gloss: str) -> list[str]:
    """Lemmas of a gloss; a concept unit prints its lemmas joined by spaces."""
    return [w for unit in gloss.split("·") for w in unit.split(" ")]


def test_semantic_drops_function_words_and_lemmatises(semantic):
    gloss = semantic.decode(semantic.encode("The cats were sleeping in the warm light."))
    words = lemmas(gloss)
    assert "the" not in words and "in" not in words and "were" not in words
    assert "cat" in words and "sleep" in words and "light" in words


def test_semantic_russian_lemmas(semantic):
    gloss = semantic.decode(semantic.encode("Кошки спали в тёплом свете огня."))
    words = lemmas(gloss)
    assert "в" not in words
    assert {"кошка", "спать", "огонь"} <= set(words)


def test_semantic_keeps_negation(semantic):
    assert "not" in lemmas(semantic.decode(semantic.encode("I don't know.")))
    assert "не" in lemmas(semantic.decode(semantic.encode("Я не знаю.")))


def test_semantic_rare_words_fall_back_to_pieces_not_vanish(semantic):
    ids = semantic.encode("flibbertigibbet")
    assert ids and all(semantic.unit(i).kind in ("piece", "byte") for i in ids)
    assert semantic.decode(ids) == "flibbertigibbet"


def test_semantic_is_shorter_than_lossless(lossless, semantic):
    text = " ".join(EN + RU)
    assert len(semantic.encode(text)) < 0.7 * len(lossless.encode(text))


@pytest.mark.parametrize("text", EN + RU + TRICKY)
def test_semantic_spans_sorted_non_overlapping(semantic, text):
    ids, spans = semantic.encode_with_spans(text)
    assert ids == semantic.encode(text)
    assert len(spans) == len(ids)
    prev = 0
    for s, e in spans:
        assert prev <= s <= e <= len(text)
        prev = e


def test_semantic_unknown_language_is_counted(semantic):
    before = semantic.stats["und_forms"]
    ids = semantic.encode("大阪 Αθήνα")
    assert ids  # not dropped: pieces of the lower-cased surface
    assert semantic.stats["und_forms"] >= before + 2


@pytest.mark.parametrize("level", ["lossless", "semantic"])
def test_lang_argument(level, lossless, semantic):
    lex = lossless if level == "lossless" else semantic
    for lang in ("en", "ru", "und"):
        assert lex.encode("night ночь", lang=lang) == lex.encode("night ночь")
        assert lex.encode_with_spans("night", lang=lang) == lex.encode_with_spans("night")
        assert lex.encode_batch(["night"], lang=lang) == [lex.encode("night")]
    with pytest.raises(LexiconError, match="not one of"):
        lex.encode("night", lang="de")


# -- languages ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,lang",
    [("The night was dark", "en"), ("Ночью было темно", "ru"),
     ("Ночью, in the night, было темно и холодно", "ru"), ("東京 123 !!", "und"), ("", "und")],
)
def test_detect_language(text, lang):
    assert detect_language(text) == lang


# -- build options -----------------------------------------------------------------------
def test_build_rejects_bad_options():
    with pytest.raises(LexiconError, match="level"):
        Lexicon.build(["x"], level="fancy")
    with pytest.raises(LexiconError, match="vocab_size"):
        Lexicon.build(["x"], vocab_size=10)
    with pytest.raises(LexiconError, match="not supported"):
        Lexicon.build(["x"], langs=("en", "xx"))
    with pytest.raises(TypeError, match="str texts"):
        Lexicon.build([b"bytes"])


def test_custom_stopwords_change_the_semantic_level():
    lex = Lexicon.build(corpus(2), level="semantic", vocab_size=600, piece_merges=50,
                        stopwords={"en": ["night", "the"]})
    assert "night" not in lemmas(lex.decode(lex.encode("the night")))


def test_vocab_size_bounds_the_lexicon():
    small = Lexicon.build(corpus(), level="lossless", vocab_size=400, piece_merges=50)
    assert len(small) <= 400
    assert small.decode(small.encode(EN[0])) == EN[0]


# -- merge rounds ------------------------------------------------------------------------
def test_vectorised_merge_rounds_match_the_python_sweep():
    import random

    import numpy as np

    from dualmind.lexicon.merges import MergeRounds, apply_rounds

    rng = random.Random(7)
    vocab = 40
    rounds = []
    next_id = 10
    for _ in range(3):
        table = {}
        for _ in range(12):
            pair = (rng.randrange(next_id), rng.randrange(next_id))
            if pair not in table:
                table[pair] = next_id
                next_id += 1
        rounds.append(table)
    compiled = MergeRounds(rounds, vocab + next_id)
    for n in (0, 1, 2, 5, 191, 192, 500, 3000):
        for _ in range(5):
            ids = [rng.randrange(10) for _ in range(n)]
            # runs of a repeated pair exercise the "every other hit" rule
            ids[n // 3: n // 3 + 8] = [1, 2] * 4 if n > 30 else ids[n // 3: n // 3 + 8]
            assert compiled(list(ids)) == apply_rounds(list(ids), rounds)
            assert _spans_agree(compiled, rounds, ids)
    for batch in ([], [[]], [[1, 2], [], [2, 1, 2], [1] * 300], [[1, 2, 1, 2]] * 50):
        assert compiled.batch([list(s) for s in batch]) == [apply_rounds(list(s), rounds)
                                                           for s in batch]
        arrays = [np.asarray(s, dtype=np.int64) for s in batch]
        assert compiled.batch_arrays(arrays) == [apply_rounds(list(s), rounds) for s in batch]
        assert [compiled.apply_array(a) for a in arrays] == compiled.batch(
            [list(s) for s in batch])
        assert all(_spans_agree(compiled, rounds, seq) for seq in batch)


def _spans_agree(compiled, rounds, seq):
    from dualmind.lexicon.merges import apply_round_spans

    starts = [2 * i for i in range(len(seq))]
    ends = [2 * i + 1 for i in range(len(seq))]
    want_ids, want_spans = list(seq), list(zip(starts, ends, strict=True))
    for table in rounds:
        want_ids, want_spans = apply_round_spans(want_ids, want_spans, table)
    return compiled.apply_with_spans(list(seq), starts, ends) == (want_ids, want_spans)


def test_pair_table_lookup_is_exact():
    import numpy as np

    from dualmind.lexicon.pairtable import PairTable

    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(0, 10**10, size=5000))
    vals = np.arange(keys.size, dtype=np.int64) + 7
    table = PairTable(keys, vals)
    probe = np.concatenate([keys, rng.integers(0, 10**10, size=5000)])
    found, got = table.lookup(probe)
    expect = np.isin(probe, keys)
    assert (found == expect).all()
    assert (got[: keys.size] == vals).all()
    empty_found, _ = PairTable(np.array([], dtype=np.int64), np.array([], dtype=np.int64)
                               ).lookup(probe)
    assert not empty_found.any()
