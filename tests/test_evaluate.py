"""`dualmind eval`: system bits per byte = core part + decoder part, on held-out text."""

from __future__ import annotations

import argparse
import math

import pytest

from dualmind.config.schema import compose
from dualmind.evaluate.cli import add_arguments, evaluate, run
from dualmind.evaluate.report import EvalError, chrf, word_accuracy
from test_train_align import align_overrides
from test_train_align import core_checkpoint as core_checkpoint  # noqa: F401 - fixture
from test_train_support import tiny_corpus


@pytest.fixture(scope="module")
def align_checkpoint(tmp_path_factory, core_checkpoint):  # noqa: F811
    from dualmind.train.loop import run as train_run

    run_dir = tmp_path_factory.mktemp("align")
    result = train_run(compose(align_overrides(run_dir, core_checkpoint, "trainer.max_steps=2",
                                               "trainer.val_check_interval=2",
                                               "trainer.precision=32-true")))
    return result.last_checkpoint


def test_system_bits_per_byte_is_the_sum_of_its_parts(align_checkpoint):
    report = evaluate(align_checkpoint, tiny_corpus(), "val", max_records=12, scenes=2,
                      max_new_tokens=24)
    b = report.bits
    assert b.records == 12 and b.text_bytes > 0
    assert b.core_positions > 0 and b.text_positions > b.records  # + one EOS per record
    for v in (b.core_bpb, b.decoder_bpb, b.system_bpb):
        assert math.isfinite(v) and v > 0
    assert b.system_bpb == pytest.approx(b.core_bpb + b.decoder_bpb, rel=1e-9)
    assert set(report.flops_per_byte) == {"core_forward", "core_train", "decoder_forward",
                                          "decoder_train"}
    assert all(math.isfinite(v) and v > 0 for v in report.flops_per_byte.values())
    assert report.flops_per_byte["core_train"] == pytest.approx(
        3 * report.flops_per_byte["core_forward"], rel=0.2)
    assert len(report.renderings) == 2
    assert all(0 <= r.chrf <= 100 and 0 <= r.word_accuracy <= 1 for r in report.renderings)
    assert report.renderings[0].original  # the reference text is really there
    assert "system bits/byte" in report.summary()


def test_eval_command_writes_json(align_checkpoint, tmp_path, capsys):
    import json

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "eval.json"
    args = parser.parse_args([str(align_checkpoint), "--data", str(tiny_corpus()),
                              "--max-records", "4", "--scenes", "1",
                              "--max-new-tokens", "16", "--json", str(out)])
    assert run(args) == 0
    data = json.loads(out.read_text())
    assert data["system_bpb"] == pytest.approx(data["core_bpb"] + data["decoder_bpb"])
    assert "rendered" in capsys.readouterr().out
    bad = parser.parse_args([str(tmp_path / "nope.ckpt"), "--data", str(tiny_corpus())])
    assert run(bad) == 2


def test_show_scenes_for_the_demo(align_checkpoint):
    from dualmind.evaluate.render import show_scenes

    text = show_scenes(align_checkpoint, tiny_corpus(), scenes=2,
                       lexicon_dir=tiny_corpus().parent / "lexicon", max_new_tokens=16)
    assert text.count("--- held-out scene") == 2
    assert text.count("original    :") == text.count("decoder     :") == 2
    assert "·" in text  # glossed with the lexicon


def test_an_export_folder_scores_like_its_checkpoint(align_checkpoint, tmp_path):
    from dualmind.checkpoint.export import export_checkpoint

    out = export_checkpoint(align_checkpoint, tmp_path / "export")
    assert (out / "decoder.safetensors").is_file()
    a = evaluate(align_checkpoint, tiny_corpus(), "val", max_records=4, scenes=0).bits
    b = evaluate(out, tiny_corpus(), "val", max_records=4, scenes=0).bits
    assert b.system_bpb == pytest.approx(a.system_bpb, rel=1e-6)
    assert b.core_bpb == pytest.approx(a.core_bpb, rel=1e-6)


