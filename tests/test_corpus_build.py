"""End to end: small corpus -> lexicon -> corpus build -> ShardSet, plus resume, determinism,
bad input and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dualmind.cli import main as dualmind_main
from dualmind.data.build.corpus import build_corpus, prepare_build
from dualmind.data.build.options import CorpusError
from dualmind.data.build.plan import load_plan
from dualmind.data.build.shard_build import build_shard
from dualmind.data.schema import read_hypertrain
from dualmind.data.shards import ShardSet
from dualmind.data.text_tokenizer import load_text_tokenizer
from dualmind.lexicon.lexicon import Lexicon
from dualmind.sources.problems import InputError
from test_corpus_support import check_alignment, small_lexicon, write_corpus_inputs

OPTS = dict(num_shards=3, text_vocab_size=600, val_fraction=0.2, progress=False)


def shard_state(out: Path) -> dict[str, tuple[int, int]]:
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted((out / "shards").glob("*.shard"))
    }


def records_by_split(out: Path) -> dict[str, list]:
    by: dict[str, list] = {}
    for r in read_hypertrain(out / "hypertrain.jsonl"):
        by.setdefault(r.split, []).append(r)
    return by


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_corpus_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory):
    """One lossless build over two worker processes (the default backend)."""
    out = tmp_path_factory.mktemp("corpus") / "out"
    summary = build_corpus([inputs], small_lexicon("lossless"), out, workers=2, **OPTS)
    return out, summary


def test_end_to_end_alignment_and_manifest(built):
    out, summary = built
    lex = Lexicon.load(small_lexicon("lossless"))
    assert summary.status == "built" and summary.shards_built == 3 + 1 + 1
    m = summary.manifest
    assert m["lexicon"]["fingerprint"] == lex.fingerprint and m["lexicon"]["level"] == "lossless"
    assert m["tokenizer"]["vocab_size"] == 600 and len(m["tokenizer"]["fingerprint"]) == 16
    assert set(m["splits"]) == {"train", "val", "qa"}
    assert set(m["splits"]["val"]["langs"]) == {"en", "ru"}, "val must hold both languages"
    assert set(m["splits"]["train"]["langs"]) == {"en", "ru"}
    tok = load_text_tokenizer(out / "tokenizer.json")
    recs = records_by_split(out)
    docs_seen: dict[str, set] = {}
    for split in ("train", "val", "qa"):
        ds = ShardSet.open(out, split, lexicon_fingerprint=lex)
        assert len(ds) == len(recs[split]) == m["splits"][split]["records"] > 0
        assert check_alignment(ds, recs[split], tok, lex) == len(ds)
        assert ds.core_vocab_size == len(lex) and ds.text_vocab_size == 600
        packed = ds.packed_core()
        units, tokens = ds.lengths()
        assert len(packed.core) == len(packed.core_bytes) == len(packed.doc) == int(units.sum())
        assert int(packed.core_bytes.sum()) == m["splits"][split]["bytes"]
        assert int(tokens.sum()) == m["splits"][split]["tokens"]
        first = ds[0]
        assert (packed.core[: len(first.core)] == first.core).all()
        assert (packed.doc[: len(first.core)] == first.doc).all()
        docs_seen[split] = {sc.doc for sc in ds}
    assert not docs_seen["train"] & docs_seen["val"], "train and val must not share a document"
    # consecutive scenes of one document share its id
    docs = [r.doc for r in recs["train"]]
    assert len(set(docs)) == m["splits"]["train"]["documents"]
    assert all(
        a <= b or b not in docs[: i + 1]
        for i, (a, b) in enumerate(zip(docs, docs[1:], strict=False))
    )


def test_lossless_tokens_never_cross_a_unit(built):
    """text_tokens auto = units for a lossless lexicon: the tokens of each unit decode to exactly
    that unit's surface (but for byte units of one character, which owns it whole), so
    rendering a lossless unit is copying its own tokens."""
    out, summary = built
    assert summary.manifest["settings"]["text_tokens"] == "auto"
    lex = Lexicon.load(small_lexicon("lossless"))
    tok = load_text_tokenizer(out / "tokenizer.json")
    scenes = [sc for sc in ShardSet.open(out, "val", lexicon_fingerprint=lex) if sc.kind == "scene"]
    assert scenes
    for sc in scenes:
        said = {}
        for t, u in zip(sc.text.tolist(), sc.span.tolist(), strict=True):
            said.setdefault(u, []).append(t)
        pieces = [tok.decode(said.get(u, []), skip_special_tokens=False)
                  for u in range(len(sc.core))]
        assert b"".join(p.encode() for p in pieces) == lex.decode(sc.core.tolist()).encode()
        whole = [p for u, p in enumerate(pieces) if p and lex.unit(int(sc.core[u])).data
                 == p.encode()]
        assert len(whole) >= 0.95 * sum(1 for p in pieces if p)  # lone bytes: char-level


def test_unit_pieces_cover_the_text_in_order():
    from dualmind.data.build.shard_build import unit_pieces

    text = "ab cde  f"
    assert unit_pieces(text, [(0, 2), (2, 6), (6, 9)]) == ["ab", " cde", "  f"]
    # two byte units of one character: the last unit starting there owns it (as in align)
    assert unit_pieces("é", [(0, 1), (0, 1)]) == ["", "é"]


def test_lossless_scenes_reassemble_their_documents(built, inputs):
    out, _ = built
    docs = {}
    for line in (inputs / "docs.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        docs[d["id"]] = d["text"]
    texts: dict[str, list[str]] = {}
    for r in read_hypertrain(out / "hypertrain.jsonl"):
        if r.kind == "scene":
            texts.setdefault(r.id.rsplit("#s", 1)[0], []).append(r.text)
    for key, text in docs.items():
        assert "".join(texts[key]) == text
    lengths = [
        len(r.hyperphrase) for r in read_hypertrain(out / "hypertrain.jsonl") if r.kind == "scene"
    ]
    assert max(lengths) <= 500 and sorted(lengths)[len(lengths) // 2] >= 100


def test_rebuild_is_a_no_op_and_conflicting_settings_are_refused(built, inputs):
    out, _ = built
    before = shard_state(out)
    again = build_corpus([inputs], small_lexicon("lossless"), out, workers=2, **OPTS)
    assert again.status == "up-to-date" and shard_state(out) == before
    with pytest.raises(CorpusError, match="holds a corpus build with other settings"):
        build_corpus([inputs], small_lexicon("lossless"), out, **dict(OPTS, text_vocab_size=700))


def test_output_folder_rules(inputs, tmp_path):
    """A build stopped while planning leaves nothing behind (test_corpus_build_failures.py); a
    folder with foreign files is refused, and --overwrite removes only the build's own files."""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\n")
    out = tmp_path / "out"
    with pytest.raises(InputError, match="invalid UTF-8"):
        build_corpus([inputs, bad], small_lexicon("lossless"), out, errors="fail", **OPTS)
    assert not out.exists()
    summary = build_corpus([inputs, bad], small_lexicon("lossless"), out, backend="serial", **OPTS)
    assert summary.status == "built"
    assert summary.manifest["problems"]["counts"] == {"invalid_utf8": {"replaced": 1}}
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(
        CorpusError, match=r"holds files that are not a corpus build's \(\['notes.txt'\]\)"
    ):
        build_corpus([inputs], small_lexicon("lossless"), other, **OPTS)
    build_corpus(
        [inputs], small_lexicon("lossless"), other, backend="serial", overwrite=True, **OPTS
    )
    assert (other / "notes.txt").read_text() == "mine" and (other / "manifest.json").is_file()


