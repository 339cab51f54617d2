"""Export of a sharded (DCP) checkpoint folder, in one process (fast; the 2-rank run is in
test_export_sharded, slow): a folder laid out as Lightning's ModelParallelStrategy writes it
(state_dict.* tensors through torch.distributed.checkpoint, the rest in meta.pt) consolidates into
safetensors equal to the source weights, one whole tensor at a time, tied matrices once."""

from __future__ import annotations

import argparse
import warnings

import pytest
import torch

from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from test_export_support import watch_resident_tensors

SHAPE = dict(vocab_size=96, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
             max_seq_len=64, tie_embeddings=True)


@pytest.fixture
def dcp_folder(tmp_path):
    import torch.distributed.checkpoint as dcp

    cfg = CoreConfig.from_dict(SHAPE)
    torch.manual_seed(3)
    core = HyperCore(cfg)
    state = {f"core.{k}": v for k, v in core.state_dict().items()}
    folder = tmp_path / "step0000007.ckpt"
    optimizer = {"state": {"core.norm.weight": {"exp_avg": torch.ones(cfg.dim)}}}
    with warnings.catch_warnings():  # "no process group: saving in a single process" - intended
        warnings.simplefilter("ignore", UserWarning)
        dcp.save({"state_dict": state, "optimizer_0": optimizer}, checkpoint_id=str(folder),
                 no_dist=True)
    torch.save({"global_step": 7, "dualmind": {"stage": "core", "lexicon_fingerprint": "ab" * 8,
                                              "model": cfg.to_dict()}}, folder / "meta.pt")
    return folder, core.state_dict()


def test_dcp_folder_exports_tensor_by_tensor(dcp_folder, tmp_path, monkeypatch):
    from dualmind.checkpoint.export import load_core
    from dualmind.checkpoint.export_cli import run

    folder, want = dcp_folder
    peak = watch_resident_tensors(monkeypatch)
    out = tmp_path / "export"
    assert run(argparse.Namespace(checkpoint=str(folder), out=str(out), lexicon=None)) == 0
    assert peak[0] == 1
    core, config = load_core(out)
    got = core.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert config["global_step"] == 7 and config["components"]["core"]["aliases"] == {
        "output.weight": "tok_embeddings.weight"}
    assert "decoder" not in config["components"]  # and no optimizer state anywhere
    from safetensors import safe_open

    with safe_open(str(out / "core.safetensors"), framework="pt") as f:
        assert set(f.keys()) == set(want) - {"output.weight"}


def test_dcp_folder_with_other_lexicon_is_refused(dcp_folder, tmp_path):
    from dualmind.checkpoint.export import ExportError, export_checkpoint

    with pytest.raises(ExportError, match="lexicon"):
        export_checkpoint(dcp_folder[0], tmp_path / "x", expect_lexicon="cd" * 8)


def test_sharded_align_checkpoint_exports_core_and_decoder(tmp_path):
    """An align run's folder holds the frozen core and the decoder: both are exported, each tied
    head stored once, and read back whole by load_component_state."""
    import torch.distributed.checkpoint as dcp

    from dualmind.checkpoint.export import export_checkpoint, load_component_state
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    core_cfg = CoreConfig.from_dict(SHAPE)
    dec_cfg = DecoderConfig(vocab_size=61, dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
                            ffn_dim=48, core_dim=32, cross_every=1, tie_embeddings=True)
    torch.manual_seed(4)
    core, decoder = HyperCore(core_cfg).state_dict(), LanguageDecoder(dec_cfg).state_dict()
    state = {**{f"core.{k}": v for k, v in core.items()},
             **{f"decoder.{k}": v for k, v in decoder.items()}}
    folder = tmp_path / "last.ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.save({"state_dict": state}, checkpoint_id=str(folder), no_dist=True)
    torch.save({"global_step": 2, "dualmind": {"stage": "align", "model": core_cfg.to_dict(),
                                              "decoder": dec_cfg.to_dict()}},
               folder / "meta.pt")
    out = export_checkpoint(folder, tmp_path / "export")
    for name, want in (("core", core), ("decoder", decoder)):
        got = load_component_state(out, name)
        assert got.keys() == want.keys(), name
        assert all(torch.equal(got[k], want[k]) for k in want), name
