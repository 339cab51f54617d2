"""dualmind.checkpoint.sharded_load in one process (fast): the three kinds of core checkpoint fill
a plain core exactly, and a wrong shape, a missing path or another lexicon fail with the path and
key. (The 2-rank sharded fill is in test_export_sharded and test_fsdp_align.)"""

from __future__ import annotations

import pytest
import torch

from dualmind.checkpoint.frozen_core import CoreCheckpointError
from dualmind.checkpoint.sharded_load import core_checkpoint_meta, load_core_shards
from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore

SHAPE = dict(vocab_size=96, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
             max_seq_len=64, tie_embeddings=True)
LEXICON = "ab" * 8


@pytest.fixture
def sources(tmp_path):
    """(the weights, {kind: path}) for a .ckpt file, its export folder, and a DCP folder."""
    import warnings

    import torch.distributed.checkpoint as dcp

    from dualmind.checkpoint.export import export_checkpoint

    cfg = CoreConfig.from_dict(SHAPE)
    torch.manual_seed(5)
    state = HyperCore(cfg).state_dict()
    meta = {"stage": "core", "lexicon_fingerprint": LEXICON, "model": cfg.to_dict()}
    ckpt = tmp_path / "core.ckpt"
    torch.save({"state_dict": {f"core.{k}": v for k, v in state.items()}, "dualmind": meta,
                "global_step": 3}, ckpt)
    folder = tmp_path / "dcp.ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no process group: one process, intended
        dcp.save({"state_dict": {f"core.{k}": v for k, v in state.items()}},
                 checkpoint_id=str(folder), no_dist=True)
    torch.save({"dualmind": meta, "global_step": 3}, folder / "meta.pt")
    return state, {"ckpt": ckpt, "export": export_checkpoint(ckpt, tmp_path / "export"),
                   "dcp": folder}


@pytest.mark.parametrize("kind", ["ckpt", "export", "dcp"])
def test_each_kind_fills_the_core_exactly(sources, kind):
    state, paths = sources
    core = HyperCore(CoreConfig.from_dict(SHAPE))
    with torch.no_grad():
        for p in core.parameters():
            p.zero_()
    load_core_shards(core, paths[kind])
    got = core.state_dict()
    assert all(torch.equal(got[k], state[k]) for k in state)
    assert core_checkpoint_meta(paths[kind], LEXICON)["lexicon_fingerprint"] == LEXICON


@pytest.mark.parametrize("kind", ["ckpt", "export"])
def test_a_core_of_another_shape_is_refused_naming_the_tensor(sources, kind):
    core = HyperCore(CoreConfig.from_dict({**SHAPE, "ffn_dim": 48}))
    with pytest.raises(CoreCheckpointError, match=r"feed_forward\.w\d\.weight has shape"):
        load_core_shards(core, sources[1][kind])


def test_missing_path_and_other_lexicon_are_refused(sources, tmp_path):
    with pytest.raises(CoreCheckpointError, match="no such checkpoint"):
        core_checkpoint_meta(tmp_path / "nowhere.ckpt")
    with pytest.raises(CoreCheckpointError, match="lexicon"):
        core_checkpoint_meta(sources[1]["dcp"], "cd" * 8)


def test_unsharded_align_reads_a_sharded_core_folder(tmp_path):
    """strategy=single align on a core an fsdp2 run saved (a DCP folder): loaded, frozen,
    fingerprinted like the same core from a .ckpt."""
    import warnings

    import torch.distributed.checkpoint as dcp
    from omegaconf import OmegaConf

    from dualmind.config.schema import compose
    from dualmind.data.shards import ShardSet
    from dualmind.model.fingerprint import weights_fingerprint
    from dualmind.train.module import DualMindModule
    from test_train_align import align_overrides
    from test_train_support import TINY_MODEL, tiny_corpus

    cfg = CoreConfig.from_dict(dict(compose(["recipe=core_mini", "data.dir=x", *TINY_MODEL]).model))
    torch.manual_seed(9)
    state = HyperCore(cfg).state_dict()
    folder = tmp_path / "last.ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp.save({"state_dict": {f"core.{k}": v for k, v in state.items()}},
                 checkpoint_id=str(folder), no_dist=True)
    lexicon = ShardSet.open(tiny_corpus(), "train").lexicon_fingerprint
    torch.save({"dualmind": {"stage": "core", "lexicon_fingerprint": lexicon,
                             "model": cfg.to_dict()}}, folder / "meta.pt")
    run_cfg = OmegaConf.to_container(compose(align_overrides(tmp_path, folder)), resolve=True)
    module = DualMindModule(run_cfg, lexicon)
    got = module.core.state_dict()
    assert all(torch.equal(got[k], state[k]) for k in state)
    assert not any(p.requires_grad for p in module.core.parameters()) and not module.core.training
    assert module.core_fingerprint == weights_fingerprint(state)
