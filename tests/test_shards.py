"""The shard file format on its own: round trip, atomic write, and damage that must be reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dualmind.data.shards import (
    ShardBuilder,
    ShardError,
    ShardFile,
    ShardSet,
    read_shard_header,
    shard_name,
)


def make_shard(path, n=5, seed=0):
    rng = np.random.default_rng(seed)
    b = ShardBuilder("train", 0, ["en"])
    expected = []
    for i in range(n):
        units = int(rng.integers(1, 50))
        core = rng.integers(4, 30000, units)
        core_bytes = rng.integers(0, 9, units)
        tokens = int(rng.integers(0, 80))
        text = rng.integers(0, 8000, tokens)
        span = np.sort(rng.integers(-1, units, tokens))
        lang = "ru" if i % 2 else "en"
        kind = "qa" if i == n - 1 else "scene"
        b.add(core, core_bytes, text, span, int(core_bytes.sum()), 10 + i // 2, lang, kind)
        expected.append((core, core_bytes, text, span, lang, kind, 10 + i // 2))
    b.write(path, {"units": 0})
    return expected


def test_round_trip(tmp_path):
    path = tmp_path / shard_name("train", 0)
    assert path.name == "train-00000.shard"
    expected = make_shard(path)
    sf = ShardFile(path)
    assert sf.records == 5 and sf.langs == ["en", "ru"]
    for i, (core, core_bytes, text, span, lang, kind, doc) in enumerate(expected):
        sc = sf.scene(i)
        assert sc.core.dtype == np.int64
        np.testing.assert_array_equal(sc.core, core)
        np.testing.assert_array_equal(sc.core_bytes, core_bytes)
        np.testing.assert_array_equal(sc.text, text)
        np.testing.assert_array_equal(sc.span, span)
        assert (sc.lang, sc.kind, sc.doc, sc.n_bytes) == (lang, kind, doc, int(core_bytes.sum()))
    assert read_shard_header(path)["stats"] == {"units": 0}
    assert not list(tmp_path.glob("*.tmp*")), "the temporary file must be renamed away"
    # the data starts 64-byte aligned
    assert read_shard_header(path)["data_start"] % 64 == 0


def test_empty_shard(tmp_path):
    path = tmp_path / "val-00000.shard"
    ShardBuilder("val", 0, ["en"]).write(path)
    assert ShardFile(path).records == 0


def test_damaged_shards_are_reported_with_their_path(tmp_path):
    path = tmp_path / "train-00000.shard"
    make_shard(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])
    with pytest.raises(ShardError, match=rf"{path}: truncated shard"):
        ShardFile(path)
    path.write_bytes(b"NOTSHARD" + data[8:])
    with pytest.raises(ShardError, match=rf"{path}: not a dualmind shard"):
        ShardFile(path)
    path.write_bytes(data[:8] + (10**9).to_bytes(8, "little") + data[16:])
    with pytest.raises(ShardError, match=rf"{path}: corrupt shard header"):
        ShardFile(path)


def test_shardset_checks_sizes_and_missing_files(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    path = shards / "train-00000.shard"
    make_shard(path)
    manifest = {
        "lexicon": {"fingerprint": "ab", "level": "lossless", "vocab_size": 30000},
        "tokenizer": {"vocab_size": 8000, "file": "tokenizer.json"},
        "splits": {
            "train": {"shards": [{"file": "shards/train-00000.shard", "size": path.stat().st_size}]}
        },
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    ds = ShardSet.open(tmp_path, "train", "ab")
    assert len(ds) == 5 and ds[-1].kind == "qa" and ds.core_vocab_size == 30000
    with pytest.raises(IndexError, match="record 5 out of range for 5 records"):
        ds[5]
    with pytest.raises(ShardError, match="no packed arrays for split 'train'"):
        ds.packed_core()
    manifest["splits"]["train"]["shards"][0]["size"] += 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match=rf"{path}: size .* differs from the manifest"):
        ShardSet.open(tmp_path, "train")
    path.unlink()
    with pytest.raises(ShardError, match=rf"{path}: shard listed in the manifest is missing"):
        ShardSet.open(tmp_path, "train")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ShardError, match="unreadable manifest"):
        ShardSet.open(tmp_path, "train")
