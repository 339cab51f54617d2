"""benchmarks/index_pooling.py: the user's planted facts, one `fact<TAB>question` a line; a
malformed line is refused naming the file and the line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import index_pooling  # noqa: E402


def test_planted_facts_are_read_from_a_tsv_file(tmp_path):
    path = tmp_path / "facts.tsv"
    path.write_text("Anna keeps bees.\tWhat does Anna keep?\n\nОлег пьёт чай.\tЧто пьёт Олег?\n",
                    encoding="utf-8")
    assert index_pooling.read_planted(path) == [
        ("Anna keeps bees.", "What does Anna keep?"), ("Олег пьёт чай.", "Что пьёт Олег?")]


def test_a_line_without_its_question_is_refused_naming_file_and_line(tmp_path):
    path = tmp_path / "facts.tsv"
    path.write_text("Anna keeps bees.\tWhat does Anna keep?\nOleg drinks tea.\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"facts\.tsv:2: expected `fact<TAB>question`"):
        index_pooling.read_planted(path)


def test_layers_are_block_numbers_or_final():
    assert index_pooling.parse_layers("final,0,3") == [None, 0, 3]
    with pytest.raises(SystemExit, match="--layers"):
        index_pooling.parse_layers("0,last")
