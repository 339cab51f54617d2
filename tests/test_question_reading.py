"""benchmarks/question_reading.py: questions from the user's file, grouped by `# lang` lines; a
group too small to compare is refused naming the file."""

from __future__ import annotations

import sys
from pathlib import Path

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
