"""The alignment recipes compose, pair a decoder with the core shape they are meant for, and the
70B one keeps core_70b's exact core (its checkpoint is loaded strictly)."""

from __future__ import annotations

from dualmind.config.schema import compose
from dualmind.model.config import CoreConfig
from dualmind.model.decoder_config import DecoderConfig


def test_decoder_align_70b_pairs_the_8b_decoder_with_core_70b():
    cfg = compose(["recipe=decoder_align_70b"])
    core = compose(["recipe=core_70b"])
    assert cfg.stage == "align" and cfg.strategy.name == "fsdp2"
    assert dict(cfg.model) == dict(core.model)  # shape, 16k context, RoPE scaling: all the same
    decoder = DecoderConfig.from_dict(dict(cfg.decoder))
    assert decoder.core_dim == CoreConfig.from_dict(dict(cfg.model)).dim == 8192
    assert 8.0e9 < decoder.num_params() < 9.0e9 and decoder.gated
    assert cfg.trainer.num_nodes * cfg.trainer.devices == 64
    assert cfg.data.seq_len <= cfg.model.max_seq_len
    assert cfg.data.seq_len < decoder.max_seq_len  # a row's text has room beside its symbols
    assert cfg.trainer.max_steps > cfg.optim.warmup_steps > 0


def test_decoder_align_demo_recipe_fits_the_mini_core():
    cfg = compose(["recipe=decoder_align"])
    core = compose(["recipe=core_mini"])
    assert cfg.stage == "align" and cfg.strategy.name == "single"
    assert dict(cfg.model) == dict(core.model)
    assert cfg.decoder.core_dim == cfg.model.dim
    assert cfg.data.seq_len <= cfg.model.max_seq_len