def test_resume_never_rewrites_finished_shards_and_is_deterministic(built, inputs, tmp_path):
    """Plan, then build two shards alone (each from (shard_index, num_shards) only), then
    let build_corpus finish: the two are reused untouched, and the result equals a build
    done in one go, byte for byte."""
    ref, _ = built
    out = tmp_path / "out"
    plan = prepare_build([inputs], small_lexicon("lossless"), out, **OPTS)
    assert plan["splits"]["train"]["num_shards"] == 3
    build_shard(out, "train", 2, 3)
    build_shard(out, "val", 0, plan["splits"]["val"]["num_shards"])
    early = shard_state(out)
    assert set(early) == {"train-00002.shard", "val-00000.shard"}
    assert build_shard(out, "train", 2, 3)["reused"] is True
    with pytest.raises(CorpusError, match="has 3 shards; got shard 0 of 4"):
        build_shard(out, "train", 0, 4)
    summary = build_corpus([inputs], small_lexicon("lossless"), out, workers=1, **OPTS)
    assert summary.status == "resumed" and summary.shards_reused == 2 and summary.shards_built == 3
    after = shard_state(out)
    for name, state in early.items():
        assert after[name] == state, f"{name} was rewritten"
    for name in after:
        assert (out / "shards" / name).read_bytes() == (ref / "shards" / name).read_bytes(), name
    for name in ("hypertrain.jsonl", "tokenizer.json", "manifest.json"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def test_deleted_manifest_means_a_fresh_build(inputs, tmp_path):
    out = tmp_path / "out"
    build_corpus([inputs], small_lexicon("lossless"), out, backend="serial", **OPTS)
    (out / "manifest.json").unlink()
    again = build_corpus([inputs], small_lexicon("lossless"), out, backend="serial", **OPTS)
    assert again.status == "built" and again.shards_reused == 0
    assert ShardSet.open(out, "train")[0].n_bytes > 0


def test_a_failing_worker_names_its_shard(inputs, tmp_path):
    from dualmind.data.build.shard_worker import WorkerError

    out = tmp_path / "out"
    prepare_build([inputs], small_lexicon("lossless"), out, **OPTS)
    staged = out / ".build" / "documents.jsonl"
    staged.write_bytes(b"{broken" + staged.read_bytes()[7:])  # document 0 no longer parses
    with pytest.raises(WorkerError, match=r"shard (train|val)-\d{5} failed: JSONDecodeError"):
        build_corpus([inputs], small_lexicon("lossless"), out, workers=2, **OPTS)
    assert not (out / "manifest.json").exists()


def test_killed_build_continues(inputs, tmp_path):
    """SIGKILL the build after its second shard; the rerun keeps both and builds the rest."""
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal
        import dualmind.data.build.corpus as corpus
        real, done = corpus.build_shard, []
        def build_then_die(*args, **kwargs):
            stats = real(*args, **kwargs)
            done.append(args)
            if len(done) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return stats
        corpus.build_shard = build_then_die
        corpus.build_corpus([{str(inputs)!r}], {str(small_lexicon("lossless"))!r}, {str(out)!r},
                            backend="serial", **{OPTS!r})
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    survivors = shard_state(out)
    assert len(survivors) == 2 and not (out / "manifest.json").exists()
    summary = build_corpus([inputs], small_lexicon("lossless"), out, backend="serial", **OPTS)
    assert summary.status == "resumed" and summary.shards_reused == 2
    after = shard_state(out)
    assert all(after[k] == v for k, v in survivors.items())
    assert not list(out.rglob("*.tmp*"))


def test_semantic_build_alignment(inputs, tmp_path):
    out = tmp_path / "sem"
    lex_dir = small_lexicon("semantic")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"input": "What is it?", "target": "It is a ghost."})
        + "\n"
        + json.dumps({"input": "Where is the ghost of the king?", "target": "There."})
        + "\n"
    )
    summary = build_corpus(
        [inputs / "docs.jsonl", qa],
        lex_dir,
        out,
        backend="serial",
        level="semantic",
        **dict(OPTS, num_shards=1),
    )
    # a question of stopwords only has no semantic units: counted, with its file and line
    assert summary.manifest["problems"]["counts"] == {"no_units": {"skipped": 1}}
    assert summary.manifest["problems"]["examples"]["no_units"][0].startswith(f"{qa}:1: qa input")
    assert summary.manifest["splits"]["qa"]["records"] == 1
    lex = Lexicon.load(lex_dir)
    tok = load_text_tokenizer(out / "tokenizer.json")
    recs = records_by_split(out)
    assert summary.manifest["lexicon"]["level"] == "semantic"
    for split in ("train", "val", "qa"):
        ds = ShardSet.open(out, split, lex.fingerprint)
        check_alignment(ds, recs[split], tok, lex)
    # semantic units are fewer than lossless ones for the same text
    assert (
        summary.manifest["splits"]["train"]["bytes"] / summary.manifest["splits"]["train"]["units"]
        > 4
    )


