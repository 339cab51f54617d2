"""stage=align: the decoder trains, the frozen core provably does not change (issue 4)."""

from __future__ import annotations

import math

import pytest
import torch

from dualmind.config.schema import compose
from dualmind.data.shards import ShardSet
from test_train_support import QUIET, TINY_MODEL, tiny_corpus

TINY_DECODER = [
    "decoder.vocab_size=512",
    "decoder.dim=64",
    "decoder.n_layers=2",
    "decoder.n_heads=4",
    "decoder.n_kv_heads=2",
    "decoder.ffn_dim=128",
    "decoder.core_dim=64",
    "decoder.max_seq_len=512",
]


@pytest.fixture(scope="module")
def core_checkpoint(tmp_path_factory):
    """A stage-core checkpoint of the tiny core shape, as train.py writes them (state_dict +
    dualmind metadata), with random weights: isolation does not need a trained core."""
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    cfg = compose(["recipe=core_mini", "data.dir=x", *TINY_MODEL])
    core_cfg = CoreConfig.from_dict(dict(cfg.model))
    torch.manual_seed(0)
    core = HyperCore(core_cfg)
    fingerprint = ShardSet.open(tiny_corpus(), "train").lexicon_fingerprint
    path = tmp_path_factory.mktemp("core") / "core.ckpt"
    torch.save({"state_dict": {f"core.{k}": v for k, v in core.state_dict().items()},
                "dualmind": {"stage": "core", "lexicon_fingerprint": fingerprint,
                             "model": core_cfg.to_dict()}}, path)
    return path


def align_overrides(run_dir, ckpt, *extra):
    return ["recipe=decoder_align", f"data.dir={tiny_corpus()}", f"run_dir={run_dir}",
            f"core.checkpoint={ckpt}", *TINY_MODEL, *TINY_DECODER, "data.seq_len=128",
            "data.batch_size=2", "data.val_max_batches=1", *QUIET, *extra]


def saved_core(ckpt) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k[len("core."):]: v for k, v in state.items() if k.startswith("core.")}


def test_align_steps_leave_the_core_bit_identical_and_gradient_free(tmp_path, core_checkpoint):
    from omegaconf import OmegaConf

    from dualmind.train.align_datamodule import AlignDataModule
    from dualmind.train.module import DualMindModule

    cfg = compose(align_overrides(tmp_path, core_checkpoint))
    dm = AlignDataModule.from_config(cfg).prepare()
    module = DualMindModule(OmegaConf.to_container(cfg, resolve=True), dm.lexicon_fingerprint)
    before = saved_core(core_checkpoint)
    for k, v in module.core.state_dict().items():  # really loaded from the checkpoint
        assert torch.equal(v, before[k]), k
    module.train()
    assert not module.core.training and module.decoder.training
    assert all(not p.requires_grad for p in module.core.parameters())
    trainable = {id(p) for p in module.trainable_parameters()}
    assert trainable == {id(p) for p in module.decoder.parameters()}
    assert not trainable & {id(p) for p in module.core.parameters()}

    optimizer = torch.optim.AdamW(module.trainable_parameters(), lr=1e-2)
    batches = iter(dm.train_dataloader())
    losses = []
    for _ in range(3):
        counts = module._align_step(next(batches))
        counts.loss.backward()
        assert all(p.grad is None for p in module.core.parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in module.decoder.parameters())
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(counts.loss.detach()))
    assert all(math.isfinite(v) for v in losses)
    for k, v in module.core.state_dict().items():
        assert torch.equal(v, before[k]), f"core weight {k} changed during align"


def test_decoder_align_fast_dev_run(tmp_path, core_checkpoint):
    import lightning as L

    from dualmind.train.loop import run

    seen = {}

    class OptimizerHoldsOnlyTheDecoder(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            held = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
            seen["only_decoder"] = held == {id(p) for p in module.decoder.parameters()}
            seen["core_grads"] = [p.grad for p in module.core.parameters() if p.grad is not None]
            seen["core_training"] = module.core.training

    cfg = compose(align_overrides(tmp_path, core_checkpoint, "trainer.max_steps=4",
                                  "trainer.val_check_interval=4", "trainer.precision=32-true",
                                  "trainer.checkpoint_every_n_steps=4"))
    result = run(cfg, callbacks=[OptimizerHoldsOnlyTheDecoder()])
    assert result.steps == 4
    assert seen == {"only_decoder": True, "core_grads": [], "core_training": False}
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["bpb"]) for r in result.train)
    assert result.val and math.isfinite(result.val_bpb) and result.val_bpb > 0
    # The saved align checkpoint's core is the source core, bit for bit.
    before, after = saved_core(core_checkpoint), saved_core(result.last_checkpoint)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    meta = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)["dualmind"]
    assert meta["stage"] == "align" and meta["decoder"]["dim"] == 64


def test_align_without_core_checkpoint_is_a_clear_error(tmp_path):
    from dualmind.train.loop import run

    with pytest.raises(ValueError, match="core.checkpoint"):
        run(compose(align_overrides(tmp_path, "null")))


def test_stream_mode_reads_fewer_core_states_than_render(tmp_path, core_checkpoint):
    """decoder.mask_mode reaches the decoder: the same batch scores differently under the two
    masks (stream hides later units of the scene), and both are finite."""
    from omegaconf import OmegaConf

    from dualmind.train.align_datamodule import AlignDataModule
    from dualmind.train.module import DualMindModule

    cfg = compose(align_overrides(tmp_path, core_checkpoint, "decoder.mask_mode=stream"))
    dm = AlignDataModule.from_config(cfg).prepare()
    module = DualMindModule(OmegaConf.to_container(cfg, resolve=True), dm.lexicon_fingerprint)
    assert module.decoder.cfg.mask_mode == "stream"
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        stream = float(module._align_step(batch).loss)
        module.decoder.cfg.mask_mode = "render"
        render = float(module._align_step(batch).loss)
    assert math.isfinite(stream) and math.isfinite(render) and stream != render
    with pytest.raises(Exception, match="mask_mode"):
        compose(align_overrides(tmp_path, core_checkpoint, "decoder.mask_mode=later"))


def test_core_of_another_lexicon_is_refused(tmp_path, core_checkpoint):
    from dualmind.checkpoint.frozen_core import CoreCheckpointError
    from dualmind.train.loop import run

    ckpt = torch.load(core_checkpoint, map_location="cpu", weights_only=True)
    ckpt["dualmind"]["lexicon_fingerprint"] = "0" * 64
    other = tmp_path / "other-lexicon.ckpt"
    torch.save(ckpt, other)
    with pytest.raises(CoreCheckpointError, match="lexicon 0000"):
        run(compose(align_overrides(tmp_path, other)))
