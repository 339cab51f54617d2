"""benchmarks/equal_compute.py on the user's own text (--train / --heldout, issue 14): the
lexicons learn from the training files only, the held-out files are the scored val split, and a
work folder refuses other inputs (its lexicons would be reused)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import equal_compute  # noqa: E402

from dualmind.data.shards import MANIFEST  # noqa: E402
from dualmind.lexicon.lexicon import Lexicon  # noqa: E402
from test_corpus_support import small_documents  # noqa: E402


def four_files(folder: Path) -> tuple[list[str], list[str]]:
    """(train, heldout): English and Russian plain-text files, one document each."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = small_documents(3)
    texts = {"en_train.txt": docs[0].text[:5000], "en_heldout.txt": docs[1].text[:2000],
             "ru_train.txt": docs[3].text + docs[4].text, "ru_heldout.txt": docs[5].text}
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return ([str(folder / "en_train.txt"), str(folder / "ru_train.txt")],
            [str(folder / "en_heldout.txt"), str(folder / "ru_heldout.txt")])


def test_the_study_reads_the_given_files(tmp_path):
    train, heldout = four_files(tmp_path / "in")
    corpora = equal_compute.build_corpora(tmp_path / "work", train, heldout)
    size = {Path(p).name: Path(p).stat().st_size for p in train + heldout}
    for level, (lex_dir, corpus) in corpora.items():
        # the lexicon saw the training bytes and nothing else
        assert Lexicon.load(lex_dir).build_info["train_bytes"] == sum(
            size[Path(p).name] for p in train), level
        splits = json.loads((corpus / MANIFEST).read_text())["splits"]
        for split, files in (("val", heldout), ("train", train)):
            by_lang = {lang: v["bytes"] for lang, v in splits[split]["langs"].items()}
            assert by_lang == {Path(p).name[:2]: size[Path(p).name] for p in files}, (level, split)
    # the same work folder on other files: refused, naming the record of its inputs
    with pytest.raises(SystemExit, match="inputs.json: this work folder was made from other"):
        equal_compute.build_corpora(tmp_path / "work", train[:1], heldout)


def test_a_heldout_file_inside_the_training_folder_is_not_learned_from(tmp_path):
    train, heldout = four_files(tmp_path / "in")
    texts = equal_compute.training_texts([str(tmp_path / "in")], heldout)
    assert sorted(texts) == sorted(Path(p).read_text(encoding="utf-8") for p in train)


def test_train_and_heldout_go_together(capsys):
    with pytest.raises(SystemExit):
        equal_compute.main(["--train", "a.txt"])
    assert "--train and --heldout go together" in capsys.readouterr().err


def test_an_override_after_heldout_is_not_taken_for_a_file(capsys, tmp_path):
    with pytest.raises(SystemExit):
        equal_compute.main(["--train", "a.txt", "--heldout", "b.txt", "decoder.copy_slots=2",
                            "--work", str(tmp_path)])
    assert "decoder.copy_slots=2: an override, not a file?" in capsys.readouterr().err
    # after `--` it is the align run's: the study goes on to read the files (missing here)
    with pytest.raises(BaseException) as err:  # noqa: PT011 - whatever the missing file raises
        equal_compute.main(["--train", str(tmp_path / "a.txt"), "--heldout",
                            str(tmp_path / "b.txt"), "--work", str(tmp_path / "w"), "--",
                            "decoder.copy_slots=2"])
    assert "an override, not a file" not in str(err.value) + capsys.readouterr().err


def test_core_share_one_for_both_levels_or_one_per_level():
    assert equal_compute.core_shares(["0.5"]) == {"semantic": 0.5, "lossless": 0.5}
    assert equal_compute.core_shares(["lossless=0.8", "semantic=0.4"]) == {
        "lossless": 0.8, "semantic": 0.4}
    for bad, says in ((["lossless=0.8"], "no share for semantic"),
                      (["lossless=1.2", "semantic=0.4"], "'lossless=1.2': a share is between"),
                      (["lossless=x", "semantic=0.4"], "'lossless=x': a share is between"),
                      (["bpe=0.5", "semantic=0.4"], "'bpe=0.5' is no LEVEL=SHARE"),
                      (["0.5", "decoder.x=1"], "'0.5' is no LEVEL=SHARE"),
                      (["lossless=0.8", "lossless=0.7"], "lossless was given a share already")):
        with pytest.raises(ValueError, match=says):
            equal_compute.core_shares(bad)


def test_a_lossless_lexicon_of_another_size_gets_folders_of_its_own(tmp_path):
    train, heldout = four_files(tmp_path / "in")
    corpora = equal_compute.build_corpora(tmp_path / "work", train, heldout, {"lossless": 400})
    lex_dir, corpus = corpora["lossless"]
    assert (lex_dir.name, corpus.name) == ("lexicon-lossless-u400", "corpus-lossless-u400")
    assert len(Lexicon.load(lex_dir)) <= 400
    assert corpora["semantic"][0].name == "lexicon-semantic"  # the other level: its default


def test_the_lossless_units_reach_the_cores_and_the_decoders_runs(tmp_path, monkeypatch):
    calls = {}

    class Stop(Exception):
        pass

    def train_two_headed(level, corpus, work, budget, share, extra, core_extra=(), runs=None,
                         lexicon=None):
        calls[level] = (share, list(extra), list(core_extra), lexicon)
        if len(calls) == 2:
            raise Stop

    monkeypatch.setattr(equal_compute, "build_corpora", lambda work, train, heldout, units: {
        level: (tmp_path / f"lexicon-{level}", tmp_path / f"corpus-{level}")
        for level in ("semantic", "lossless")})
    monkeypatch.setattr(equal_compute, "train_two_headed", train_two_headed)
    with pytest.raises(Stop):
        equal_compute.main(["--work", str(tmp_path), "--lossless-units", "4096",
                            "--core-share", "lossless=0.8", "semantic=0.35", "--", "x.y=1"])
    assert calls["lossless"] == (0.8, ["model.vocab_size=4096", "x.y=1"],
                                 ["model.vocab_size=4096"], tmp_path / "lexicon-lossless")
    assert calls["semantic"] == (0.35, ["x.y=1"], [], tmp_path / "lexicon-semantic")
