"""Core pretraining ends every record with the lexicon's EOS (issue 13, item 4): the stream the
core learns from has one EOS after each record, with 0 text bytes and the record's document, so
the core's code length pays for where records end while bits per byte keep dividing by the
text's own bytes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dualmind.data.open_corpus import DataConfigError
from dualmind.data.shards import ShardSet
from dualmind.lexicon.lexicon import Lexicon
from dualmind.train.datamodule import EOS, CoreDataModule, CoreStream, core_stream
from test_train_support import tiny_corpus

pytestmark = pytest.mark.usefixtures("one_thread")


def synthetic(seed=0):
    """A stream of records (one of them empty) and the same stream with EOS written out."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, 40)
    lengths[7] = 0
    docs_of = np.repeat(np.arange(10) + 500, 4)  # 4 records per document
    ids = [rng.integers(4, 900, n) for n in lengths]
    nbytes = [rng.integers(1, 9, n) for n in lengths]
    flat = CoreStream(np.concatenate(ids).astype(np.int32),
                      np.concatenate(nbytes).astype(np.int32),
                      np.repeat(docs_of, lengths).astype(np.int32), "synthetic",
                      record_ends=np.cumsum(lengths))
    ref_ids, ref_bytes, ref_docs = [], [], []
    for i, b, d in zip(ids, nbytes, docs_of, strict=True):
        if len(i):  # an empty record has no end to mark
            ref_ids += [*i, EOS]
            ref_bytes += [*b, 0]
            ref_docs += [d] * (len(i) + 1)
    return flat, np.array(ref_ids), np.array(ref_bytes), np.array(ref_docs)


def test_eos_is_the_lexicons_end_symbol():
    assert EOS == Lexicon.EOS == 2


def test_every_sequence_is_a_window_of_the_stream_with_eos():
    stream, ids, nbytes, docs = synthetic()
    assert len(stream) == len(ids) == int(stream.ids.shape[0]) + 39
    assert all(np.array_equal(a, b) for a, b in zip(stream.span(0, len(stream)),
                                                     (ids, nbytes, docs), strict=True))
    for seq_len in (1, 7, 32, 100):
        assert stream.num_sequences(seq_len) == (len(ids) - 1) // seq_len
        for k in range(stream.num_sequences(seq_len)):
            seq, s = stream.sequence(k, seq_len), k * seq_len
            assert np.array_equal(seq["ids"], ids[s:s + seq_len])
            assert np.array_equal(seq["targets"], ids[s + 1:s + seq_len + 1])
            assert np.array_equal(seq["target_bytes"], nbytes[s + 1:s + seq_len + 1])
            run = docs[s:s + seq_len]
            want = np.concatenate([[0], np.cumsum(run[1:] != run[:-1])])
            assert np.array_equal(seq["doc_ids"], want)


def test_the_split_stream_has_one_eos_per_record_with_no_bytes_and_its_document():
    shards = ShardSet.open(tiny_corpus(), "train")
    packed = shards.packed_core()
    assert not np.any(np.asarray(packed.core) == EOS)  # so every EOS below is one we added
    stream = core_stream(shards, "train")
    ids, nbytes, docs = stream.span(0, len(stream))
    at = np.flatnonzero(ids == EOS)
    assert len(at) == len(shards) and len(stream) == len(packed.core) + len(shards)
    assert not nbytes[at].any() and int(nbytes.sum()) == int(np.asarray(packed.core_bytes).sum())
    ends = np.cumsum(shards.lengths()[0])
    assert np.array_equal(at, ends + np.arange(len(ends)))  # right after each record's last unit
    assert np.array_equal(docs[at], [sc.doc for sc in shards])
    assert np.array_equal(np.delete(ids, at), np.asarray(packed.core))
    assert stream.num_sequences(64) == (len(packed.core) + len(shards) - 1) // 64


def test_a_record_table_that_does_not_match_the_packed_ids_is_refused():
    stream, *_ = synthetic()
    with pytest.raises(DataConfigError, match="different builds"):
        CoreStream(stream.ids, stream.unit_bytes, stream.docs, "x",
                   record_ends=stream.record_ends[:-1])


def test_the_core_loss_pays_for_eos_and_bits_per_byte_divide_by_text_bytes_only():
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore
    from dualmind.train.module import DualMindModule

    dm = CoreDataModule(str(tiny_corpus()), seq_len=64, batch_size=4, model_vocab_size=1024,
                        model_max_seq_len=64).prepare()
    # records run to ~300 units: the first batches of 4 x 64 may end none of them
    batch = next(b for b in dm.val_dataloader() if (b["targets"] == EOS).any())
    eos = batch["targets"] == EOS
    assert eos.any() and not batch["target_bytes"][eos].any()
    torch.manual_seed(0)
    core = HyperCore(CoreConfig(vocab_size=1024, dim=32, n_layers=1, n_heads=2, n_kv_heads=1,
                                ffn_dim=64, max_seq_len=64)).eval()
    with torch.no_grad():
        counts = DualMindModule._core_step(SimpleNamespace(core=core, loss_chunk=0), batch)
        logits = core(batch["ids"], doc_ids=batch["doc_ids"]).logits.float()
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(),
                                            reduction="none").view(eos.shape)
    assert int(counts.symbols) == eos.numel()  # EOS targets are symbols the core predicts
    assert float(counts.nll_sum) == pytest.approx(float(nll.sum()), rel=1e-5)
    assert float(nll[eos].sum()) > 0 and float(counts.nll_sum) > float(nll[~eos].sum())
    assert int(counts.text_bytes) == int(batch["target_bytes"][~eos].sum())
