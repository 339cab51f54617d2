"""Bad-input classes of benchmarks/faults.py that had no test of their own at the command line:
a missing input, negative sizes given to the builders, a lexicon cut short, a checkpoint cut
short given to `dualmind eval`. Each exits 2 with one line naming what is wrong, and makes
nothing (the other classes' tests are listed in benchmarks/RESULTS.md, section Reliability)."""

from __future__ import annotations

import re
import shutil

import pytest
import torch

from dualmind.cli import main as dualmind_main
from test_corpus_support import small_lexicon

QUIET = ["--workers", "1", "--no-progress"]


def _good(tmp_path):
    path = tmp_path / "good.txt"
    path.write_text("The quick brown fox jumps over the lazy dog. " * 20 + "\n")
    return path


def test_corpus_build_of_a_missing_file_exits_2_and_makes_nothing(tmp_path, capsys):
    out = tmp_path / "corpus"
    rc = dualmind_main(["corpus", "build", str(tmp_path / "nosuch.txt"), "--lexicon",
                        str(small_lexicon("lossless")), "--out", str(out), *QUIET])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"error: {tmp_path / 'nosuch.txt'}: no such file or folder " \
                              "[empty_input]\n"
    assert not out.exists()


@pytest.mark.parametrize("command, option, message", [
    ("corpus", ["--num-shards", "-1"], "num_shards must be >= 1, got -1"),
    ("corpus", ["--val-fraction", "-0.5"], r"val_fraction must be in \[0, 1\), got -0.5"),
    ("corpus", ["--max-line-bytes", "-5"], "max_line_bytes must be >= 4, got -5"),
    ("lexicon", ["--vocab-size", "-5"], r"vocab_size must be in \[260, \d+\], got -5"),
])
def test_negative_sizes_are_refused_by_the_builders(tmp_path, capsys, command, option,
                                                    message):
    out = tmp_path / "out"
    lexicon = ["--lexicon", str(small_lexicon("lossless"))] if command == "corpus" else []
    rc = dualmind_main([command, "build", str(_good(tmp_path)), *lexicon, "--out", str(out),
                        "--no-progress", *option])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(message, err), err
    assert not out.exists()


def test_a_lexicon_cut_short_stops_corpus_build_naming_the_line(tmp_path, capsys):
    lexicon = tmp_path / "lexicon"
    shutil.copytree(small_lexicon("lossless"), lexicon)
    units = lexicon / "units.tsv"
    data = units.read_bytes()
    units.write_bytes(data[: len(data) // 2])
    out = tmp_path / "corpus"
    rc = dualmind_main(["corpus", "build", str(_good(tmp_path)), "--lexicon", str(lexicon),
                        "--out", str(out), *QUIET])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and f"{units}:" in err, err
    assert "expected 7 columns" in err or "column" in err
    assert not out.exists()


def test_eval_of_a_checkpoint_cut_short_exits_2_naming_it(tmp_path, capsys):
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(4096)}, "dualmind": {"stage": "align"}}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:4000])
    rc = dualmind_main(["eval", str(ckpt), "--data", str(tmp_path)])
    out = capsys.readouterr().out  # eval prints its errors on stdout (the others: stderr)
    assert rc == 2 and out.startswith(f"dualmind eval: {ckpt}: not a readable dualmind "
                                      "checkpoint"), out
