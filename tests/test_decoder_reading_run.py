"""The decoder's reading on a real (tiny) corpus: the copy channel's surface table, the pointer
generation follows against the one training used, an align run with every new option, and the
shuffled-states control that `dualmind eval` reports."""

from __future__ import annotations

import pytest
import torch

from dualmind.config.schema import compose
from test_train_align import TINY_DECODER, core_checkpoint  # noqa: F401 - a fixture
from test_train_support import QUIET, TINY_MODEL, tiny_corpus

pytestmark = pytest.mark.usefixtures("one_thread")


def lexicon_and_tokenizer():
    from dualmind.data.text_tokenizer import load_text_tokenizer
    from dualmind.lexicon.lexicon import Lexicon

    corpus = tiny_corpus()
    return Lexicon.load(corpus.parent / "lexicon"), load_text_tokenizer(corpus / "tokenizer.json")


def test_surface_table_holds_each_units_own_text():
    from dualmind.train.surfaces import surface_table

    lexicon, tok = lexicon_and_tokenizer()
    table = surface_table(lexicon, tok, slots=4, rows=len(lexicon) + 5)
    assert table.shape == (len(lexicon) + 5, 4)
    assert (table[: 4] == -1).all() and (table[len(lexicon):] == -1).all()  # specials, beyond
    def whole_text(uid):
        try:
            return lexicon.unit(uid).kind != "special" and lexicon.unit(uid).data.decode("utf-8")
        except UnicodeDecodeError:  # a lone byte of a character: its byte token (not checked)
            return False

    units = [u for u in range(len(lexicon)) if whole_text(u)]
    assert len(units) > 500
    for uid in units:
        ids = [int(t) for t in table[uid] if t >= 0]
        full = tok.encode(lexicon.decode([uid])).ids
        assert ids == full[:4]
        if len(full) <= 4:
            assert tok.decode(ids) == lexicon.decode([uid])


def test_the_generation_pointer_follows_the_training_alignment():
    """Re-encoding the text produced so far with the (lossless) lexicon gives the pointer the
    shards' span ids give, at nearly every position of the held-out scenes."""
    from dualmind.data.shards import ShardSet
    from dualmind.model.masks import SceneSpans, pack_alignment
    from dualmind.model.pointer import LexiconPointer

    lexicon, tok = lexicon_and_tokenizer()
    shards = ShardSet.open(tiny_corpus(), "val")
    agree = total = 0
    for i in range(min(6, len(shards))):
        scene = shards[i]
        text = [int(t) for t in scene.text][:120]
        spans = [int(s) for s in scene.span][:120]
        trained = pack_alignment([[SceneSpans(len(scene.core), spans, 0)]]).pointers()[0]
        pointer = LexiconPointer(lexicon, tok, len(scene.core), lang=scene.lang)
        followed = pointer(torch.arange(len(text)), torch.tensor([[1, *text[:-1]]]))[0]
        agree += int((followed == trained).sum())
        total += len(text)
    assert total > 300
    assert agree / total >= 0.97, f"pointer agreement {agree / total:.3f}"


def align_overrides(run_dir, ckpt, *extra):
    corpus = tiny_corpus()
    return ["recipe=decoder_align", f"data.dir={corpus}", f"run_dir={run_dir}",
            f"core.checkpoint={ckpt}", f"data.lexicon={corpus.parent / 'lexicon'}", *TINY_MODEL,
            *TINY_DECODER, "data.seq_len=128", "data.batch_size=2", "data.val_max_batches=1",
            *QUIET, *extra]


