"""Aligned rows end each record's core units with the lexicon's EOS, as core pretraining does
(issue 13, item 4), so `dualmind eval`'s core part codes where records end: the last window of a
record holds it, rows never exceed their units with it, no text is aligned to it and it adds no
bytes; QA records end with it after the answer's units."""

from __future__ import annotations

import numpy as np
import pytest

from dualmind.data.open_corpus import DataConfigError
from dualmind.data.shards import ShardSet
from dualmind.lexicon.lexicon import Lexicon
from dualmind.train.align_datamodule import CORE_EOS, AlignDataModule, AlignPacks, collate_aligned
from dualmind.train.align_qa import load_qa_records
from dualmind.train.align_windows import plan_windows
from test_adapters_support import qa_corpus
from test_align_qa import qa_cores
from test_train_support import tiny_corpus

pytestmark = pytest.mark.usefixtures("one_thread")


def windows_by_record(packs):
    """{record: [(Window, AlignedRecord), ...]} in order, and each row's core length."""
    out, row_units = {}, []
    for k, row in enumerate(packs.rows):
        aligned = packs[k]
        row_units.append(sum(len(r.core) for r in aligned))
        for (i, w), rec in zip(row, aligned, strict=True):
            out.setdefault(i, []).append((w, rec))
    return out, row_units


@pytest.mark.parametrize("core_len,text_len", [(24, 64), (4096, 4096)],
                         ids=["windowed", "whole"])
def test_each_record_ends_with_one_core_eos_and_rows_stay_within_core_len(core_len, text_len):
    val = ShardSet.open(tiny_corpus(), "val")
    packs = AlignPacks(val, core_len, text_len, bos=1, eos=2)
    assert CORE_EOS == Lexicon.EOS
    by_record, row_units = windows_by_record(packs)
    assert max(row_units) <= core_len and len(by_record) == len(val)
    for i, windows in by_record.items():
        scene = val[i]
        cores = [rec.core for _, rec in windows]
        # the record's units once, in order, then its EOS, which only the last window holds
        assert np.array_equal(np.concatenate(cores), [*scene.core, CORE_EOS])
        assert all(CORE_EOS not in c for c in cores[:-1])
        w, last = windows[-1]
        # the text's EOS still reads the record's last unit of its own, not the core EOS
        assert last.span[-1] == w.b - w.a - 1 == len(last.core) - 2
        assert sum(rec.n_bytes for _, rec in windows) == scene.n_bytes  # EOS adds no bytes
    batch = collate_aligned([packs[k] for k in range(min(3, len(packs)))])
    real = batch["alignment"].core_doc >= 0
    assert int((batch["core_ids"][real] == CORE_EOS).sum()) == sum(
        w.last for row in packs.rows[:3] for _, w in row)


def test_a_record_as_long_as_a_row_leaves_its_eos_to_a_second_window():
    span = np.repeat(np.arange(20), 2)
    assert len(plan_windows(span, 19, core_len=20, text_len=1000, has_core=True)) == 1
    windows = plan_windows(span, 20, core_len=20, text_len=1000, has_core=True)
    assert [(w.a, w.b) for w in windows] == [(0, 19), (19, 20)]  # 19 units; 1 unit + EOS
    # a row's rest that holds the record's units but not its EOS: the record is cut there
    assert len(plan_windows(span[:10], 5, core_len=20, text_len=1000, has_core=True,
                            room=(5, 500))) == 2
    with pytest.raises(DataConfigError, match="cannot hold a window"):
        plan_windows(span, 20, core_len=1, text_len=1000, has_core=True)


def test_qa_records_end_with_eos_after_the_answer():
    dm = AlignDataModule(qa_corpus(), 128, 512, batch_size=2, qa=True).prepare()
    by_record, row_units = windows_by_record(dm.qa_val_packs)
    assert max(row_units) <= 128
    cores = [np.concatenate([rec.core for _, rec in ws]) for ws in by_record.values()]
    assert all(c[-1] == CORE_EOS and CORE_EOS not in c[:-1] for c in cores)
    assert {tuple(c[:-1].tolist()) for c in cores} == qa_cores(heldout=True)
    # the answer's text reads the answer's last unit, the one before the EOS
    assert all(ws[-1][1].span[-1] == len(ws[-1][1].core) - 2 for ws in by_record.values())


def test_a_qa_record_that_fills_a_row_without_its_eos_is_skipped():
    wide = load_qa_records(qa_corpus(), 0.1, 4096, 4096)
    longest = max(len(r.core) for r in [*wide.train.records, *wide.heldout.records])
    assert wide.skipped == 0
    at = load_qa_records(qa_corpus(), 0.1, longest, 4096)  # its units fit, its EOS does not
    above = load_qa_records(qa_corpus(), 0.1, longest + 1, 4096)
    assert at.skipped >= 1 and above.skipped == 0
