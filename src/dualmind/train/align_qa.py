"""QA pairs for stage=align: question and answer hyperphrases -> the answer's text (issue 4).

The corpus keeps QA/pair records in its own `qa` split: the shard record holds the question's
units, the answer's decoder tokens and their stored alignment (every answer token belongs to
the end of the hyperphrase it follows); `hypertrain.jsonl` holds the question text and the
answer's hyperphrase. An aligned QA record is therefore

    core   question units (shard) + answer units (target_hyperphrase); AlignPacks appends the
           core EOS after them, as after every record (the answer's end)
    text   the answer's tokens (shard)
    span   as stored, moved to the record's last unit: the answer's text is rendered after the
           decoder has read both hyperphrases, in stream mode as in render mode
    bytes  the answer's UTF-8 bytes, given to that last unit (what val/qa bits per byte divide by)

Held out: the questions :func:`dualmind.train.qa_data.is_heldout` holds out (same hash, same
fraction as the adapters' benchmark, adapt.heldout_fraction), so a question scored there is
never trained on by the decoder either. A record that cannot fit one row (more units + its EOS
than data.seq_len or more answer tokens than decoder.max_seq_len - 1) is skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dualmind.data.open_corpus import DataConfigError
from dualmind.data.shards import ShardSet


@dataclass
class QARecord:
    """One QA/pair record in the shape of a shard Scene (what AlignPacks reads)."""

    core: np.ndarray
    core_bytes: np.ndarray
    text: np.ndarray
    span: np.ndarray
    n_bytes: int
    doc: int
    lang: str
    kind: str
    question: str
    where: str


class RecordList:
    """Records held in memory, indexable like a ShardSet (lengths, bytes, locations)."""

    def __init__(self, records: list, corpus_dir: Any, split: str):
        self.records, self.corpus_dir, self.split = records, corpus_dir, split

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        return self.records[i]

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray([len(r.core) for r in self.records], dtype=np.int64),
                np.asarray([len(r.text) for r in self.records], dtype=np.int64))

    def record_bytes(self) -> np.ndarray:
        return np.asarray([r.n_bytes for r in self.records], dtype=np.int64)

    def location(self, i: int) -> str:
        return self.records[i].where


@dataclass
class QASplit:
    train: RecordList
    heldout: RecordList
    skipped: int  # records longer than one row


def load_qa_records(corpus_dir: str | Path, heldout_fraction: float, core_len: int,
                    text_len: int) -> QASplit | None:
    """The corpus's QA records for alignment, split train/held-out; None without a qa split."""
    from dualmind.lexicon.symbols import id_of
    from dualmind.train.qa_data import is_heldout, iter_qa_records, question_of

    corpus_dir = Path(corpus_dir)
    shards = ShardSet.open(corpus_dir, "train")
    if "qa" not in shards.manifest.get("splits", {}):
        return None
    shards = ShardSet.open(corpus_dir, "qa")
    lines = [(w, r) for w, r in iter_qa_records(corpus_dir) if r.get("split", "qa") == "qa"]
    if len(lines) != len(shards):
        raise DataConfigError(f"{corpus_dir}: the qa split has {len(shards)} shard records but "
                              f"hypertrain.jsonl {len(lines)} qa/pair records; rebuild the corpus")
    train, heldout, skipped = [], [], 0
    for i, (where, rec) in enumerate(lines):
        stored = shards[i]
        try:
            question = np.fromiter((id_of(c) for c in rec["hyperphrase"]), dtype=np.int64)
            answer = np.fromiter((id_of(c) for c in rec["target_hyperphrase"]), dtype=np.int64)
        except ValueError as err:
            raise DataConfigError(f"{where}: {err}") from err
        if not np.array_equal(question, stored.core):
            raise DataConfigError(f"{where}: its hyperphrase differs from qa shard record {i}; "
                                  "hypertrain.jsonl and the shards are from different builds")
        core = np.concatenate([question, answer])
        if len(core) + 1 > core_len or len(stored.text) >= text_len:  # + 1: the core EOS
            skipped += 1
            continue
        n_bytes = len(rec["target"].encode("utf-8"))
        core_bytes = np.zeros(len(core), dtype=np.int64)
        core_bytes[-1] = n_bytes
        span = np.where(stored.span >= 0, len(core) - 1, -1)
        record = QARecord(core, core_bytes, stored.text, span, n_bytes, stored.doc, stored.lang,
                          stored.kind, question_of(rec), where)
        (heldout if is_heldout(record.question, heldout_fraction) else train).append(record)
    return QASplit(RecordList(train, corpus_dir, "qa train"),
                   RecordList(heldout, corpus_dir, "qa held-out"), skipped)


class Interleaved:
    """Scenes and QA records in one deterministic order: QA record k follows scene
    floor((k + 1) * scenes / (qa + 1)), so both kinds are spread evenly along the split."""

    def __init__(self, scenes: Any, qa: RecordList):
        self.scenes, self.qa = scenes, qa
        self.corpus_dir, self.split = scenes.corpus_dir, f"{scenes.split}+qa"
        n, m = len(scenes), len(qa)
        after = (np.arange(1, m + 1) * n) // (m + 1)  # scenes placed before QA record k
        keys = np.concatenate([np.arange(n) * 2, after * 2 - 1])
        kinds = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(m, dtype=np.int64)])
        index = np.concatenate([np.arange(n), np.arange(m)])
        order = np.lexsort((index, kinds, keys))
        self.kind, self.index = kinds[order], index[order]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        return (self.qa if self.kind[i] else self.scenes)[int(self.index[i])]

    def _gather(self, scene_values: np.ndarray, qa_values: np.ndarray) -> np.ndarray:
        """Per record in this order: the scene's value or the QA record's."""
        out = np.zeros(len(self.index), dtype=np.int64)
        qa = self.kind == 1
        out[~qa] = np.asarray(scene_values)[self.index[~qa]]
        out[qa] = np.asarray(qa_values)[self.index[qa]]
        return out

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        (su, st), (qu, qt) = self.scenes.lengths(), self.qa.lengths()
        return self._gather(su, qu), self._gather(st, qt)

    def record_bytes(self) -> np.ndarray:
        from dualmind.train.align_windows import record_bytes

        return self._gather(record_bytes(self.scenes), self.qa.record_bytes())

    def location(self, i: int) -> str:
        from dualmind.train.align_windows import record_location

        if self.kind[i]:
            return self.qa.location(int(self.index[i]))
        return record_location(self.scenes, int(self.index[i]))
