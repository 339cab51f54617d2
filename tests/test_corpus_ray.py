"""The Ray Data backend runs the same per-shard function on a local Ray instance and gives the
same bytes as the serial backend. ~15 s on 2 cores (Ray starts in ~8 s), so it stays in the
default suite; the per-shard function itself is also covered by test_corpus_build.py."""

from __future__ import annotations

import pytest

from dualmind.data.build.corpus import build_corpus
from dualmind.data.shards import ShardSet
from test_corpus_support import small_lexicon, write_corpus_inputs

ray = pytest.importorskip("ray")


def test_ray_backend_matches_local_build(tmp_path):
    inputs = write_corpus_inputs(tmp_path / "in", per_lang=3)
    opts = dict(num_shards=2, text_vocab_size=500, val_fraction=0.3, progress=False)
    local = build_corpus(
        [inputs], small_lexicon("lossless"), tmp_path / "local", backend="serial", **opts
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = build_corpus(
            [inputs], small_lexicon("lossless"), tmp_path / "ray", backend="ray", **opts
        )
    finally:
        ray.shutdown()
    assert on_ray.shards_built == local.shards_built > 1
    for entry in on_ray.manifest["splits"]["train"]["shards"]:
        name = entry["file"]
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert (tmp_path / "ray" / "hypertrain.jsonl").read_bytes() == (
        tmp_path / "local" / "hypertrain.jsonl"
    ).read_bytes()
    assert len(ShardSet.open(tmp_path / "ray", "val")) > 0