def test_lexicon_level_mismatch_and_unknown_languages(inputs, tmp_path):
    with pytest.raises(
        CorpusError, match="built for level 'lossless', but level 'semantic' was requested"
    ):
        build_corpus([inputs], small_lexicon("lossless"), tmp_path / "a", level="semantic", **OPTS)
    bad = tmp_path / "langs.jsonl"
    bad.write_text(
        "\n".join(
            json.dumps(x, ensure_ascii=False)
            for x in [
                {"id": "de", "lang": "de", "text": "Guten Morgen, wie geht es dir heute?"},
                {"id": "el", "text": "Καλημέρα, τι κάνεις σήμερα;"},
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    summary = build_corpus(
        [inputs / "docs.jsonl", bad],
        small_lexicon("lossless"),
        tmp_path / "b",
        backend="serial",
        **OPTS,
    )
    problems = summary.manifest["problems"]
    assert problems["counts"]["unknown_language"] == {"skipped": 2}
    assert problems["examples"]["unknown_language"][0].startswith(
        f"{bad}:1: declared language 'de'"
    )
    assert problems["examples"]["unknown_language"][1].startswith(
        f"{bad}:2: detected language 'und'"
    )
    assert any("unknown_language: 2 skipped" in line for line in summary.lines())
    with pytest.raises(InputError, match=rf"{bad}:1: declared language 'de'"):
        build_corpus(
            [inputs / "docs.jsonl", bad],
            small_lexicon("lossless"),
            tmp_path / "c",
            backend="serial",
            errors="fail",
            **OPTS,
        )


def test_parquet_and_glob_inputs(inputs, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(x) for x in (inputs / "docs.jsonl").read_text(encoding="utf-8").splitlines()]
    pq.write_table(
        pa.table({k: [r[k] for r in rows] for k in ("id", "lang", "text")}),
        tmp_path / "docs.parquet",
    )
    summary = build_corpus(
        [str(tmp_path / "*.parquet")],
        small_lexicon("lossless"),
        tmp_path / "o",
        backend="serial",
        **OPTS,
    )
    assert summary.manifest["documents"] == len(rows)
    recs = list(read_hypertrain(tmp_path / "o" / "hypertrain.jsonl"))
    assert {r.id.rsplit("#s", 1)[0] for r in recs} == {r["id"] for r in rows}
    assert all(r.source == str(tmp_path / "docs.parquet") for r in recs)


def test_duplicate_document_ids(inputs, tmp_path):
    dup = tmp_path / "dup.jsonl"
    first = (inputs / "docs.jsonl").read_text(encoding="utf-8").splitlines()[0]
    dup.write_text(first + "\n", encoding="utf-8")
    paths = [inputs / "docs.jsonl", dup]
    summary = build_corpus(
        paths, small_lexicon("lossless"), tmp_path / "a", backend="serial", **OPTS
    )
    assert summary.manifest["problems"]["counts"] == {"duplicate_id": {"replaced": 1}}
    key = json.loads(first)["id"]
    ids = {r.id.rsplit("#s", 1)[0] for r in read_hypertrain(tmp_path / "a" / "hypertrain.jsonl")}
    assert {key, key + "~2"} <= ids
    summary = build_corpus(
        paths, small_lexicon("lossless"), tmp_path / "b", backend="serial", errors="skip", **OPTS
    )
    assert summary.manifest["problems"]["counts"] == {"duplicate_id": {"skipped": 1}}
    with pytest.raises(InputError, match=rf"{dup}:1: duplicate document id"):
        build_corpus(
            paths,
            small_lexicon("lossless"),
            tmp_path / "c",
            backend="serial",
            errors="fail",
            **OPTS,
        )


def test_bad_files_are_counted_in_the_manifest(inputs, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "docs.jsonl").write_bytes(
        (inputs / "docs.jsonl").read_bytes() + b'{"text": 3}\n{oops\n'
    )
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    (folder / "latin1.txt").write_bytes("Caf\xe9 au lait. ".encode("latin-1") * 3)
    summary = build_corpus(
        [folder], small_lexicon("lossless"), tmp_path / "out", backend="serial", **OPTS
    )
    counts = summary.manifest["problems"]["counts"]
    assert counts == {
        "binary_file": {"skipped": 1},
        "empty_file": {"skipped": 1},
        "invalid_utf8": {"replaced": 1},
        "malformed_json": {"skipped": 1},
        "wrong_type": {"skipped": 1},
    }
    texts = [r.text for r in read_hypertrain(tmp_path / "out" / "hypertrain.jsonl")]
    assert any("Caf\ufffd au lait." in t for t in texts)


def test_shardset_errors_name_the_path(built, tmp_path):
    out, _ = built
    from dualmind.data.shards import ShardError

    with pytest.raises(ShardError, match=f"{tmp_path / 'nope'}: no such corpus folder"):
        ShardSet.open(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(ShardError, match="manifest.json: missing"):
        ShardSet.open(tmp_path / "half")
    with pytest.raises(
        ShardError,
        match=f"{out}: built with lexicon fingerprint .* but lexicon fingerprint "
        "0123abcd was expected",
    ):
        ShardSet.open(out, "train", lexicon_fingerprint="0123abcd")
    with pytest.raises(ShardError, match=r"no split 'test' \(splits: \['qa', 'train', 'val'\]\)"):
        ShardSet.open(out, "test")


@pytest.mark.parametrize("damage", ["cut short", "fewer units"])
def test_a_damaged_packed_array_is_named(built, tmp_path, damage):
    """The flat core arrays (shards/<split>.core.npy ...) are read as memmaps; one cut short
    raised numpy's 'mmap length is greater than file size', naming no file (train.py printed
    that line alone)."""
    import shutil

    import numpy as np

    from dualmind.data.shards import ShardError

    out = tmp_path / "corpus"
    shutil.copytree(built[0], out)
    path = out / "shards" / "train.core.npy"
    if damage == "cut short":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        match = rf"{path}: packed array cannot be read \(mmap length.*rebuild it"
    else:
        np.save(path, np.load(path)[:-1])
        match = rf"{path}: \d+ units, the manifest says \d+; the corpus is damaged"
    with pytest.raises(ShardError, match=match):
        ShardSet.open(out, "train").packed_core()


def test_cli_build_info_validate_and_fail_policy(inputs, tmp_path, capsys):
    out = tmp_path / "cli"
    lex = str(small_lexicon("lossless"))
    rc = dualmind_main(
        [
            "corpus",
            "build",
            str(inputs / "docs.jsonl"),
            "--lexicon",
            lex,
            "--out",
            str(out),
            "--num-shards",
            "2",
            "--workers",
            "1",
            "--text-vocab-size",
            "500",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0 and "train" in printed and "bytes/unit" in printed
    assert dualmind_main(["corpus", "info", str(out), "--samples", "1", "--lexicon", lex]) == 0
    shown = capsys.readouterr().out
    assert "(en, " in shown and "(ru, " in shown and "units: " in shown
    assert dualmind_main(["corpus", "validate", str(out), "--lexicon", lex]) == 0
    assert "valid" in capsys.readouterr().out
    assert dualmind_main(["corpus", "validate", str(out / "hypertrain.jsonl")]) == 0
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff broken\n")
    rc = dualmind_main(
        [
            "corpus",
            "build",
            str(bad),
            "--lexicon",
            lex,
            "--out",
            str(tmp_path / "x"),
            "--errors",
            "fail",
            "--no-progress",
        ]
    )
    assert rc == 2 and f"{bad}:2: invalid UTF-8" in capsys.readouterr().err
    assert os.path.exists(out / "build_report.json")
    assert not (out / ".build" / "documents.jsonl").exists(), (
        "staged documents are removed after success"
    )
    assert load_plan(out)["settings"]["num_shards"] == 2


def test_cli_validate_reports_damage(built, tmp_path, capsys):
    import shutil

    out, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    lines = (copy / "hypertrain.jsonl").read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[2])
    rec["hyperphrase"] = rec["hyperphrase"][:-1]
    lines[2] = json.dumps(rec, ensure_ascii=False)
    (copy / "hypertrain.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert dualmind_main(["corpus", "validate", str(copy)]) == 2
    assert f"{copy / 'hypertrain.jsonl'}:3: n_units=" in capsys.readouterr().err
    lines[2] = "{not json"
    (copy / "hypertrain.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert dualmind_main(["corpus", "validate", str(copy / "hypertrain.jsonl")]) == 2
    assert ":3: malformed JSON" in capsys.readouterr().err
    lex = str(small_lexicon("lossless"))
    assert (
        dualmind_main(["corpus", "build", "x.txt", "--demo", "--lexicon", lex, "--out", "o"]) == 2
    )
    assert "not both" in capsys.readouterr().err
    assert dualmind_main(["corpus", "info", str(tmp_path / "none")]) == 2


def test_a_lexicon_breaking_the_span_contract_fails_loudly():
    from dualmind.data.build.alignment import check_spans

    check_spans([5, 6], [(0, 3), (3, 5)], 5, "ok")
    with pytest.raises(CorpusError, match="gave 2 ids but 1 spans for document 'doc'"):
        check_spans([5, 6], [(0, 3)], 5, "doc")
    for spans in ([(0, 3), (2, 5)], [(3, 5), (0, 3)], [(0, 3), (3, 9)], [(2, 1), (3, 4)]):
        with pytest.raises(CorpusError, match="unsorted, overlapping or outside the text"):
            check_spans([5, 6], spans, 5, "doc")
