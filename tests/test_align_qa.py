"""stage=align trains on QA pairs too (issue 4): question + answer hyperphrases -> answer text,
interleaved with the scenes; the adapters' held-out questions never reach training; the logged
FLOPs include the frozen core's forward."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dualmind.config.schema import compose
from test_adapters_support import qa_corpus, write_core_checkpoint
from test_train_align import TINY_DECODER
from test_train_support import QUIET, TINY_MODEL, tiny_corpus

CORE_LEN, TEXT_LEN = 128, 512


def qa_cores(heldout: bool) -> set[tuple[int, ...]]:
    """question + answer ids of the corpus's QA pairs on one side of the adapters' hash split,
    read straight from hypertrain.jsonl."""
    from dualmind.adapters.settings import AdaptSettings
    from dualmind.lexicon.symbols import id_of
    from dualmind.train.qa_data import is_heldout, iter_qa_records, question_of

    out = set()
    for _, rec in iter_qa_records(qa_corpus()):
        if is_heldout(question_of(rec), AdaptSettings.heldout_fraction) == heldout:
            out.add(tuple(id_of(c) for c in rec["hyperphrase"] + rec["target_hyperphrase"]))
    return out


def row_records(packs) -> list:
    """Every record laid out in the packs' rows (once: by its first window)."""
    return [packs.shards[i] for row in packs.rows for i, w in row if w.first]


def datamodule(corpus, qa: bool):
    from dualmind.train.align_datamodule import AlignDataModule

    return AlignDataModule(corpus, CORE_LEN, TEXT_LEN, batch_size=2, qa=qa).prepare()


def test_qa_pairs_join_the_train_rows_only_when_enabled():
    on, off = datamodule(qa_corpus(), True), datamodule(qa_corpus(), False)
    kinds_on = [r.kind for r in row_records(on.train_packs)]
    assert {r.kind for r in row_records(off.train_packs)} == {"scene"}
    assert on.qa_train_records > 0 and kinds_on.count("qa") == on.qa_train_records
    assert on.train_packs.records == off.train_packs.records + on.qa_train_records
    # interleaved, not appended: QA pairs sit among the scenes from the start of the split
    first_qa = kinds_on.index("qa")
    assert first_qa < len(kinds_on) // 4 and "scene" in kinds_on[first_qa:]
    # core = question + answer hyperphrases, text = the answer, its bytes the answer's bytes
    qa = [r for r in row_records(on.train_packs) if r.kind == "qa"]
    assert {tuple(r.core.tolist()) for r in qa} <= qa_cores(heldout=False)
    assert all(r.core_bytes.sum() == r.n_bytes and (r.span == len(r.core) - 1).all()
               for r in qa)
    # and the training batches carry them: every QA record's answer tokens reach a batch
    batch_targets = {tuple(r.target[:-1].tolist()) for i in range(len(on.train_packs))
                     for r in on.train_packs[i]}
    assert all(tuple(r.text.tolist()) in batch_targets for r in qa)
    # val/bpb stays the scenes': the same val rows with and without QA pairs
    assert on.val_packs.rows == off.val_packs.rows


def test_held_out_questions_are_never_trained_on():
    dm = datamodule(qa_corpus(), True)
    heldout, train = qa_cores(heldout=True), qa_cores(heldout=False)
    assert heldout and train and not heldout & train
    trained = {tuple(r.core.tolist()) for r in row_records(dm.train_packs)}
    assert not trained & heldout
    assert train <= trained  # every training QA pair fits a row here, so all are used
    scored = {tuple(r.core.tolist()) for r in row_records(dm.qa_val_packs)}
    assert scored == heldout
    assert next(iter(dm.qa_val_dataloader()))["text_bytes"].sum() > 0


def test_a_corpus_without_qa_pairs_aligns_on_scenes_with_a_note(capsys):
    on, off = datamodule(tiny_corpus(), True), datamodule(tiny_corpus(), False)
    assert "no qa split" in capsys.readouterr().out
    assert on.train_packs.rows == off.train_packs.rows and on.qa_val_dataloader() is None


