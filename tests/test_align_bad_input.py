"""Bad input to alignment and evaluation: clear errors that name the file and the mismatch."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from dualmind.data.open_corpus import DataConfigError
from dualmind.data.shards import ShardSet
from dualmind.train.align_datamodule import AlignPacks
from dualmind.train.align_windows import check_record
from test_train_support import tiny_corpus


def scene(core=(5, 6, 7), text=(10, 11, 12, 13), span=(-1, 0, 1, 2), core_bytes=(3, 2, 4),
          n_bytes=9):
    return SimpleNamespace(core=np.array(core), text=np.array(text), span=np.array(span),
                           core_bytes=np.array(core_bytes), n_bytes=n_bytes, doc=4, kind="scene")


@pytest.mark.parametrize("bad, message", [
    (dict(text=(), span=(), n_bytes=0), "a scene with no text"),
    (dict(core=(), core_bytes=(), n_bytes=9), "no hyperphrase units"),
    (dict(span=(0, 1, 2)), "4 text tokens but 3 span ids"),
    (dict(span=(0, 1, 2, 3)), "aligned to unit 3, but the hyperphrase has 3 units"),
    (dict(span=(0, 2, 1, 2)), "goes back from unit 2 to unit 1"),
    (dict(core_bytes=(3, 2, 5)), "add up to 10 bytes, the record has 9"),
])
def test_records_that_do_not_match_their_hyperphrase_are_refused(bad, message):
    check_record(scene(), "corpus/shards/val-00000.shard record 7")  # the good one passes
    with pytest.raises(DataConfigError, match=message) as err:
        check_record(scene(**bad), "corpus/shards/val-00000.shard record 7")
    assert "corpus/shards/val-00000.shard record 7 (document 4, scene)" in str(err.value)


def _broken_copy(tmp_path, array: str, record: int, value) -> tuple:
    """A copy of the tiny corpus with one value of one val shard array overwritten in place (the
    file keeps its size, so only the record itself is wrong)."""
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus(), corpus)
    val = ShardSet.open(corpus, "val")
    shard = val.files[0]
    arrays = shard.arrays
    offset = {"span": int(arrays["rec_text"][record]), "text": int(arrays["rec_text"][record]),
              "rec_n_bytes": record}[array]
    spec = shard.header["arrays"][array]
    mm = np.memmap(shard.path, dtype=np.dtype(spec["dtype"]), mode="r+",
                   offset=shard.header["data_start"] + spec["rel"], shape=(spec["length"],))
    mm[offset + (1 if array == "span" else 0)] = value
    mm.flush()
    return corpus, shard.path


def test_a_broken_alignment_in_a_shard_names_the_file_and_record(tmp_path):
    corpus, path = _broken_copy(tmp_path, "span", record=2, value=10**6)
    val = ShardSet.open(corpus, "val")
    packs = AlignPacks(val, 1 << 20, 1 << 20, 1, 2)  # rows hold whole records: nothing read yet
    with pytest.raises(DataConfigError, match=rf"{path} record 2 .*aligned to unit 1000000"):
        for i in range(len(packs)):
            packs[i]
    with pytest.raises(DataConfigError, match=rf"{path} record 2 "):  # windows read it at once
        AlignPacks(val, 8, 64, 1, 2)


def test_a_record_whose_bytes_disagree_names_the_file(tmp_path):
    corpus, path = _broken_copy(tmp_path, "rec_n_bytes", record=0, value=0)
    with pytest.raises(DataConfigError, match=rf"{path} record 0 .*a scene with no text"):
        AlignPacks(ShardSet.open(corpus, "val"), 8, 64, 1, 2)[0]
