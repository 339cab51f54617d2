"""The codec on real prose: a slice of the embedded demo corpus (skipped if it is absent)."""

from __future__ import annotations

import pytest

from dualmind.lexicon.lexicon import Lexicon
from dualmind.lexicon.script import detect_language

demo = pytest.importorskip("dualmind.sources.demo")


@pytest.fixture(scope="module")
def split():
    docs = demo.load_demo_documents(limit=24)
    train = [d.text for i, d in enumerate(docs) if i % 6]
    held = [d for i, d in enumerate(docs) if i % 6 == 0]
    return train, held


@pytest.fixture(scope="module")
def lexicons(split):
    train, _ = split
    return {level: Lexicon.build(train, level=level, vocab_size=8000)
            for level in ("lossless", "semantic")}


def test_lossless_round_trip_on_held_out_prose(lexicons, split):
    _, held = split
    lex = lexicons["lossless"]
    for doc in held:
        ids = lex.encode(doc.text)
        assert lex.decode(ids) == doc.text
        assert lex.encode_batch([doc.text, doc.text]) == [ids, ids]


def test_semantic_level_is_much_shorter(lexicons, split):
    """With a small (8k) vocabulary, lossless spends more than one unit per whitespace word
    (punctuation, pieces of unseen words); the semantic level drops function words and
    punctuation, so it keeps fewer positions than there are words."""
    _, held = split
    text = "\n\n".join(d.text for d in held)
    n_words = len(text.split())
    n_lossless = len(lexicons["lossless"].encode(text))
    n_semantic = len(lexicons["semantic"].encode(text))
    assert n_semantic < 0.75 * n_words
    assert n_semantic < 0.5 * n_lossless


def test_detect_language_matches_the_corpus_labels(split):
    _, held = split
    assert all(detect_language(d.text) == d.lang for d in held)
