"""benchmarks/chat_fluency.py: the order gain is what a text's word order is worth to the
reference model (positive for the order it expects, nothing for a text a shuffle cannot change),
and a reference on another tokenizer is refused naming the files."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import chat_fluency  # noqa: E402

from test_baseline_samples import _checkpoint  # noqa: E402

WORDS = ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7"]


class WordTokenizer:
    """One id per word (id 0 is BOS): enough to read the scores by hand."""

    def get_vocab_size(self):
        return len(WORDS) + 1

    def encode(self, text):
        return SimpleNamespace(ids=[WORDS.index(w) + 1 for w in text.split()])

    def decode(self, ids):
        return " ".join(WORDS[i - 1] for i in ids)


class CountingLM(torch.nn.Module):
    """Expects the next word to be the one after the current (probability ~0.9)."""

    cfg = SimpleNamespace(vocab_size=len(WORDS) + 1, max_seq_len=64)

    def forward(self, ids):
        logits = torch.zeros(*ids.shape, len(WORDS) + 1)
        logits.scatter_(-1, (ids + 1).clamp(max=len(WORDS)).unsqueeze(-1), 5.0)
        return SimpleNamespace(logits=logits)


def test_words_in_the_expected_order_gain_and_a_text_no_shuffle_changes_does_not():
    reference = chat_fluency.Reference(CountingLM(), WordTokenizer(), bos=0, max_tokens=64)
    text = " ".join(WORDS)
    p_next = math.exp(5) / (math.exp(5) + len(WORDS))  # the expected word, 9 ids in all
    assert reference.bits_per_byte(text) == pytest.approx(
        -len(WORDS) * math.log2(p_next) / len(text.encode()), rel=1e-5)
    gain = reference.order_gain([(0, text), (1, "w2 w3 w4 w5")])
    assert gain.mean > 1.0 and gain.shuffled[0] > gain.written[0] + 1.0
    assert gain.written[0] == pytest.approx(reference.bits_per_byte(text))
    assert reference.order_gain([(0, "w3 w3 w3 w3")]).mean == 0.0


def test_a_prompts_draws_are_one_group_for_the_mean_and_its_error():
    gain = chat_fluency.Gain()
    for group, written, shuffled in [(0, 1.0, 2.0), (0, 1.0, 4.0), (1, 1.0, 1.0)]:
        gain.add(group, written, shuffled)
    assert gain.mean == pytest.approx((2.0 + 0.0) / 2)  # group means 2 and 0, not 4/3
    assert gain.stderr == pytest.approx(math.sqrt(2.0) / math.sqrt(2))


def test_a_reference_on_another_tokenizer_is_refused_naming_both(tmp_path):
    from dualmind.data.text_tokenizer import train_text_tokenizer

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    train_text_tokenizer(["the night was dark and full of waiting"] * 20,
                         vocab_size=300).save(str(corpus / "tokenizer.json"))
    lm = _checkpoint(tmp_path / "lm.ckpt", "lm")  # a vocabulary of 64
    with pytest.raises(SystemExit, match=r"lm\.ckpt: a vocabulary of 64 .*tokenizer\.json has"):
        chat_fluency.main([str(tmp_path / "bridge"), str(lm), str(corpus)])
    with pytest.raises(SystemExit, match=r"nowhere: no tokenizer\.json"):
        chat_fluency.main([str(tmp_path / "bridge"), str(lm), str(tmp_path / "nowhere")])


def test_the_reference_is_refused_as_its_own_peer(tmp_path):
    from dualmind.data.text_tokenizer import train_text_tokenizer
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    tok = train_text_tokenizer(["the night was dark and full of waiting"] * 20, vocab_size=300)
    tok.save(str(corpus / "tokenizer.json"))
    cfg = CoreConfig(vocab_size=tok.get_vocab_size(), dim=32, n_layers=1, n_heads=2,
                     n_kv_heads=1, ffn_dim=64, max_seq_len=32)
    lm = tmp_path / "lm.ckpt"
    torch.save({"dualmind": {"stage": "lm", "model": cfg.to_dict()}, "global_step": 1,
                "state_dict": {f"core.{k}": v for k, v in HyperCore(cfg).state_dict().items()}},
               lm)
    with pytest.raises(SystemExit, match=r"lm\.ckpt is the reference"):
        chat_fluency.main([str(tmp_path / "bridge"), str(lm), str(corpus), "--peer", str(lm)])


def test_a_text_is_cut_at_a_word_boundary_keeping_a_word_that_ends_at_the_cut():
    assert chat_fluency.cut("the night was dark", 12) == "the night"
    assert chat_fluency.cut("the night was", 9) == "the night"
    assert chat_fluency.cut("short", 12) == "short"
    assert chat_fluency.cut("unbroken", 4) == "unbr"


def test_texts_too_short_to_compare_are_left_out_and_counted():
    texts = [(0, "w1 w2 w3 w4 w5 w6"), (1, "w1 w2 w3"), (2, "w1 w2 w3 w4")]
    kept, left = chat_fluency.comparable(texts, chars=14)
    assert kept == [(0, "w1 w2 w3 w4 w5")] and left == 2  # 3 words; 11 of 14 characters


def test_every_line_is_scored_at_one_length_and_short_texts_are_counted(monkeypatch, capsys):
    said = [(0, "w0 w1 w2 w3 w4 w5 w6 w7"), (1, "w1 w2 w3 w4 w5 w6 w7"), (1, "w5 w6")]
    monkeypatch.setattr(chat_fluency, "corpus_tokenizer", lambda corpus: WordTokenizer())
    monkeypatch.setattr(chat_fluency, "load_lm", lambda path: (CountingLM(), 5))
    monkeypatch.setattr(chat_fluency, "load_bridge", lambda path: None)
    monkeypatch.setattr(chat_fluency, "open_val", lambda corpus: None)
    monkeypatch.setattr(chat_fluency, "answers", lambda bridge, prompts, args: said)
    monkeypatch.setattr(chat_fluency, "scene_sample", lambda shards, lang, count: [3, 4])
    monkeypatch.setattr(chat_fluency, "held_out_texts", lambda shards, tokenizer, records: [
        "w2 w3 w4 w5 w6 w7 w0", "w7 w6 w5 w4 w3 w2"])
    chat_fluency.main(["bridge", "ref.ckpt", "corpus", "--chars", "14", "--show", "0"])
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| ")][1:]
    assert len(rows) == 2, rows
    held_out, answered = rows
    assert held_out.startswith("| held-out scenes (en) | 2 (2) |")
    assert answered.startswith("| answers of bridge (1 of 3 too short, left out) | 2 (2) |")
    assert re.fullmatch(r" \d+% ± \d+% ", answered.split("|")[-2])  # a share of the held-out
    assert held_out.split("|")[-2] == " - "
