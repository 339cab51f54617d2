"""Scene cutting: 100–500 units, at paragraph/sentence ends, covering every unit exactly once."""

from __future__ import annotations

import re

import pytest

from dualmind.data.build.scenes import SceneLimits, cut_scenes, split_blocks


def word_spans(text: str) -> list[tuple[int, int]]:
    """A stand-in lossless encoding: each word with its leading whitespace is one unit."""
    return [m.span() for m in re.finditer(r"\s*\S+", text)] or []


def make_text(sentences: int, words: int, para_every: int) -> str:
    out = []
    for i in range(sentences):
        out.append(" ".join(["Word"] + ["w"] * (words - 1)) + ".")
        out.append("\n\n" if (i + 1) % para_every == 0 else " ")
    return "".join(out).rstrip()


def check_cover(text, spans, scenes, limits):
    assert scenes[0].unit_start == 0 and scenes[-1].unit_end == len(spans)
    assert scenes[0].char_start == 0 and scenes[-1].char_end == len(text)
    for a, b in zip(scenes, scenes[1:], strict=False):
        assert a.unit_end == b.unit_start and a.char_end == b.char_start
    for sc in scenes:
        n = sc.unit_end - sc.unit_start
        assert 1 <= n <= limits.max_units
        for s, e in spans[sc.unit_start : sc.unit_end]:
            assert sc.char_start <= s <= e <= sc.char_end


def test_scenes_cut_at_paragraphs_within_limits():
    limits = SceneLimits(100, 500, 300)
    text = make_text(sentences=200, words=12, para_every=5)  # 60-unit paragraphs
    spans = word_spans(text)
    scenes = cut_scenes(text, spans, limits)
    check_cover(text, spans, scenes, limits)
    for sc in scenes[:-1]:
        assert limits.min_units <= sc.unit_end - sc.unit_start <= limits.max_units
        # units carry their leading whitespace, so a scene ends right before "\n\n"
        assert text[sc.char_end : sc.char_end + 2] == "\n\n", "a cut that is not at a paragraph end"
    assert len(scenes) == pytest.approx(len(spans) / 300, abs=2)


def test_sentence_cuts_when_paragraphs_are_too_long_and_hard_cuts_without_sentences():
    limits = SceneLimits(100, 500, 300)
    text = make_text(sentences=150, words=10, para_every=10_000)  # one huge paragraph
    spans = word_spans(text)
    scenes = cut_scenes(text, spans, limits)
    check_cover(text, spans, scenes, limits)
    assert all(text[sc.char_end - 1] == "." for sc in scenes[:-1])
    words = " ".join(["w"] * 1234)  # no sentence end at all
    spans = word_spans(words)
    scenes = cut_scenes(words, spans, limits)
    check_cover(words, spans, scenes, limits)
    assert [sc.unit_end - sc.unit_start for sc in scenes] == [500, 500, 234]


def test_short_tail_merges_and_short_documents_stay_whole():
    limits = SceneLimits(100, 500, 300)
    text = make_text(sentences=55, words=10, para_every=1)  # 550 units
    spans = word_spans(text)
    scenes = cut_scenes(text, spans, limits)
    check_cover(text, spans, scenes, limits)
    assert all(sc.unit_end - sc.unit_start >= 100 for sc in scenes)
    short = "Just a few words here."
    assert len(cut_scenes(short, word_spans(short), limits)) == 1
    assert cut_scenes("", [], limits) == []


def test_split_blocks_cover_text_and_prefer_paragraphs():
    text = make_text(sentences=400, words=10, para_every=3)
    blocks = split_blocks(text, 2000)
    assert "".join(text[a:b] for a, b in blocks) == text
    assert all(b - a <= 2000 for a, b in blocks)
    assert all(text[b - 2 : b] == "\n\n" for _, b in blocks[:-1])
    assert split_blocks("x" * 5000, 2000) == [(0, 2000), (2000, 4000), (4000, 5000)]


def test_limits_are_checked():
    with pytest.raises(ValueError, match="min_units <= target_units <= max_units"):
        SceneLimits(200, 100, 150)