def test_reconstruction_metrics():
    assert chrf("the cat sat", "the cat sat") == pytest.approx(100.0)
    assert chrf("xyz", "the cat sat") == 0.0
    assert 0 < chrf("the cat", "the cat sat") < 100
    assert word_accuracy("the cat sat", "the cat sat") == 1.0
    assert word_accuracy("the dog sat", "the cat sat") == pytest.approx(2 / 3)


def test_words_in_order_forgive_a_shift_that_exact_positions_do_not():
    from dualmind.evaluate.report import words_in_order

    shifted = "and the cat sat on the mat"
    assert word_accuracy(shifted, "the cat sat on the mat") == 0.0
    assert words_in_order(shifted, "the cat sat on the mat") == 1.0
    assert words_in_order("the mat sat", "the cat sat on the mat") == pytest.approx(2 / 6)
    assert words_in_order("", "") == 1.0 and words_in_order("x", "") == 0.0


def test_the_checkpoint_records_its_core_and_rows(align_checkpoint):
    import torch

    from dualmind.checkpoint.frozen_core import core_fingerprint
    from dualmind.evaluate.load import load_models

    meta = torch.load(align_checkpoint, map_location="cpu", weights_only=True)["dualmind"]
    loaded, decoder, _ = load_models(align_checkpoint)
    assert meta["core_fingerprint"] == core_fingerprint(loaded)
    assert meta["context"] == {"core": 128, "text": 512}  # data.seq_len, decoder.max_seq_len


def test_a_decoder_beside_another_core_is_refused(align_checkpoint, core_checkpoint,  # noqa: F811
                                                  tmp_path):
    import torch

    from dualmind.evaluate.load import load_models
    from dualmind.evaluate.report import EvalError

    load_models(align_checkpoint, core=core_checkpoint)  # its own core: accepted
    other = torch.load(core_checkpoint, weights_only=True)
    other["state_dict"] = {k: v + 0.01 for k, v in other["state_dict"].items()}
    torch.save(other, tmp_path / "other.ckpt")
    with pytest.raises(EvalError, match=r"aligned to the core with weights fingerprint "
                       r"[0-9a-f]{16}, but the core given \(.*other.ckpt\) has fingerprint"):
        load_models(align_checkpoint, core=tmp_path / "other.ckpt")
    tampered = torch.load(align_checkpoint, weights_only=True)  # a core swapped inside it
    tampered["state_dict"] = {k: (v + 0.01 if k.startswith("core.") else v)
                              for k, v in tampered["state_dict"].items()}
    torch.save(tampered, tmp_path / "tampered.ckpt")
    with pytest.raises(EvalError, match=r"tampered.ckpt: the decoder was aligned to the core"):
        load_models(tmp_path / "tampered.ckpt")


def test_a_lexicon_other_than_the_corpus_is_refused_for_glossing(align_checkpoint, tmp_path):
    from dualmind.evaluate.render import show_scenes
    from dualmind.evaluate.report import EvalError
    from dualmind.lexicon.lexicon import Lexicon

    Lexicon.build(["a tiny other text, another lexicon"] * 3, level="lossless",
                  vocab_size=300).save(tmp_path / "other-lexicon")
    with pytest.raises(EvalError, match=r"other-lexicon: lexicon [0-9a-f]+, but .* was built "
                       r"with lexicon"):
        show_scenes(align_checkpoint, tiny_corpus(), scenes=1,
                    lexicon_dir=tmp_path / "other-lexicon", max_new_tokens=4)


