"""`dualmind lexicon build|encode|decode|info`, driven through the module's run()."""

from __future__ import annotations

import argparse
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dualmind.lexicon import cli
from dualmind.lexicon.lexicon import Lexicon
from test_lexicon_texts import EN, RU


def call(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(list(argv)))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    (d / "txt").mkdir()
    for i, t in enumerate(EN * 3):
        (d / "txt" / f"en{i}.txt").write_text(t, encoding="utf-8")
    with (d / "ru.jsonl").open("w", encoding="utf-8") as f:
        for t in RU * 3:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    pq.write_table(pa.table({"text": EN + RU}), d / "mix.parquet")
    return d


def test_build_from_folder_jsonl_and_parquet(inputs, tmp_path, capsys):
    out = tmp_path / "lex"
    rc = call("build", str(inputs / "txt"), str(inputs / "*.jsonl"), str(inputs / "mix.parquet"),
              "--level", "semantic", "--vocab-size", "700", "--piece-merges", "100",
              "--out", str(out), "--no-progress")
    assert rc == 0
    printed = capsys.readouterr().out
    assert "lexicon semantic" in printed and "read 32 documents" in printed
    assert "input problems: none" in printed
    lex = Lexicon.load(out, level="semantic")
    assert len(lex) <= 700
    assert lex.build_info["train_docs"] == 32  # 12 txt + 12 jsonl + 8 parquet


def test_encode_decode_info(inputs, tmp_path, capsys):
    out = tmp_path / "lex"
    assert call("build", str(inputs), "--vocab-size", "800", "--piece-merges", "100",
                "--out", str(out), "--no-progress") == 0
    capsys.readouterr()
    text = "Ночью было темно. The night was dark."
    assert call("encode", "--lexicon", str(out), text) == 0
    hyperphrase = capsys.readouterr().out.rstrip("\n")
    lex = Lexicon.load(out)
    assert hyperphrase == lex.to_hyperphrase(lex.encode(text))
    assert call("decode", "--lexicon", str(out), hyperphrase) == 0
    assert capsys.readouterr().out == text + "\n"
    assert call("encode", "--lexicon", str(out), "--format", "ids", text) == 0
    ids = capsys.readouterr().out.split()
    assert call("decode", "--lexicon", str(out), "--ids", " ".join(ids)) == 0
    assert capsys.readouterr().out == text + "\n"
    assert call("info", str(out)) == 0
    info = capsys.readouterr().out
    assert "lossless lexicon" in info and lex.fingerprint in info and "phrase" in info


def test_bad_input_policy(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "good line about the night"}\n{"text": 5}\nnot json\n')
    out = tmp_path / "lex"
    assert call("build", str(bad), "--out", str(out), "--errors", "fail", "--no-progress") == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err
    assert call("build", str(bad), "--out", str(out), "--errors", "skip", "--no-progress") == 0
    printed = capsys.readouterr().out
    assert "2 skipped" in printed
    assert call("build", "--out", str(out)) == 2
    assert "--demo" in capsys.readouterr().err
    assert call("build", str(tmp_path / "missing*.txt"), "--out", str(out)) == 2
    assert "matches no files" in capsys.readouterr().err


def test_load_errors_are_reported_not_raised(tmp_path, capsys):
    assert call("info", str(tmp_path)) == 2
    assert "lexicon.json: missing" in capsys.readouterr().err


@pytest.mark.parametrize("content, errors, kind", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "replace", "binary_file"),
    (b"", "replace", "empty_file"),
    (b'{"body": "no text key"}\n{"text": 5}\n', "skip", "missing_text"),
])
def test_build_with_no_usable_documents_fails_and_writes_nothing(tmp_path, capsys, content,
                                                                   errors, kind):
    bad = tmp_path / ("input.jsonl" if content.startswith(b"{") else "input.bin")
    bad.write_bytes(content)
    out = tmp_path / "lex"
    assert call("build", str(bad), "--out", str(out), "--errors", errors, "--no-progress") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: build: no usable documents in the inputs (1 files), "
                          "no lexicon written; ")
    assert f"{kind}: 1 skipped (e.g. {bad}" in err
    assert not out.exists()


