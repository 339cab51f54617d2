"""The core's loss computed in chunks of positions (strategy.loss_chunk, dualmind.model.loss)
equals the plain loss over the full logits: value and gradients in one process, and the loss
curve of a 2-rank fsdp2 run against one process that computes the full logits.

Tolerances: one forward in fp32 agrees to 1e-5 relative (the chunked sum adds the same terms in
another order); gradients to 1e-6 absolute / 1e-5 relative; a 10-step fsdp2 curve to 1e-5 in the
loss, as tests/test_train_fsdp2.py holds the unchunked one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dualmind.config.schema import ConfigError, compose
from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.loss import next_symbol_nll
from dualmind.train.loop import run
from test_parallel_support import spawn_ranks
from test_train_fsdp2 import COMMON, STEPS, StartFrom, _reference_weights
from test_train_support import tiny_corpus, tiny_overrides


def _tiny(**kw) -> CoreConfig:
    return CoreConfig(vocab_size=61, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
                      max_seq_len=32, **kw)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("chunk", [5, 16, 1000])  # a ragged last chunk, exact chunks, one chunk
def test_chunked_nll_and_gradients_equal_the_full_logits(chunk, tied):
    torch.manual_seed(0)
    core = HyperCore(_tiny(tie_embeddings=tied))
    ids = torch.randint(0, 61, (2, 24))
    doc_ids = torch.cat([torch.zeros(2, 10), torch.ones(2, 14)], 1).long()  # a packed row
    targets = ids.roll(-1, 1)
    targets[1, -4:] = -100  # ignored positions stay ignored
    params = list(core.parameters())
    full = next_symbol_nll(core, ids, targets, doc_ids=doc_ids, chunk=0)
    full_grads = torch.autograd.grad(full, params)
    chunked = next_symbol_nll(core, ids, targets, doc_ids=doc_ids, chunk=chunk)
    chunked_grads = torch.autograd.grad(chunked, params)
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=0)
    for p, a, b in zip(params, chunked_grads, full_grads, strict=True):
        assert a.abs().sum() > 0 or p is not core.output.weight  # the head gets its gradient
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_chunked_loss_never_builds_the_full_logits(monkeypatch):
    """The output head sees at most ``chunk`` positions at a time, forward and backward."""
    core = HyperCore(_tiny())
    ids = torch.randint(0, 61, (2, 24))
    rows = []
    real_linear = torch.nn.functional.linear

    def spy(x, w, *a, **kw):
        if w is core.output.weight:
            rows.append(x.reshape(-1, x.shape[-1]).shape[0])
        return real_linear(x, w, *a, **kw)

    monkeypatch.setattr(torch.nn.functional, "linear", spy)
    next_symbol_nll(core, ids, ids.roll(-1, 1), chunk=8).backward()
    assert rows and max(rows) == 8
    assert len(rows) == 2 * (48 // 8)  # each chunk once forward, once recomputed in backward
    with pytest.raises(ValueError, match="loss chunk must be >= 0"):
        next_symbol_nll(core, ids, ids, chunk=-1)


@pytest.mark.parametrize("strategy", ["single", "ddp", "fsdp2"])
def test_every_strategy_takes_loss_chunk_and_refuses_a_negative_one(tmp_path, strategy):
    cfg = compose(tiny_overrides(tmp_path, f"strategy={strategy}", "strategy.loss_chunk=64"))
    assert cfg.strategy.loss_chunk == 64
    with pytest.raises(ConfigError, match=r"strategy.loss_chunk=-2 must be >= 0"):
        compose(tiny_overrides(tmp_path, f"strategy={strategy}", "strategy.loss_chunk=-2"))


def test_one_process_trains_the_same_with_the_loss_in_chunks(tmp_path):
    """strategy=single, 4 steps: the chunked run's losses are the full-logits run's (1e-5)."""
    tiny_corpus()
    runs = [[r["loss"] for r in run(compose(tiny_overrides(
        tmp_path / str(chunk), *COMMON, "trainer.max_steps=4", f"strategy.loss_chunk={chunk}")),
        callbacks=[StartFrom(_reference_weights(tiny_overrides(tmp_path, *COMMON)))]).train]
        for chunk in (0, 50)]
    assert len(runs[0]) == 4
    for step, (a, b) in enumerate(zip(*runs, strict=True)):
        assert abs(a - b) <= 1e-5, f"step {step}: chunked {b} vs full logits {a}"


def _rank_main(rank: int, overrides: list[str], out: str) -> None:
    result = run(compose(overrides), callbacks=[StartFrom(_reference_weights(overrides))])
    Path(out, f"rank{rank}.json").write_text(json.dumps([r["loss"] for r in result.train]))


@pytest.mark.multiprocess
def test_fsdp2_with_chunked_loss_matches_one_process_with_full_logits(tmp_path):
    tiny_corpus()
    single = tiny_overrides(tmp_path / "single", *COMMON, "data.batch_size=4")
    want = [r["loss"] for r in run(compose(single),
                                   callbacks=[StartFrom(_reference_weights(single))]).train]
    sharded = tiny_overrides(
        tmp_path / "fsdp2", *COMMON, "data.batch_size=2", "strategy=fsdp2",
        "trainer.devices=2", "trainer.accelerator=cpu", "strategy.activation_checkpointing=full",
        "strategy.param_dtype=float32", "strategy.reduce_dtype=float32",
        "strategy.loss_chunk=7",  # does not divide the rows' positions: a ragged last chunk
    )
    spawn_ranks(_rank_main, 2, sharded, str(tmp_path))
    losses = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    got = [(a + b) / 2 for a, b in zip(*losses, strict=True)]
    assert len(got) == len(want) == STEPS and got[-1] < got[0]
    for step, (g, w) in enumerate(zip(got, want, strict=True)):
        assert abs(g - w) <= 1e-5, f"step {step}: chunked fsdp2 loss {g} vs full logits {w}"
