"""benchmarks/baseline_samples.py: a BPE model's continuations; a checkpoint of another stage or
no checkpoint at all is refused naming the file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import baseline_samples  # noqa: E402

from dualmind.model.config import CoreConfig  # noqa: E402
from dualmind.model.core import HyperCore  # noqa: E402


def _checkpoint(path: Path, stage: str) -> Path:
    cfg = CoreConfig(vocab_size=64, dim=32, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=64,
                     max_seq_len=32)
    lm = HyperCore(cfg)
    torch.save({"dualmind": {"stage": stage, "model": cfg.to_dict()}, "global_step": 7,
                "state_dict": {f"core.{k}": v for k, v in lm.state_dict().items()}}, path)
    return path


def test_a_stage_lm_checkpoint_loads_with_its_weights_and_step(tmp_path):
    lm, step = baseline_samples.load_lm(_checkpoint(tmp_path / "lm.ckpt", "lm"))
    assert step == 7 and not lm.training
    assert lm.generate(torch.tensor([[1, 2]]), 3, temperature=0.0).ids.shape == (1, 5)


def test_a_core_checkpoint_or_a_stray_file_is_refused_naming_it(tmp_path):
    with pytest.raises(SystemExit, match=r"core\.ckpt: a checkpoint of stage 'core'"):
        baseline_samples.load_lm(_checkpoint(tmp_path / "core.ckpt", "core"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SystemExit, match=r"notes\.txt: not a readable dualmind checkpoint"):
        baseline_samples.load_lm(tmp_path / "notes.txt")


def test_a_run_folder_loads_its_last_checkpoint(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    _checkpoint(tmp_path / "checkpoints" / "last.ckpt", "lm")
    lm, step = baseline_samples.load_lm(tmp_path)
    assert step == 7 and lm.cfg.vocab_size == 64
