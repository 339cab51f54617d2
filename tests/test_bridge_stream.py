"""Pieces of generation on their own: the thought against the model's own greedy generate,
streaming text that never splits a UTF-8 character, first-word timing, and top-k/top-p."""

from __future__ import annotations

import pytest
import torch

from dualmind.bridge.rendering import TextStream
from dualmind.bridge.sampling import pick
from dualmind.bridge.thinking import think
from test_bridge_toy import build_toy

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy():
    return build_toy()


def test_a_greedy_thought_is_the_cores_own_greedy_generation(toy):
    lexicon, _, core, _ = toy
    ctx = lexicon.encode("Captain Ostrava collects porcelain owls in the attic.")
    thought = think(core, ctx, 12, temperature=0.0, stop_ids=())
    reference = core.generate(torch.tensor([ctx]), 12, temperature=0.0)
    assert thought.ids == reference.ids[0, len(ctx):].tolist()


def test_streamed_pieces_are_whole_characters_and_add_up(toy):
    _, tok, _, _ = toy
    text = "Ночь была тёмной, the zebra Quillon — ёж!"
    pieces: list[str] = []
    stream = TextStream(tok, pieces.append)
    for t in tok.encode(text, add_special_tokens=False).ids:
        stream.push(t)
    stream.close()
    assert "".join(pieces) == text == stream.text
    assert all("\ufffd" not in p for p in pieces)
    assert stream.first_word_at is not None


def test_no_first_word_without_a_word(toy):
    _, tok, _, _ = toy
    stream = TextStream(tok, None)
    for t in tok.encode(" , ; ", add_special_tokens=False).ids:
        stream.push(t)
    stream.close()
    assert stream.first_word_at is None


def test_top_k_and_top_p_keep_only_the_likeliest():
    logits = torch.tensor([5.0, 4.9, 0.0, -1.0, -2.0])
    gen = torch.Generator().manual_seed(0)
    assert {pick(logits, 1.0, top_k=2, generator=gen) for _ in range(200)} == {0, 1}
    assert {pick(logits, 1.0, top_p=0.3, generator=gen) for _ in range(50)} == {0}
    assert pick(logits, 0.0) == 0
    drawn = {pick(logits, 5.0, generator=gen) for _ in range(300)}
    assert len(drawn) >= 4  # a high temperature without filters reaches the unlikely ids