def test_an_align_run_reads_mix_with_pointer_and_copy_and_eval_reports_the_control(
        tmp_path, core_checkpoint):  # noqa: F811 - the fixture
    from dualmind.evaluate.cli import evaluate
    from dualmind.evaluate.load import load_models
    from dualmind.train.loop import run

    overrides = align_overrides(tmp_path, core_checkpoint, "trainer.max_steps=2",
                                "decoder.core_read=mix", "decoder.mask_mode=pointer",
                                "decoder.cross_rope=true", "decoder.copy_slots=3")
    result = run(compose(overrides))
    core, decoder, meta = load_models(result.last_checkpoint)
    assert decoder.cfg.core_read == "mix" and decoder.cfg.core_layers == core.cfg.n_layers
    assert decoder.cfg.copy_slots == 3 and (decoder.memory.surface_tokens >= 0).any()
    lexicon = tiny_corpus().parent / "lexicon"
    report = evaluate(result.last_checkpoint, tiny_corpus(), max_records=8, scenes=1,
                      batch_size=4, lexicon_dir=lexicon, lang="en")
    bits = report.bits
    assert bits.shuffled_bpb is not None
    assert bits.taken_from_core_bpb == pytest.approx(bits.shuffled_bpb - bits.decoder_bpb)
    assert "bits/byte taken from the core" in report.summary()
    assert report.renderings and report.renderings[0].rendered is not None
    whole = evaluate(result.last_checkpoint, tiny_corpus(), scenes=0)  # both languages
    assert set(whole.by_language) == {"en", "ru"}
    parts = whole.by_language.values()
    assert whole.bits.text_bytes == sum(p.text_bytes for p in parts) == whole.bits.split_bytes
    assert whole.bits.shuffled_nll == pytest.approx(sum(p.shuffled_nll for p in parts))
    assert "[ru]" in whole.summary() and "[en]" in whole.summary()
    only = evaluate(result.last_checkpoint, tiny_corpus(), scenes=0, lang="ru")
    assert only.bits.text_bytes == whole.by_language["ru"].text_bytes and not only.by_language
    single = evaluate(result.last_checkpoint, tiny_corpus(), max_records=1, scenes=0,
                      batch_size=1)
    assert single.bits.shuffled_bpb is None
    assert "control not measured" in single.summary()


def test_the_control_is_zero_exactly_when_the_decoder_ignores_the_core(core_checkpoint):  # noqa: F811
    from dualmind.evaluate.score import score_split
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    cfg = compose(align_overrides("unused", core_checkpoint))
    core = HyperCore(CoreConfig.from_dict(dict(cfg.model))).eval()
    torch.manual_seed(4)
    decoder = LanguageDecoder(DecoderConfig.for_core(dict(cfg.decoder), core.cfg)).eval()
    reads = score_split(core, decoder, tiny_corpus(), max_records=6, context=(128, 512))
    assert abs(reads.taken_from_core_bpb) > 1e-6  # random cross-attention: the core matters
    with torch.no_grad():
        for layer in decoder.cross_layers:
            layer.wo.weight.zero_()  # cross-attention adds nothing: text alone
    ignores = score_split(core, decoder, tiny_corpus(), max_records=6, context=(128, 512))
    assert ignores.taken_from_core_bpb == 0.0


def test_qa_pairs_are_left_out_for_a_decoder_that_follows_its_text(core_checkpoint, capsys):  # noqa: F811
    """QA records carry no alignment of the answer's text to its units (every token at the
    last unit): a pointing decoder would learn to talk on at a scene's end, so they are left
    out, and the run says so; a render decoder still mixes them in."""
    from dualmind.train.align_datamodule import AlignDataModule

    pointing = AlignDataModule.from_config(compose(align_overrides(
        "unused", core_checkpoint, "decoder.mask_mode=pointer", "align.qa=true")))
    assert pointing.qa is False and "QA pairs left out" in capsys.readouterr().out
    render = AlignDataModule.from_config(compose(align_overrides(
        "unused", core_checkpoint, "align.qa=true", "decoder.mask_mode=render",
        "decoder.cross_rope=false", "decoder.pointer_feed=false", "decoder.copy_logits=false",
        "decoder.boundary_head=false", "decoder.unit_lengths=false")))
    assert render.qa is True
