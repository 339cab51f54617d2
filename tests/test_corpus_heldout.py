"""`corpus build --heldout`: the user names the val documents (issue 14, "On anyone's data").

With four plain files (English and Russian, train and held-out), one document each, the hashed
split used to pick val documents by the hash of their file names, and could hold out the training
files. With --heldout the held-out files are val, and nothing else is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dualmind.cli import main as dualmind_main
from dualmind.data.build.corpus import build_corpus
from dualmind.data.build.options import BuildOptions, CorpusError
from dualmind.data.build.plan import choose_val, load_plan
from dualmind.data.schema import read_hypertrain
from dualmind.lexicon.lexicon import Lexicon
from test_corpus_support import small_documents, small_lexicon

OPTS = dict(num_shards=1, text_vocab_size=500, workers=1, progress=False)


def four_files(folder: Path) -> dict[str, Path]:
    """{name: path}: en/ru train and held-out, one plain-text document each, all different."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = small_documents(3)
    texts = {
        "en_train.txt": docs[0].text[:6000],
        "en_heldout.txt": docs[1].text[:3000],
        "ru_train.txt": docs[3].text + docs[4].text,
        "ru_heldout.txt": docs[5].text,
    }
    assert [d.lang for d in docs[:2]] == ["en", "en"] and docs[5].lang == "ru"
    paths = {}
    for name, text in texts.items():
        paths[name] = folder / name
        paths[name].write_text(text, encoding="utf-8")
    return paths


def split_texts(out: Path) -> dict[str, dict[str, str]]:
    """{split: {document id: its scenes' text joined}} from hypertrain.jsonl."""
    by: dict[str, dict[str, str]] = {}
    for rec in read_hypertrain(out / "hypertrain.jsonl"):
        doc = rec.id.rsplit("#s", 1)[0]
        by.setdefault(rec.split, {}).setdefault(doc, "")
        by[rec.split][doc] += rec.text
    return by


def test_the_heldout_files_are_the_val_split_and_nothing_else_is(tmp_path):
    files = four_files(tmp_path / "in")
    out = tmp_path / "corpus"
    summary = build_corpus(
        [files["en_train.txt"], files["ru_train.txt"]], small_lexicon("lossless"), out,
        heldout=[str(files["en_heldout.txt"]), str(files["ru_heldout.txt"])], **OPTS,
    )
    by = split_texts(out)
    assert set(by["val"]) == {"en_heldout.txt", "ru_heldout.txt"}
    assert set(by["train"]) == {"en_train.txt", "ru_train.txt"}
    for split, docs in by.items():  # lossless: the scenes give the files back exactly
        for doc, text in docs.items():
            assert text == files[doc].read_text(encoding="utf-8"), (split, doc)
    val = summary.manifest["splits"]["val"]
    assert sorted(val["langs"]) == ["en", "ru"] and val["documents"] == 2
    assert "  val: the documents of the 2 --heldout files" in summary.lines()
    # the held-out files are part of the build's identity: another choice is another build
    with pytest.raises(CorpusError, match="other settings"):
        build_corpus([files["en_train.txt"], files["ru_train.txt"], files["ru_heldout.txt"]],
                     small_lexicon("lossless"), out, heldout=[str(files["en_heldout.txt"])],
                     **OPTS)


def test_a_heldout_file_among_the_inputs_is_held_out(tmp_path):
    files = four_files(tmp_path / "in")
    out = tmp_path / "corpus"
    build_corpus([tmp_path / "in"], small_lexicon("lossless"), out,
                 heldout=[str(tmp_path / "in" / "*_heldout.txt")], **OPTS)
    by = split_texts(out)
    assert set(by["val"]) == {"en_heldout.txt", "ru_heldout.txt"}
    assert set(by["train"]) == {"en_train.txt", "ru_train.txt"}
    assert load_plan(out)["settings"]["heldout"] == sorted(
        str(files[n].resolve()) for n in ("en_heldout.txt", "ru_heldout.txt"))


def test_heldout_refusals_name_the_problem(tmp_path):
    files = four_files(tmp_path / "in")
    lex = small_lexicon("lossless")
    with pytest.raises(CorpusError, match="training inputs must be named too"):
        build_corpus(None, lex, tmp_path / "a", heldout=[str(files["en_heldout.txt"])], **OPTS)
    with pytest.raises(CorpusError, match="nothing is left to train on"):
        build_corpus([files["en_train.txt"]], lex, tmp_path / "b",
                     heldout=[str(files["en_train.txt"])], **OPTS)
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"input": "Who is there?", "target": "Nay, answer me.",
                              "lang": "en"}) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"{qa}:1: a held-out file .* holds a question"):
        build_corpus([files["en_train.txt"]], lex, tmp_path / "c", heldout=[str(qa)], **OPTS)
    with pytest.raises(CorpusError, match="heldout must be a list of paths"):
        build_corpus([files["en_train.txt"]], lex, tmp_path / "d",
                     heldout=str(files["en_heldout.txt"]), **OPTS)
    assert not any((tmp_path / x).exists() for x in "abcd")


def test_cli_heldout_and_val_fraction(tmp_path, capsys):
    files = four_files(tmp_path / "in")
    base = ["corpus", "build", str(files["en_train.txt"]), str(files["ru_train.txt"]),
            "--lexicon", str(small_lexicon("lossless")), "--num-shards", "1", "--workers", "1",
            "--text-vocab-size", "500", "--no-progress"]
    held = ["--heldout", str(files["en_heldout.txt"]), str(files["ru_heldout.txt"])]
    rc = dualmind_main([*base, "--out", str(tmp_path / "x"), *held, "--val-fraction", "0.1"])
    assert rc == 2 and "give --heldout or --val-fraction, not both" in capsys.readouterr().err
    assert dualmind_main([*base, "--out", str(tmp_path / "cli"), *held]) == 0
    printed = capsys.readouterr().out
    assert "val: the documents of the 2 --heldout files" in printed
    # the build names the training settings its lexicon and tokenizer need
    vocab = len(Lexicon.load(small_lexicon("lossless")))
    assert f"train with model.vocab_size >= {vocab} (core, align)" in printed
    assert set(split_texts(tmp_path / "cli")["val"]) == {"en_heldout.txt", "ru_heldout.txt"}


def test_builds_without_heldout_keep_their_settings():
    """A build made before --heldout existed keeps its settings hash (it is not rebuilt)."""
    assert "heldout" not in BuildOptions().settings()
    assert BuildOptions(heldout=("/x/val.txt",)).settings()["heldout"] == ["/x/val.txt"]


def test_val_fraction_applies_to_each_language_apart():
    """A small language gets its share of val, however large the other one is."""
    rows = [{"doc": i, "key": f"en{i}", "lang": "en", "kind": "doc", "chars": 1000}
            for i in range(20)]
    rows += [{"doc": 20 + i, "key": f"ru{i}", "lang": "ru", "kind": "doc", "chars": 10}
             for i in range(20)]
    val = choose_val(rows, 0.2)
    for lang in ("en", "ru"):
        mine = [r for r in rows if r["lang"] == lang]
        held = sum(r["chars"] for r in mine if r["doc"] in val)
        total = sum(r["chars"] for r in mine)
        # whole documents until the share is reached: at least it, less than one document over
        assert 0.2 * total <= held < 0.2 * total + mine[0]["chars"], lang
