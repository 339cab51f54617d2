"""Records longer than a context are scored in windows, never cut: the two-headed model and the
BPE baseline pay for exactly the same bytes, tokens and units (issue 4, the yardstick)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dualmind.data.open_corpus import DataConfigError
from dualmind.data.shards import ShardSet
from dualmind.train.align_windows import plan_windows
from test_train_support import tiny_corpus

pytestmark = pytest.mark.usefixtures("one_thread")


def _covering(windows, n_units, n_tokens):
    """Windows tile [0, n_units) and [0, n_tokens) in order, first/last flags where they go."""
    assert windows[0].first and windows[-1].last
    assert not any(w.first for w in windows[1:]) and not any(w.last for w in windows[:-1])
    assert windows[0].a == 0 and windows[0].p == 0
    assert windows[-1].b == n_units and windows[-1].q == n_tokens
    for x, y in zip(windows, windows[1:], strict=False):
        assert x.b == y.a and x.q == y.p


def test_windows_tile_a_record_within_both_budgets():
    rng = np.random.default_rng(0)
    n_units = 97
    span = np.sort(np.concatenate([[-1, -1], rng.integers(0, n_units, 300)]))
    windows = plan_windows(span, n_units, core_len=20, text_len=50, has_core=True)
    _covering(windows, n_units, len(span))
    for w in windows:
        assert 1 <= w.b - w.a + w.last <= 20 and w.q - w.p <= 49  # the last: + the core EOS
        own = span[w.p:w.q]  # a window's tokens are aligned to its own units (or before unit 0)
        assert np.all((own >= w.a) & (own < w.b) | (own == -1) & (w.a == 0))
    text_only = plan_windows(span, n_units, core_len=1 << 40, text_len=50, has_core=False)
    _covering(text_only, n_units, len(span))
    assert all(w.q - w.p <= 49 for w in text_only)
    assert plan_windows(span, n_units, 1000, 1000, True) == plan_windows(span, n_units, 1000,
                                                                         1000, False)
    assert len(plan_windows(span, n_units, 1000, 1000, True)) == 1


def test_a_record_fills_the_rest_of_a_row_then_continues():
    rng = np.random.default_rng(1)
    n_units = 60
    span = np.sort(rng.integers(0, n_units, 150))
    for has_core in (True, False):
        core_len = 20 if has_core else 1 << 40
        windows = plan_windows(span, n_units, core_len, 50, has_core, room=(5, 10))
        _covering(windows, n_units, len(span))
        assert windows[0].q - windows[0].p <= 9
        assert not has_core or windows[0].b - windows[0].a <= 5
        assert not has_core or windows[-1].b - windows[-1].a + 1 <= core_len
        assert len(windows) > 1 and all(w.q - w.p <= 49 for w in windows)
    no_room = plan_windows(span, n_units, 20, 50, True, room=(0, 50))  # no unit fits: new row
    assert no_room == plan_windows(span, n_units, 20, 50, True)


def test_a_unit_with_more_text_than_a_window_is_refused_with_a_core():
    span = np.array([0, 1, 1, 1, 1, 1, 2])
    with pytest.raises(DataConfigError, match="unit 1 alone is aligned to 5 text tokens"):
        plan_windows(span, 3, core_len=8, text_len=4, has_core=True, where="x.shard record 3")
    windows = plan_windows(span, 3, core_len=8, text_len=4, has_core=False)
    _covering(windows, 3, len(span))


def _models(core_vocab, text_vocab):
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    torch.manual_seed(0)
    small = dict(dim=32, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=64, max_seq_len=4096)
    core = HyperCore(CoreConfig(vocab_size=core_vocab, **small)).eval()
    decoder = LanguageDecoder(DecoderConfig(vocab_size=text_vocab, core_dim=32,
                                            **small)).eval()
    baseline = HyperCore(CoreConfig(vocab_size=text_vocab, **small)).eval()
    return core, decoder, baseline


def test_both_models_pay_for_the_same_bytes_when_records_exceed_the_context():
    from dualmind.evaluate.score import score_split

    corpus = tiny_corpus()
    val = ShardSet.open(corpus, "val")
    n = min(len(val), 6)
    units, tokens = val.lengths()
    units, tokens = units[:n], tokens[:n]
    core_len, text_len, lm_len = 24, 64, 48
    assert units.max() > core_len and tokens.max() + 1 > lm_len  # really longer than a context
    core, decoder, baseline = _models(val.core_vocab_size, max(val.text_vocab_size, 512))

    two = score_split(core, decoder, corpus, "val", max_records=n, context=(core_len, text_len))
    lm = score_split(baseline, None, corpus, "val", max_records=n, context=(1 << 40, lm_len))
    whole = score_split(core, decoder, corpus, "val", max_records=n, context=(4096, 4096))

    split_bytes = sum(int(val[i].n_bytes) for i in range(n))
    for bits in (two, lm, whole):
        assert bits.records == n
        assert bits.split_bytes == split_bytes
        assert bits.text_bytes == split_bytes and bits.dropped_bytes == 0
        assert bits.text_positions == int(tokens.sum()) + n  # every token once, one EOS each
    for bits in (two, whole):
        assert bits.core_positions == int(units.sum()) + n  # every unit once, one core EOS each
    assert two.windowed > 0 and two.windows > n
    assert lm.windowed > 0 and lm.windows > n
    assert whole.windowed == 0 and whole.windows == n
    assert two.system_bpb > 0 and lm.system_bpb > 0


def test_scoring_one_language_scores_exactly_its_records():
    from dualmind.evaluate.score import score_split
    from dualmind.train.align_datamodule import records_of_language

    corpus = tiny_corpus()
    val = ShardSet.open(corpus, "val")
    core, decoder, _ = _models(val.core_vocab_size, max(val.text_vocab_size, 512))
    per_lang = {}
    for lang in ("en", "ru"):
        chosen = records_of_language(val, lang)
        assert all(val[int(i)].lang == lang for i in chosen)
        bits = score_split(core, decoder, corpus, "val", context=(64, 256), lang=lang)
        assert bits.records == len(chosen) and bits.dropped_bytes == 0
        assert bits.split_bytes == sum(int(val[int(i)].n_bytes) for i in chosen)
        per_lang[lang] = bits
    assert sum(b.records for b in per_lang.values()) == len(val)
    with pytest.raises(DataConfigError, match="no records in language 'xx'"):
        records_of_language(val, "xx")
