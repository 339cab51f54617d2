"""`dualmind export`: checkpoint -> safetensors + config JSON (no pickle) -> HyperCore,
same logits."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from safetensors import safe_open

from dualmind.checkpoint.export import ExportError, export_checkpoint, load_core
from dualmind.checkpoint.export_cli import add_arguments, run
from dualmind.train.loop import train
from dualmind.train.module import DualMindModule
from test_train_support import tiny_overrides


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("export-run")
    return train(tiny_overrides(run_dir, "trainer.max_steps=3", "trainer.val_check_interval=100"))


def test_export_round_trip_gives_identical_logits(trained, tmp_path):
    out = export_checkpoint(trained.last_checkpoint, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["stage"] == "core"
    assert config["lexicon_fingerprint"] == trained.lexicon_fingerprint
    assert config["model"]["dim"] == 64 and config["global_step"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "core.safetensors"]
    with safe_open(str(out / "core.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert "tok_embeddings.weight" in keys and "output.weight" not in keys  # tied: stored once

    core, meta = load_core(out, expect_lexicon=trained.lexicon_fingerprint)
    ckpt = torch.load(trained.last_checkpoint, weights_only=True)
    module = DualMindModule(
        ckpt["hyper_parameters"]["cfg"], ckpt["hyper_parameters"]["lexicon_fingerprint"]
    )
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    ids = torch.randint(0, 1024, (2, 48))
    doc_ids = (torch.arange(48) // 20).expand(2, 48)
    with torch.no_grad():
        assert torch.equal(
            core(ids, doc_ids=doc_ids).logits, module.core(ids, doc_ids=doc_ids).logits
        )
    assert core.output.weight.data_ptr() == core.tok_embeddings.weight.data_ptr()


def test_export_refuses_other_lexicon(trained, tmp_path):
    with pytest.raises(ExportError, match="lexicon"):
        export_checkpoint(trained.last_checkpoint, tmp_path / "x", expect_lexicon="ab" * 32)
    out = export_checkpoint(trained.last_checkpoint, tmp_path / "ok")
    with pytest.raises(ExportError, match="lexicon"):
        load_core(out, expect_lexicon="ab" * 32)


def test_export_cli(trained, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    # a run folder is enough: its checkpoints/last.ckpt is exported
    args = parser.parse_args([str(trained.run_dir), "--out", str(tmp_path / "cli")])
    assert run(args) == 0
    assert (tmp_path / "cli" / "core.safetensors").is_file()
    assert "exported" in capsys.readouterr().out
    assert run(parser.parse_args([str(tmp_path / "nothing")])) == 2
    assert "nothing" in capsys.readouterr().err
