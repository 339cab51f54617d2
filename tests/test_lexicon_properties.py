"""Property tests: the lossless round trip and crash-free semantic encoding on any Unicode."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dualmind.lexicon.lexicon import Lexicon
from test_lexicon_texts import EN, RU, corpus


@pytest.fixture(scope="module")
def lexicons():
    return {level: Lexicon.build(corpus(4), level=level, vocab_size=800, piece_merges=150)
            for level in ("lossless", "semantic")}


# Any code point, surrogates included (a Python str may hold them), plus text that mixes
# real words with arbitrary characters so the vocabulary paths are exercised too.
any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
words = st.sampled_from((" ".join(EN + RU)).split())
texts = st.one_of(
    st.text(any_char, max_size=200),
    st.lists(st.one_of(words, st.text(any_char, max_size=3), st.sampled_from([" ", "\n", "  "])),
             max_size=60).map("".join),
)
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(text=texts)
def test_lossless_round_trip_on_any_unicode(lexicons, text):
    lex = lexicons["lossless"]
    ids = lex.encode(text)
    assert lex.decode(ids) == text
    assert lex.from_hyperphrase(lex.to_hyperphrase(ids)) == ids
    ids2, spans = lex.encode_with_spans(text)
    assert ids2 == ids
    assert (spans[-1][1] if spans else 0) == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))


@SETTINGS
@given(text=texts)
def test_semantic_never_crashes_on_any_unicode(lexicons, text):
    lex = lexicons["semantic"]
    ids = lex.encode(text)
    assert all(0 <= i < len(lex) for i in ids)
    gloss = lex.decode(ids)
    assert isinstance(gloss, str)
    assert len(lex.to_hyperphrase(ids)) == len(ids)
    ids2, spans = lex.encode_with_spans(text)
    assert ids2 == ids
    assert all(0 <= s <= e <= len(text) for s, e in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
