"""What a failed `corpus build` leaves behind: nothing, while it had not made its plan (nothing
could be resumed); from the plan on, the unfinished build, named as such in the error and
resumed by the same command."""

from __future__ import annotations

import pytest

import dualmind.data.build.plan as build_plan
from dualmind.cli import main as dualmind_main
from dualmind.data.build.corpus import build_corpus, prepare_build
from dualmind.data.build.options import CorpusError
from dualmind.sources.problems import InputError
from test_corpus_support import small_lexicon, write_corpus_inputs

OPTS = dict(num_shards=2, text_vocab_size=500, val_fraction=0.2, progress=False)
CLI_OPTS = ["--num-shards", "2", "--text-vocab-size", "500", "--val-fraction", "0.2",
            "--workers", "1", "--no-progress"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_corpus_inputs(tmp_path_factory.mktemp("inputs"), per_lang=3)


def test_a_build_failing_while_planning_removes_the_folders_it_made(inputs, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\n")
    out = tmp_path / "new" / "nested" / "out"
    with pytest.raises(InputError, match="invalid UTF-8"):
        build_corpus([inputs, bad], small_lexicon("lossless"), out, errors="fail", **OPTS)
    assert not (tmp_path / "new").exists()


def test_a_build_failing_in_an_existing_folder_removes_only_its_own_files(inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CorpusError, match="no usable documents"):
        build_corpus([inputs / "qa.jsonl"], small_lexicon("lossless"), out, **OPTS)
    assert out.is_dir() and list(out.iterdir()) == []


def test_an_interrupted_plan_leaves_nothing(inputs, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        (tmp_path / "out" / ".build" / "documents.jsonl.tmp1").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(build_plan, "stage_documents", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_corpus([inputs], small_lexicon("lossless"), tmp_path / "out", **OPTS)
    assert not (tmp_path / "out").exists()


def test_cli_no_documents_exits_2_and_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
    out = tmp_path / "corpus"
    rc = dualmind_main(["corpus", "build", str(tmp_path / "photo.png"), "--lexicon",
                        str(small_lexicon("lossless")), "--out", str(out), *CLI_OPTS])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: no usable documents in the inputs (1 files); ")
    assert "binary_file: 1 skipped" in err and "keeps the unfinished build" not in err
    assert not out.exists()


def test_a_build_failing_after_its_plan_is_kept_and_resumed(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    lex = str(small_lexicon("lossless"))
    prepare_build([inputs], lex, out, **OPTS)
    staged = out / ".build" / "documents.jsonl"
    good = staged.read_bytes()
    staged.write_bytes(b"{broken" + good[7:])  # document 0 no longer parses: its shard fails
    argv = ["corpus", "build", str(inputs), "--lexicon", lex, "--out", str(out), *CLI_OPTS,
            "--workers", "2"]  # the process backend: a shard's failure is a WorkerError
    assert dualmind_main(argv) == 2
    err = capsys.readouterr().err
    assert "failed: JSONDecodeError" in err
    assert err.rstrip().endswith(
        f"({out} keeps the unfinished build and its finished shards: fix the cause and rerun "
        "the same command to resume it)"
    )
    assert (out / ".build" / "plan.json").is_file() and not (out / "manifest.json").exists()
    assert dualmind_main(["corpus", "info", str(out)]) == 2
    assert "unfinished corpus build" in capsys.readouterr().err
    staged.write_bytes(good)
    assert dualmind_main(argv) == 0
    assert "resumed" in capsys.readouterr().out and (out / "manifest.json").is_file()
