"""The lexicon directory: format, fingerprint, and clear errors for bad directories."""

from __future__ import annotations

import json
import shutil

import pytest

from dualmind.lexicon.lexicon import Lexicon
from dualmind.lexicon.units import LexiconError
from test_lexicon_texts import EN, RU, corpus


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = {}
    for level in ("lossless", "semantic"):
        lex = Lexicon.build(corpus(), level=level, vocab_size=900, piece_merges=200)
        d = tmp_path_factory.mktemp(level)
        lex.save(d)
        out[level] = (lex, d)
    return out


def copy(src, tmp_path):
    dst = tmp_path / "lex"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("level", ["lossless", "semantic"])
def test_save_load_round_trip(built, level):
    lex, d = built[level]
    expected = ["README.txt", "lexicon.json", "units.tsv"]
    expected += ["surfaces.tsv"] if level == "semantic" else []
    assert sorted(p.name for p in d.iterdir()) == sorted(expected)
    loaded = Lexicon.load(d, level=level, fingerprint=lex.fingerprint)
    assert loaded.fingerprint == lex.fingerprint
    assert loaded.level == level and len(loaded) == len(lex)
    for text in EN + RU:
        assert loaded.encode(text) == lex.encode(text)
        assert loaded.decode(loaded.encode(text)) == lex.decode(lex.encode(text))


def test_directory_is_human_readable(built):
    lex, d = built["lossless"]
    header = json.loads((d / "lexicon.json").read_text())
    assert header["format"] == "dualmind-lexicon" and header["format_version"] == 1
    assert header["level"] == "lossless" and header["fingerprint"] == lex.fingerprint
    rows = (d / "units.tsv").read_text().splitlines()
    assert rows[0] == "id\tsymbol\tkind\tform\tcount\tlang\tparts"
    assert rows[1].startswith("0\tU+E000\tspecial\t\"<pad>\"")
    assert any('\tphrase\t" of the"\t' in r for r in rows)
    assert len(rows) == len(lex) + 1


def test_fingerprint_is_deterministic_and_content_sensitive():
    a = Lexicon.build(corpus(3), level="lossless", vocab_size=600, piece_merges=100)
    b = Lexicon.build(corpus(3), level="lossless", vocab_size=600, piece_merges=100)
    assert a.fingerprint == b.fingerprint
    c = Lexicon.build(corpus(3) + ["one more document about the sea"], level="lossless",
                      vocab_size=600, piece_merges=100)
    assert c.fingerprint != a.fingerprint
    d = Lexicon.build(corpus(3), level="lossless", vocab_size=599, piece_merges=100)
    assert d.fingerprint != a.fingerprint
    e = Lexicon.build(corpus(3), level="semantic", vocab_size=600, piece_merges=100)
    assert e.fingerprint != a.fingerprint


def test_wrong_level_names_file_and_key(built):
    _, d = built["lossless"]
    with pytest.raises(LexiconError, match=r"lexicon\.json: key 'level' is 'lossless' but a "
                                           r"'semantic' lexicon is expected"):
        Lexicon.load(d, level="semantic")


def test_wrong_expected_fingerprint(built):
    _, d = built["semantic"]
    with pytest.raises(LexiconError, match="key 'fingerprint'.*expected 000000"):
        Lexicon.load(d, fingerprint="0" * 64)


def test_edited_units_are_detected(built, tmp_path):
    _, src = built["lossless"]
    d = copy(src, tmp_path)
    p = d / "units.tsv"
    p.write_text(p.read_text().replace('" of the"', '" of a"'))
    with pytest.raises(LexiconError, match=r"lexicon\.json: key 'fingerprint'.*edited or corrupt"):
        Lexicon.load(d)


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda h: h.pop("level"), "key 'level' is missing"),
        (lambda h: h.update(format_version=99), "key 'format_version' is 99"),
        (lambda h: h.update(format="other"), "key 'format'"),
        (lambda h: h.update(vocab_size=5), "key 'vocab_size' is 5"),
        (lambda h: h.update(merge_rounds=[[1, 2]]), "key 'merge_rounds' has a bad range"),
        (lambda h: h.update(level="poetic"), "key 'level' is 'poetic'"),
    ],
)
def test_corrupt_header_names_the_key(built, tmp_path, edit, match):
    _, src = built["semantic"]
    d = copy(src, tmp_path)
    header = json.loads((d / "lexicon.json").read_text())
    edit(header)
    (d / "lexicon.json").write_text(json.dumps(header))
    with pytest.raises(LexiconError, match=match):
        Lexicon.load(d)


def test_bad_files(built, tmp_path):
    _, src = built["lossless"]
    with pytest.raises(LexiconError, match=r"lexicon\.json: missing"):
        Lexicon.load(tmp_path)
    d = copy(src, tmp_path)
    (d / "lexicon.json").write_text("{not json")
    with pytest.raises(LexiconError, match=r"lexicon\.json: not valid JSON"):
        Lexicon.load(d)
    shutil.rmtree(d)
    d = copy(src, tmp_path)
    rows = (d / "units.tsv").read_text().splitlines()
    rows[7] = rows[7] + "\textra"
    (d / "units.tsv").write_text("\n".join(rows) + "\n")
    with pytest.raises(LexiconError, match=r"units\.tsv:8: expected 7 columns"):
        Lexicon.load(d)
    rows[7] = rows[7].rsplit("\t", 1)[0].replace("\tbyte\t", "\tblob\t")
    (d / "units.tsv").write_text("\n".join(rows) + "\n")
    with pytest.raises(LexiconError, match=r"units\.tsv:8: column 'kind' is 'blob'"):
        Lexicon.load(d)


def test_semantic_surface_table(built, tmp_path):
    lex, src = built["semantic"]
    rows = (src / "surfaces.tsv").read_text().splitlines()
    assert rows[0] == "form\tlemmas"
    table = dict(r.split("\t") for r in rows[1:])
    assert table["Кошки"] == "кошка"
    assert table["the"] == ""  # a function word: no lemma
    d = copy(src, tmp_path)
    p = d / "surfaces.tsv"
    p.write_text(p.read_text().replace("Кошки\tкошка", "Кошки\tсобака"))
    with pytest.raises(LexiconError, match="key 'fingerprint'.*edited or corrupt"):
        Lexicon.load(d)
    p.write_text("form\tlemmas\nbroken line\n")  # no tab
    with pytest.raises(LexiconError, match=r"surfaces\.tsv:2: expected form"):
        Lexicon.load(d)
    p.unlink()
    with pytest.raises(LexiconError, match=r"surfaces\.tsv: missing"):
        Lexicon.load(d)


def test_saving_over_another_lexicon_leaves_no_stale_file(built, tmp_path):
    lossless, _ = built["lossless"]
    semantic, _ = built["semantic"]
    d = tmp_path / "lex"
    semantic.save(d)
    lossless.save(d)
    assert not (d / "surfaces.tsv").exists()
    assert Lexicon.load(d).fingerprint == lossless.fingerprint
    semantic.save(d)
    assert Lexicon.load(d, level="semantic").fingerprint == semantic.fingerprint
