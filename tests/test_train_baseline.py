"""recipe=baseline_bpe_mini (stage=lm): a plain GPT over the decoder's BPE ids, scored by the
same `dualmind eval` as the two-headed model."""

from __future__ import annotations

import math

import pytest

from dualmind.config.schema import compose
from test_train_support import QUIET, TINY_MODEL, tiny_corpus


def test_baseline_bpe_trains_and_evaluates(tmp_path):
    from dualmind.evaluate.cli import evaluate
    from dualmind.train.loop import run

    cfg = compose(["recipe=baseline_bpe_mini", f"data.dir={tiny_corpus()}", f"run_dir={tmp_path}",
                   *TINY_MODEL, "data.seq_len=128", "data.batch_size=2",
                   "data.val_max_batches=1", "trainer.max_steps=3",
                   "trainer.val_check_interval=3", "trainer.precision=32-true", *QUIET])
    assert cfg.stage == "lm"
    result = run(cfg)
    assert result.steps == 3
    assert all(math.isfinite(r["loss"]) and r["bpb"] > 0 for r in result.train)
    assert math.isfinite(result.val_bpb)

    report = evaluate(result.last_checkpoint, tiny_corpus(), "val", max_records=8, scenes=0)
    b = report.bits
    assert b.records == 8 and b.core_positions == 0 and b.core_nll == 0
    assert b.text_positions > 8 and math.isfinite(b.system_bpb) and b.system_bpb > 0
    assert b.system_bpb == pytest.approx(b.decoder_bpb)
    assert set(report.flops_per_byte) == {"lm_forward", "lm_train"}
    assert "BPE LM bits/byte" in report.summary()


def test_baseline_recipe_reads_the_decoder_vocabulary():
    base = compose(["recipe=baseline_bpe_mini"])
    align = compose(["recipe=decoder_align"])
    assert base.model.vocab_size == align.decoder.vocab_size
    assert base.model.dim == align.model.dim and base.model.n_layers == align.model.n_layers


def test_a_baseline_vocabulary_smaller_than_the_tokenizer_names_the_models_key():
    from dualmind.data.open_corpus import DataConfigError
    from dualmind.train.align_datamodule import AlignDataModule

    cfg = compose(["recipe=baseline_bpe_mini", f"data.dir={tiny_corpus()}", "model.vocab_size=8"])
    with pytest.raises(DataConfigError, match=r"^model\.vocab_size=8 is smaller than"):
        AlignDataModule.from_config(cfg).prepare()
