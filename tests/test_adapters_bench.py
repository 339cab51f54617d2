"""benchmarks/adapt.py end to end on the tiny corpus and core (slow: three short trainings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from test_adapters_support import qa_corpus, write_core_checkpoint
from test_train_support import TINY_MODEL

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_adapt_benchmark_writes_its_section(tmp_path):
    ckpt = write_core_checkpoint(tmp_path / "core.ckpt")
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n")
    code = subprocess.call([
        sys.executable, str(REPO / "benchmarks" / "adapt.py"), "--core", str(ckpt),
        "--corpus", str(qa_corpus()), "--steps", "3", "--seq-len", "64", "--scene-seqs", "4",
        "--out", str(tmp_path / "out"), "--results", str(results),
        "--variants", "none,lora,unfreeze-1",
        "--extra-overrides", ",".join([*TINY_MODEL, "data.batch_size=2"])])
    assert code == 0
    text = results.read_text()
    assert "kept" in text and "<!-- adapt:start -->" in text
    data = json.loads((tmp_path / "out" / "adapt.json").read_text())["variants"]
    assert set(data) == {"none", "lora", "unfreeze-1"}
    assert data["none"]["trainable"] == 0
    assert 0 < data["lora"]["trainable"] < data["unfreeze-1"]["trainable"]
    for name in data:
        assert f"| {name} |" in text
