"""dualmind.plan.align_memory: the cross-attention activation formula is the layer's own, counted
from the bytes a real LanguageDecoder saves for backward (as tests/test_plan.py does for a core
block), and the phases add up."""

from __future__ import annotations

import pytest
import torch

from dualmind.plan.align_memory import align_memory, cross_activation_bytes
from dualmind.plan.shape import LLAMA3_8B, LLAMA3_70B
from test_activation_support import saved_activation_bytes


def _saved_bytes(cross_every: int, text_len: int, core_len: int, rows: int = 2) -> int:
    """Bytes of the storages a bf16 decoder of 4 blocks keeps for backward (parameters excluded)
    when it reads detached core states, as stage align's decoder does."""
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    cfg = DecoderConfig(vocab_size=512, dim=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn_dim=352,
                        core_dim=96, cross_every=cross_every, gated=True, attn_backend="sdpa",
                        max_seq_len=256)
    torch.manual_seed(0)
    decoder = LanguageDecoder(cfg).to(torch.bfloat16)
    ids = torch.randint(0, cfg.vocab_size, (rows, text_len))
    states = torch.randn(rows, core_len, cfg.core_dim, dtype=torch.bfloat16)
    return saved_activation_bytes(decoder, lambda: decoder(ids, states))


@pytest.mark.parametrize("text_len,core_len", [(200, 16), (64, 200)])
def test_cross_attention_formula_matches_saved_tensors(text_len, core_len):
    """Four cross layers (cross_every=1) against one (cross_every=4), same blocks otherwise: the
    difference is three cross-attention layers. One shape weighs text tokens, the other core
    states, so both coefficients are pinned. Tolerance 2% (log-sum-exp, norm statistics)."""
    rows = 2
    measured = (_saved_bytes(1, text_len, core_len) - _saved_bytes(4, text_len, core_len)) / 3
    expected = cross_activation_bytes(128, 128, 96, 64, rows * text_len, rows * core_len,
                                      "none", n_cross=1)
    assert measured == pytest.approx(expected, rel=0.02)


def test_phases_add_up_and_the_frozen_core_holds_weights_only():
    kw = dict(core=LLAMA3_70B, core_shard_params=1_000_000, core_block_params=800_000_000,
              core_root_params=2_000_000_000, text_stack=LLAMA3_8B,
              decoder_shard_params=100_000, decoder_block_params=250_000_000,
              decoder_root_params=1_000_000_000, n_cross=8, core_dim=8192, hbm_bytes=80 * 2**30,
              rows=1, core_len=4096, text_len=8192)
    m = align_memory(**kw, precision="fp32-master")
    assert m.core_shard == 4 * 1_000_000 and m.decoder_state == 16 * 100_000
    # the text logits, written out: 8,192 tokens x Llama-3's 128,256 ids x (bf16 + fp32)
    assert m.decoder_logits == 8192 * 128256 * 6 and m.peak_phase == "decoder step"
    b = align_memory(**kw, precision="bf16-true")
    assert b.core_shard == 2 * 1_000_000 and b.decoder_state == 8 * 100_000
    # Full checkpointing keeps far less of the decoder than none; the core's forward is no_grad
    # either way, so its phase does not change.
    none = align_memory(**kw, checkpointing="none")
    assert none.decoder_activations > 5 * m.decoder_activations
    assert none.core_phase == m.core_phase
    # What does not shard (the phases) decides whether any GPU count fits: at 40 GiB per GPU the
    # decoder's uncheckpointed activations alone are too big, checkpointed they fit.
    small = dict(kw, hbm_bytes=40 * 2**30)
    assert align_memory(**small, checkpointing="none").min_gpus(64) is None
    assert align_memory(**small, checkpointing="full").min_gpus(64) == 1


def test_planned_align_flops_are_what_training_logs():
    """dualmind plan's stage-align FLOPs are step_flops.align_step_flops' rates (what training logs)
    times the plan's BPE tokens and symbols: a step with one text target and no core units
    gives the decoder's rate, one with one unit and no targets the frozen core's (no head)."""
    from types import SimpleNamespace

    from dualmind.model.config import CoreConfig
    from dualmind.model.loss import IGNORE
    from dualmind.model.step_flops import align_step_flops
    from dualmind.plan.planner import plan
    from dualmind.plan.request import PlanRequest
    from dualmind.plan.resolve import resolve_decoder

    p = plan(PlanRequest(recipe="core_70b", gpus=256, bytes_per_symbol=5.0,
                         bpe_bytes_per_token=4.0, seq_len=4096))
    core = CoreConfig.from_name("70b")
    decoder, _ = resolve_decoder("8b", core.dim)
    S, T = 4096, min(round(4096 * 5.0 / 4.0), decoder.max_seq_len)

    def step(targets: int, units: int) -> float:
        tgt = torch.full((1, T), IGNORE)
        tgt[0, :targets] = 0
        doc = torch.full((1, S), -1)
        doc[0, :units] = 0
        batch = {"alignment": SimpleNamespace(core_doc=doc), "targets": tgt,
                 "core_ids": torch.zeros(1, S, dtype=torch.long),
                 "text_ids": torch.zeros(1, T, dtype=torch.long)}
        return align_step_flops(core, decoder, batch)

    per_token, per_symbol = step(1, 0), step(0, 1)
    assert per_symbol == core.flops_per_token(S, training=False, head=False)
    expected = p.alignment["text_tokens"] * per_token + p.corpus["trained_positions"] * per_symbol
    assert p.alignment["flops"] == pytest.approx(expected, rel=1e-12)