def test_build_max_line_bytes_is_the_corpus_builds(tmp_path, capsys):
    path = tmp_path / "records.jsonl"
    record = json.dumps({"text": "night " * 300}) + "\n"
    path.write_text(record)
    out = tmp_path / "lex"
    args = ("build", str(path), "--out", str(out), "--vocab-size", "300", "--no-progress")
    assert call(*args, "--max-line-bytes", "1000") == 2
    assert f"{path}:1: line of {len(record)} bytes is longer than max_line_bytes=1000" in \
        capsys.readouterr().err and not out.exists()
    assert call(*args, "--max-line-bytes", str(len(record))) == 0
    assert "read 1 documents" in capsys.readouterr().out
    assert call(*args, "--max-line-bytes", "2") == 2
    assert "max_line_bytes must be >= 4, got 2" in capsys.readouterr().err


def test_encode_shows_a_terminal_the_gloss_and_a_pipe_the_symbols(inputs, tmp_path):
    """Run as a person would: stdout a pseudo-terminal, then a pipe."""
    import os
    import subprocess
    import sys

    out = tmp_path / "lex"
    assert call("build", str(inputs), "--vocab-size", "800", "--piece-merges", "100",
                "--out", str(out), "--no-progress") == 0
    lex = Lexicon.load(out)
    text = "The night was dark."
    ids = lex.encode(text)
    argv = [sys.executable, "-m", "dualmind.lexicon.cli", "encode", "--lexicon", str(out), text]

    def on_terminal(*extra: str) -> str:
        master, slave = os.openpty()
        try:
            subprocess.run([*argv, *extra], stdout=slave, stderr=subprocess.DEVNULL,
                           timeout=60, check=True)
            return os.read(master, 1 << 16).decode("utf-8").replace("\r\n", "\n")
        finally:
            os.close(master)
            os.close(slave)

    assert on_terminal() == "·".join(map(lex.gloss, ids)) + "\n"
    assert on_terminal("--format", "hyperphrase") == lex.to_hyperphrase(ids) + "\n"
    piped = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    assert piped.stdout == lex.to_hyperphrase(ids) + "\n" and piped.stderr == ""


def test_the_default_size_fits_the_default_training_config(inputs, tmp_path, capsys):
    """`lexicon build` with no --vocab-size makes a lexicon the default recipe's core can read
    (it defaulted to 32,768 units while core_mini's model.vocab_size is 16,384)."""
    from dualmind.config.schema import compose

    for overrides in ([], ["recipe=core_mini"], ["recipe=decoder_align"]):
        assert cli.CLI_VOCAB_SIZE <= compose(overrides).model.vocab_size, overrides
    out = tmp_path / "lex"
    assert call("build", str(inputs / "txt"), "--out", str(out), "--no-progress") == 0
    lex = Lexicon.load(out)
    assert lex.options["vocab_size"] == cli.CLI_VOCAB_SIZE
    assert f"a core trains on it with model.vocab_size >= {len(lex)}" in capsys.readouterr().out


def test_keep_function_words_keeps_them_in_the_hyperphrase(inputs, tmp_path, capsys):
    kept, dropped = tmp_path / "kept", tmp_path / "dropped"
    for out, extra in ((kept, ["--keep-function-words"]), (dropped, [])):
        assert call("build", str(inputs / "txt"), "--level", "semantic", "--vocab-size", "700",
                    "--piece-merges", "100", "--out", str(out), "--no-progress", *extra) == 0
    text = "The night was dark and the door was open."
    said = {out.name: Lexicon.load(out).decode(Lexicon.load(out).encode(text)).replace(
        "·", " ").split() for out in (kept, dropped)}
    assert "the" in said["kept"] and "be" in said["kept"]  # "was" said as its lemma
    assert "the" not in said["dropped"] and "be" not in said["dropped"]
    assert Lexicon.load(kept).stopwords == {"en": [], "ru": []}
    capsys.readouterr()
    assert call("build", str(inputs / "txt"), "--keep-function-words", "--out",
                str(tmp_path / "x"), "--no-progress") == 2  # the lossless level keeps them anyway
    assert "--keep-function-words is for --level semantic" in capsys.readouterr().err