def test_align_qa_must_be_a_boolean():
    with pytest.raises(Exception, match="align.qa"):
        compose(["recipe=decoder_align", "data.dir=x", "align.qa=sometimes"])


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
    """8 align steps on the corpus with QA pairs (align.qa on by default), each step's batch
    kept, and the module itself."""
    import lightning as L

    from dualmind.train.loop import run

    tmp = tmp_path_factory.mktemp("align-qa")
    ckpt = write_core_checkpoint(tmp / "core.ckpt")
    seen: dict = {"batches": []}

    class Keep(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            seen["batches"].append(batch)
            seen["module"] = module

    cfg = compose(["recipe=decoder_align", f"data.dir={qa_corpus()}", f"run_dir={tmp / 'run'}",
                   f"core.checkpoint={ckpt}", *TINY_MODEL, *TINY_DECODER,
                   # QA pairs train a decoder that reads its whole scene (render mode): a
                   # pointing decoder leaves them out (their answers carry no unit alignment)
                   "decoder.mask_mode=render", "decoder.cross_rope=false",
                   "decoder.pointer_feed=false", "decoder.copy_logits=false",
                   "decoder.boundary_head=false", "decoder.unit_lengths=false",
                   f"data.seq_len={CORE_LEN}", "data.batch_size=2", "data.val_max_batches=1",
                   "trainer.max_steps=8", "trainer.val_check_interval=8",
                   "trainer.checkpoint_every_n_steps=8", "trainer.precision=32-true",
                   "optim.warmup_steps=2", *QUIET])
    assert cfg.align.qa is True
    result = run(cfg, callbacks=[Keep()])
    return cfg, result, seen


def test_align_with_qa_pairs_trains_and_its_loss_falls(qa_run):
    _, result, seen = qa_run
    losses = [r["loss"] for r in result.train]
    assert result.steps == 8 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    assert math.isfinite(result.val_bpb) and result.val_bpb > 0
    # the held-out QA pairs are scored apart from the scenes, with the trained decoder
    qa_bpb = float(seen["module"].trainer.callback_metrics["val/qa_bpb"])
    assert math.isfinite(qa_bpb) and qa_bpb > 0 and qa_bpb != result.val_bpb


def test_align_flops_count_the_decoder_training_and_the_frozen_core_forward(qa_run):
    """flops_total = sum over steps of decoder-train FLOPs per text target + the core's forward
    to its states (2·(N - head) + 4·L·H·Dh·S; the output head is skipped) per real core unit,
    as benchmarks/equal_compute_flops.py counts."""
    import sys
    from pathlib import Path

    from dualmind.model.loss import IGNORE
    from dualmind.model.step_flops import align_step_flops

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from equal_compute_flops import align_batch_flops

    _, result, seen = qa_run
    module = seen["module"]
    core, decoder = module.core_config, module.decoder.cfg
    expected = 0.0
    for batch in seen["batches"]:
        S, T = batch["core_ids"].shape[1], batch["text_ids"].shape[1]
        units = int((batch["alignment"].core_doc >= 0).sum())
        targets = int((batch["targets"] != IGNORE).sum())
        head = core.vocab_size * core.dim
        core_forward = 2 * (core.matmul_params() - head) + 4 * core.n_layers * core.n_heads * \
            core.head_dim * S
        step = decoder.flops_per_token(T, S, training=True) * targets + core_forward * units
        assert core_forward * units > 0.05 * step  # the core's share is not negligible here
        assert align_step_flops(core, decoder, batch) == pytest.approx(step, rel=1e-12)
        assert align_batch_flops(core, decoder, batch) == pytest.approx(step, rel=1e-12)
        expected += step
    assert len(seen["batches"]) == result.steps
    assert module._flops_total == pytest.approx(expected, rel=1e-9)


def test_a_resumed_run_continues_with_the_batch_it_would_have_seen():
    """trainer_position's contract with QA pairs mixed in: the rows are the same in a fresh
    process (the interleaving is fixed), and start_batch=j yields batch j of a fresh run."""
    import torch

    from dualmind.train.align_datamodule import AlignTrainBatches

    first, again = datamodule(qa_corpus(), True), datamodule(qa_corpus(), True)
    assert first.train_packs.rows == again.train_packs.rows
    fresh = iter(AlignTrainBatches(first.train_packs, 2, seed=7))
    batches = [next(fresh) for _ in range(4)]
    resumed = next(iter(AlignTrainBatches(again.train_packs, 2, seed=7, start_batch=3)))
    for key in ("core_ids", "text_ids", "targets", "text_bytes"):
        assert torch.equal(resumed[key], batches[3][key]), key
