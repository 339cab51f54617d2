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