def test_a_scene_longer_than_the_core_context_is_compared_with_the_text_it_rendered(
        align_checkpoint):
    from dualmind.evaluate.load import load_models
    from dualmind.evaluate.render import render_scenes

    core, decoder, _ = load_models(align_checkpoint)
    # The tiny corpus' first held-out scene (349 units) is already longer than the mini
    # core's 256 positions; before, it was scored against its whole text.
    wide = render_scenes(core, decoder, tiny_corpus(), "val", scenes=1, max_new_tokens=4)[0]
    units = int(wide.note.split(" of the scene's ")[1].split()[0])
    assert len(wide.hyperphrase.split()) == core.cfg.max_seq_len < units
    core.cfg.max_seq_len = 3  # the core now holds only the scene's first three units
    cut = render_scenes(core, decoder, tiny_corpus(), "val", scenes=1, max_new_tokens=4)[0]
    assert len(cut.hyperphrase.split()) == 3
    assert f"holds 3 of the scene's {units} units" in cut.note
    assert cut.original and wide.original.startswith(cut.original)
    assert len(cut.original) < len(wide.original)


def test_documents_selects_whole_documents_of_each_language(align_checkpoint, capsys):
    """--documents N: the first N documents of each language, every byte of each (the records of
    a document are found from hypertrain.jsonl here, not from the shards' table)."""
    from dualmind.data.schema import read_hypertrain

    first: dict[str, str] = {}
    doc_bytes: dict[str, int] = {}
    for rec in read_hypertrain(tiny_corpus() / "hypertrain.jsonl"):
        if rec.split != "val":
            continue
        doc = rec.id.rsplit("#s", 1)[0]
        first.setdefault(rec.lang, doc)
        doc_bytes[doc] = doc_bytes.get(doc, 0) + len(rec.text.encode("utf-8"))
    assert set(first) == {"en", "ru"}
    report = evaluate(align_checkpoint, tiny_corpus(), scenes=0, documents=1)
    for lang, doc in first.items():
        bits = report.by_language[lang]
        assert bits.split_bytes == bits.text_bytes == doc_bytes[doc], lang
    only = evaluate(align_checkpoint, tiny_corpus(), scenes=0, documents=1, lang="ru")
    assert only.bits.text_bytes == doc_bytes[first["ru"]] and not only.by_language
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    both = parser.parse_args([str(align_checkpoint), "--data", str(tiny_corpus()),
                              "--documents", "1", "--max-records", "4"])
    assert run(both) == 2
    assert "not with max_records" in capsys.readouterr().out


def test_max_records_means_the_splits_first_records_with_or_without_a_language(align_checkpoint):
    from dualmind.data.open_corpus import open_shards
    from dualmind.train.align_datamodule import records_of_language

    val = open_shards(tiny_corpus(), "val")
    starts = sorted(int(records_of_language(val, lang)[0]) for lang in val.languages())
    n = starts[-1] + 2  # the last language to start has two records among the first n
    both = evaluate(align_checkpoint, tiny_corpus(), "val", max_records=n, scenes=0)
    assert len(both.by_language) == len(starts) >= 2
    for lang, bits in both.by_language.items():
        one = evaluate(align_checkpoint, tiny_corpus(), "val", max_records=n, scenes=0,
                       lang=lang).bits
        assert (one.records, one.text_bytes) == (bits.records, bits.text_bytes)
    assert sum(b.records for b in both.by_language.values()) == n


def test_a_language_with_no_records_among_the_first_is_an_error(align_checkpoint):
    from dualmind.data.open_corpus import open_shards
    from dualmind.train.align_datamodule import records_of_language

    val = open_shards(tiny_corpus(), "val")
    lang, start = max(((lang, int(records_of_language(val, lang)[0])) for lang in val.languages()),
                      key=lambda pair: pair[1])  # the language whose first record comes last
    with pytest.raises(EvalError, match=rf"no val records in '{lang}' among the split's first "
                                        rf"{start} \(its languages: en, ru\)"):
        evaluate(align_checkpoint, tiny_corpus(), "val", max_records=start, scenes=0, lang=lang)
