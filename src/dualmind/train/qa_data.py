"""The adaptation task: QA and pair records in hyperphrase space, for stage=lora|unfreeze.

Source: the corpus's `hypertrain.jsonl` (data.dir), the records of its qa split (kind qa|pair):
the question's `hyperphrase` and the answer's `target_hyperphrase`. Symbols map to lexicon ids
without the lexicon itself (:func:`dualmind.lexicon.symbols.id_of`); the manifest names the
lexicon, and the core checkpoint is checked against it.

One example is the sequence ``question + answer (+ EOS)``; the core reads it left to right and
is charged only for predicting the answer's symbols (and the EOS after them, adapt.answer_eos):
the question is context, not task. Examples are packed back to back into rows of data.seq_len
symbols, each its own document (doc_ids), so attention never crosses examples and RoPE
positions restart at every question; the rest of a row is padding, never scored.

Held out: the examples whose question hashes into adapt.heldout_fraction (sha1 of the
normalised question), so all answers to a question land on one side. An example longer than a
row keeps its question and loses the end of its answer; how many were cut is counted
(:attr:`QAExamples.truncated`) and printed when the data is opened, as is the number of records
skipped because their answer encodes to no symbols at all (a semantic lexicon drops stop words:
"How are you doing?" can vanish; :attr:`QAExamples.empty`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dualmind.data.open_corpus import DataConfigError, resolve_expected_fingerprint
from dualmind.train.datamodule import trainer_position

IGNORE = -100
PAD, EOS = 0, 2  # Lexicon.PAD, Lexicon.EOS: reserved ids, the same in every lexicon
HELDOUT_SALT = "dualmind-adapt-heldout"


@dataclass
class QAExample:
    question: np.ndarray  # int64 lexicon ids
    answer: np.ndarray  # int64 lexicon ids (+ EOS when adapt.answer_eos)
    answer_bytes: int  # UTF-8 bytes of the answer text: bits per byte of the task
    kind: str


@dataclass
class QAExamples:
    train: list[QAExample]
    heldout: list[QAExample]
    lexicon_fingerprint: str
    truncated: int = 0  # examples whose answer was cut to fit data.seq_len
    empty: int = 0  # records skipped: their answer encodes to no symbols (semantic lexicons)


def is_heldout(question: str, fraction: float) -> bool:
    key = " ".join(question.lower().split())
    h = hashlib.sha1(f"{HELDOUT_SALT}|{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def read_manifest(corpus_dir: Path) -> dict:
    path = corpus_dir / "manifest.json"
    if not path.is_file():
        raise DataConfigError(f"data.dir={corpus_dir}: no manifest.json (not a finished corpus "
                              "build; run `dualmind corpus build`)")
    return json.loads(path.read_text(encoding="utf-8"))


def question_of(rec: dict) -> str:
    """The question text of a qa/pair record of hypertrain.jsonl (what is_heldout hashes)."""
    return rec.get("input") or rec["text"]


def iter_qa_records(corpus_dir: str | Path) -> Iterator[tuple[str, dict]]:
    """('<file>:<line> (<id>)', record) of every qa/pair record of the corpus's hypertrain.jsonl,
    in stored order (the qa split's shard order); each has its target_hyperphrase. Shared by the
    adapters' task and the decoder's alignment (dualmind.train.align_qa), so both hold out the
    same questions."""
    corpus_dir = Path(corpus_dir)
    manifest = read_manifest(corpus_dir)
    path = corpus_dir / manifest.get("hypertrain", {}).get("file", "hypertrain.jsonl")
    if not path.is_file():
        raise DataConfigError(f"data.dir={corpus_dir}: {path.name} is missing")
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if '"qa"' not in line and '"pair"' not in line:  # cheap skip of the scenes
                continue
            rec = json.loads(line)
            if rec.get("kind") not in ("qa", "pair"):
                continue
            where = f"{path}:{line_no} ({rec.get('id')})"
            if "target_hyperphrase" not in rec:
                raise DataConfigError(f"{where}: a {rec['kind']} record without "
                                      "target_hyperphrase; rebuild the corpus")
            yield where, rec


def load_examples(corpus_dir: str | Path, heldout_fraction: float, answer_eos: bool = True,
                  seq_len: int | None = None, vocab_size: int | None = None) -> QAExamples:
    """Every qa/pair record of the corpus as an example, split train/held-out."""
    from dualmind.lexicon.symbols import id_of

    corpus_dir = Path(corpus_dir)
    manifest = read_manifest(corpus_dir)
    train, heldout, truncated, empty = [], [], 0, 0
    for where, rec in iter_qa_records(corpus_dir):
        if not rec["target_hyperphrase"]:  # a semantic lexicon may drop every answer word
            empty += 1
            continue
        try:
            q = np.fromiter((id_of(c) for c in rec["hyperphrase"]), dtype=np.int64)
            a = np.fromiter((id_of(c) for c in rec["target_hyperphrase"]), dtype=np.int64)
        except ValueError as err:
            raise DataConfigError(f"{where}: {err}") from err
        if answer_eos:
            a = np.append(a, EOS)
        if vocab_size is not None and len(q) and max(q.max(), a.max()) >= vocab_size:
            raise DataConfigError(f"{where}: symbol id {max(q.max(), a.max())} >= "
                                  f"model.vocab_size={vocab_size}")
        if len(q) == 0:
            raise DataConfigError(f"{where}: the question encodes to no symbols")
        if seq_len is not None and len(q) + len(a) > seq_len + 1:
            if len(q) >= seq_len:
                raise DataConfigError(f"{where}: a question of {len(q)} symbols leaves no "
                                      f"room for its answer in data.seq_len={seq_len}")
            a = a[: seq_len + 1 - len(q)]
            truncated += 1
        ex = QAExample(q, a, len(rec["target"].encode("utf-8")), rec["kind"])
        (heldout if is_heldout(question_of(rec), heldout_fraction) else train).append(ex)
    if not train or not heldout:
        raise DataConfigError(
            f"data.dir={corpus_dir}: {len(train)} training and {len(heldout)} held-out QA/pair "
            f"examples; stage lora/unfreeze needs both (a corpus built with QA pairs, "
            f"adapt.heldout_fraction in (0, 1))")
    return QAExamples(train, heldout, manifest["lexicon"]["fingerprint"], truncated, empty)


def pack_rows(examples: list[QAExample], seq_len: int) -> list[list[int]]:
    """Indices of the examples of each row, greedily in the given order."""
    rows, row, used = [], [], 0
    for i, ex in enumerate(examples):
        n = len(ex.question) + len(ex.answer) - 1  # positions: the last symbol is only a target
        if row and used + n > seq_len:
            rows.append(row)
            row, used = [], 0
        row.append(i)
        used += n
    if row:
        rows.append(row)
    return rows


def make_row(examples: list[QAExample], seq_len: int) -> dict[str, np.ndarray]:
    ids = np.full(seq_len, PAD, dtype=np.int64)
    targets = np.full(seq_len, IGNORE, dtype=np.int64)
    docs = np.zeros(seq_len, dtype=np.int64)
    pos, answer_bytes = 0, 0
    for doc, ex in enumerate(examples):
        seq = np.concatenate([ex.question, ex.answer])
        n = len(seq) - 1
        ids[pos:pos + n] = seq[:-1]
        # position j predicts seq[j+1]; the answer starts at len(question)
        scored = np.arange(1, len(seq)) >= len(ex.question)
        targets[pos:pos + n] = np.where(scored, seq[1:], IGNORE)
        docs[pos:pos + n] = doc
        pos += n
        answer_bytes += ex.answer_bytes
    docs[pos:] = len(examples)  # padding: a document of its own
    real = np.zeros(seq_len, dtype=np.float32)  # 1 where an example sits (the KL guard's mask)
    real[:pos] = 1.0
    return {"ids": ids, "targets": targets, "doc_ids": docs, "real": real,
            "answer_bytes": np.asarray(answer_bytes, dtype=np.int64)}


def collate(rows: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([r[k] for r in rows])) for k in rows[0]}


class QATrainBatches(IterableDataset):
    """Endless batches: pass p shuffles the examples with (seed, p) and packs them into rows;
    batch j is rows [j*B, (j+1)*B) of the concatenated passes, whatever the resume point."""

    def __init__(self, examples: list[QAExample], seq_len: int, batch_size: int, seed: int,
                 start_batch: int = 0, rank: int = 0, world_size: int = 1):
        self.examples, self.seq_len, self.batch_size = examples, seq_len, batch_size
        self.seed, self.start_batch = seed, start_batch
        self.rank, self.world_size = rank, world_size

    def rows(self):
        p = 0
        while True:
            order = np.random.default_rng([self.seed, p]).permutation(len(self.examples))
            shuffled = [self.examples[i] for i in order]
            for row in pack_rows(shuffled, self.seq_len):
                yield [shuffled[i] for i in row]
            p += 1

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        step = self.batch_size * self.world_size
        batch, j = [], 0
        for k, row in enumerate(self.rows()):
            b, within = divmod(k, step)
            if within // self.batch_size != self.rank:
                continue
            if b < self.start_batch or (b - self.start_batch) % workers != worker:
                continue
            batch.append(make_row(row, self.seq_len))
            if len(batch) == self.batch_size:
                yield collate(batch)
                batch, j = [], j + 1


def heldout_rows(examples: list[QAExample], seq_len: int) -> list[dict[str, np.ndarray]]:
    """The held-out examples in their stored order, packed: the same rows every time."""
    return [make_row([examples[i] for i in row], seq_len) for row in pack_rows(examples, seq_len)]


class QADataModule(L.LightningDataModule):
    """Train loader: packed training examples; val loader: the held-out examples (task loss)."""

    def __init__(self, corpus_dir: str, seq_len: int, batch_size: int, seed: int = 1234,
                 heldout_fraction: float = 0.1, answer_eos: bool = True,
                 lexicon: str | None = None, model_vocab_size: int | None = None):
        super().__init__()
        self.corpus_dir, self.seq_len, self.batch_size = str(corpus_dir), seq_len, batch_size
        self.seed, self.heldout_fraction, self.answer_eos = seed, heldout_fraction, answer_eos
        self.expected_fingerprint = resolve_expected_fingerprint(lexicon)
        self.model_vocab_size = model_vocab_size
        self.examples: QAExamples | None = None
        self.lexicon_fingerprint: str | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> QADataModule:
        from omegaconf import OmegaConf

        from dualmind.adapters.settings import adapt_settings

        adapt = adapt_settings(OmegaConf.to_container(cfg, resolve=True))
        d = cfg.data
        return cls(d.dir, d.seq_len, d.batch_size, d.seed, adapt.heldout_fraction,
                   adapt.answer_eos, d.lexicon, cfg.model.vocab_size)

    def prepare(self) -> QADataModule:
        if self.examples is not None:
            return self
        if not Path(self.corpus_dir).is_dir():
            raise DataConfigError(f"data.dir={self.corpus_dir}: no such folder")
        ex = load_examples(self.corpus_dir, self.heldout_fraction, self.answer_eos,
                           self.seq_len, self.model_vocab_size)
        if self.expected_fingerprint is not None and ex.lexicon_fingerprint != \
                self.expected_fingerprint:
            raise DataConfigError(f"data.dir={self.corpus_dir}: built with lexicon "
                                  f"{ex.lexicon_fingerprint}, data.lexicon is "
                                  f"{self.expected_fingerprint}")
        if ex.truncated:
            print(f"adapt: {ex.truncated} QA/pair answers cut to fit data.seq_len="
                  f"{self.seq_len}")
        if ex.empty:
            print(f"adapt: {ex.empty} QA/pair records skipped: their answer encodes to no "
                  f"symbols in this lexicon")
        self.examples, self.lexicon_fingerprint = ex, ex.lexicon_fingerprint
        return self

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def train_dataloader(self) -> DataLoader:
        self.prepare()
        start, rank, world = trainer_position(self.trainer)
        batches = QATrainBatches(self.examples.train, self.seq_len, self.batch_size, self.seed,
                                 start, rank, world)
        return DataLoader(batches, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        self.prepare()
        return DataLoader(heldout_rows(self.examples.heldout, self.seq_len),
                          batch_size=self.batch_size, shuffle=False, collate_fn=collate)
