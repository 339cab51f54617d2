"""benchmarks/question_reading.py: questions from the user's file, grouped by `# lang` lines; a
group too small to compare is refused naming the file; the counted bigram peer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import question_reading  # noqa: E402


def test_questions_are_grouped_by_their_lang_lines(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("# en\nWho is the king?\n\nWhere is my sword?\n# ru\nКто там?\nГде ты?\n",
                    encoding="utf-8")
    assert question_reading.read_questions(path) == {
        "en": ["Who is the king?", "Where is my sword?"], "ru": ["Кто там?", "Где ты?"]}


def test_a_group_of_one_question_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("# en\nWho is the king?\n# ru\nКто там?\nГде ты?\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"q\.txt.*\ben\b"):
        question_reading.read_questions(path)


def test_the_counted_bigram_is_a_distribution_and_learns_what_follows():
    cycle = np.array([3, 1, 4, 1, 5] * 40)
    peer = question_reading.CountedBigram([cycle, np.array([2, 0, 2])], vocab=7)
    for prev in range(7):  # every context, seen or not, spreads exactly one unit of mass
        pb, pu = peer.probs(np.full(7, prev), np.arange(7))
        assert pb.sum() == pytest.approx(1.0) and pu.sum() == pytest.approx(1.0)
    pb, pu = peer.probs(cycle[:-1], cycle[1:])
    assert np.log(pb).mean() > np.log(pu).mean() + 0.5  # 4 follows 1 half the time, 1 follows 3
    assert peer.probs(np.array([3]), np.array([1]))[0][0] > 0.95


def test_a_scene_is_scored_through_the_cores_head_with_its_unit_pieces():
    """A core with unit pieces predicts with its composed rows: reading its raw output rows
    (what scene_reading did) scores another model."""
    import torch

    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    torch.manual_seed(0)
    core = HyperCore(CoreConfig(vocab_size=6, dim=16, n_layers=1, n_heads=2, ffn_dim=32,
                                max_seq_len=16, tie_embeddings=True, unit_pieces=2,
                                piece_vocab=4)).eval()
    core.unit_pieces.set_table(torch.tensor([[-1, -1], [0, -1], [0, 1], [2, 1], [-1, -1],
                                             [3, 3]]))
    ids = torch.tensor([[1, 2, 3, 5, 2]])
    with torch.no_grad():
        want = core(ids).logits[0].float().log_softmax(-1)
    assert torch.allclose(question_reading.scene_logprobs(core, ids), want, atol=1e-5)


def test_costs_are_averaged_by_the_predicted_symbols_position():
    first = np.arange(1.0, 101.0)  # the symbol at position j + 1 costs j + 1
    short = np.array([10.0, 20.0])  # a scene of three symbols reaches positions 1 and 2 only
    means = question_reading.by_position([first, short])
    assert means[0] == pytest.approx((1 + 10) / 2)  # position 1, both scenes
    assert means[1] == pytest.approx((2 + 3 + 4 + 20) / 4)  # positions 2-4
    assert means[2] == pytest.approx(np.mean(np.arange(5, 17)))  # only the long scene
    assert means[4] == pytest.approx(np.mean(np.arange(65, 101)))
    assert np.isnan(question_reading.by_position([short])[2])  # a bucket no scene reaches
    assert [question_reading.bucket_name(*b) for b in question_reading.POSITION_BUCKETS] == [
        "1", "2-4", "5-16", "17-64", "65+"]


def test_a_peer_lm_without_the_corpus_it_reads_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="--peer-lm reads the scenes of --corpus"):
        question_reading.main([str(tmp_path / "lex"), str(tmp_path / "core.ckpt"),
                               "--peer-lm", str(tmp_path / "lm.ckpt")])
