"""Model FLOPs of one training step over a real batch, in torchtitan's convention (padding not
counted): what training logs, the align dry run plans and the equal-compute benchmark budgets."""

from __future__ import annotations

from dualmind.model.loss import IGNORE


def align_step_flops(core_cfg, decoder_cfg, batch: dict) -> float:
    """Model FLOPs of one alignment step (torchtitan's convention, padding not counted): the
    decoder trains on the batch's text targets (DecoderConfig.flops_per_token, training) and the
    frozen core runs forward over its real units up to its hidden states (CoreConfig.
    flops_per_token, training=False, head=False: core_states skips the output head), attention
    charged at the batch's padded lengths: what benchmarks/equal_compute_flops.py counts for its
    budgets."""
    units = int((batch["alignment"].core_doc >= 0).sum())
    targets = int((batch["targets"] != IGNORE).sum())
    S, T = max(int(batch["core_ids"].shape[1]), 1), int(batch["text_ids"].shape[1])
    return (decoder_cfg.flops_per_token(T, S, training=True) * targets
            + core_cfg.flops_per_token(S, training=False, head=False) * units)


def lm_step_flops(lm_cfg, batch: dict) -> float:
    """Training FLOPs of one stage-lm (BPE baseline) batch: every text target trained, attention
    charged at the batch's padded length, as align_step_flops charges its rows."""
    targets = int((batch["targets"] != IGNORE).sum())
    return lm_cfg.flops_per_token(int(batch["text_ids"].shape[1]), training=True) * targets
