"""Packed hyperphrase sequences for core pretraining (stage=core).

Scenes are laid back to back in one flat stream of core symbols per split (the shards' memmap
fast path, no Python loop per scene), each followed by the lexicon's EOS, and cut into sequences
of `seq_len + 1` symbols: inputs are the first `seq_len`, targets the last. Each position also
carries its document (doc_ids, renumbered 0.. within the sequence) so the core's attention never
crosses documents, and the text bytes of its target unit (target_bytes), from which bits per byte
of the underlying text follow without decoding anything.

The EOS after each record is what lets a thinking core stop (bridge.thinking). It belongs to its
record's document and carries 0 text bytes: predicting it is part of the core's code length (the
place where a scene ends is information the text holds), while the bytes stay the text's. It is
not stored in the shards: positions of the stream with EOS map back to the memmaps per sequence
(`CoreStream.record_ends`), so nothing is copied into memory.

Order is a pure function of (seed, global batch index): training batch j is the same whatever
the number of workers, whether the run was resumed, or how many passes came before. That is what
makes `ckpt_path=last` resume exactly: the loader restarts at batch `global_step * accumulate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from dualmind.data.open_corpus import DataConfigError, open_shards, resolve_expected_fingerprint
from dualmind.lexicon.lexicon import Lexicon

EOS = Lexicon.EOS  # ends every record of the core's stream


@dataclass
class CoreStream:
    """One split as flat arrays (memmaps): symbol ids, text bytes and document per symbol.

    record_ends: the end (exclusive) of each record in `ids`, ascending, the last = len(ids); an
    EOS symbol (0 bytes, the record's document) follows each non-empty record in the stream this
    class serves. None: the arrays as they are (no EOS)."""

    ids: np.ndarray
    unit_bytes: np.ndarray
    docs: np.ndarray
    source: str
    record_ends: np.ndarray | None = None

    def __post_init__(self) -> None:
        ends = np.zeros(0, dtype=np.int64)
        if self.record_ends is not None:
            ends = np.unique(np.asarray(self.record_ends, dtype=np.int64))
            ends = ends[ends > 0]  # an empty record has nothing to end
            last = int(ends[-1]) if len(ends) else 0
            if last != len(self.ids):
                raise DataConfigError(
                    f"{self.source}: the record table ends at unit {last}, the packed core ids "
                    f"hold {len(self.ids)}; the shards and the packed arrays are from different "
                    "builds"
                )
        # Stream position of each EOS: record k's units shift by the k EOS before them.
        self._eos_at = ends + np.arange(len(ends), dtype=np.int64)

    def __len__(self) -> int:
        return int(self.ids.shape[0]) + len(self._eos_at)

    def num_sequences(self, seq_len: int) -> int:
        return max(0, (len(self) - 1) // seq_len)

    def span(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, bytes, docs) of stream positions [start, stop) (non-empty, within the stream),
        EOS included, as int64."""
        pos = np.arange(start, stop, dtype=np.int64)
        before = np.searchsorted(self._eos_at, pos, side="left")  # EOS strictly before pos
        is_eos = np.zeros(len(pos), dtype=bool)
        if len(self._eos_at):
            at = np.minimum(before, len(self._eos_at) - 1)
            is_eos = self._eos_at[at] == pos
        orig = pos - before  # a unit's index in the arrays; at an EOS, its record's end
        # One contiguous read of the memmaps covers the sequence (and, for an EOS at its start,
        # the unit before it, whose document the EOS takes).
        lo, hi = max(0, int(orig[0]) - 1), min(len(self.ids), int(orig[-1]) + 1)
        ids_part = np.asarray(self.ids[lo:hi], dtype=np.int64)
        bytes_part = np.asarray(self.unit_bytes[lo:hi], dtype=np.int64)
        docs_part = np.asarray(self.docs[lo:hi], dtype=np.int64)
        unit = np.where(is_eos, 0, orig - lo)
        ids = np.where(is_eos, EOS, ids_part[unit])
        nbytes = np.where(is_eos, 0, bytes_part[unit])
        return ids, nbytes, docs_part[np.where(is_eos, orig - 1 - lo, unit)]

    def sequence(self, index: int, seq_len: int) -> dict[str, np.ndarray]:
        start = index * seq_len
        ids, nbytes, docs = self.span(start, start + seq_len + 1)
        docs = docs[:-1]
        # Renumber documents 0.. within the sequence: global doc ids may repeat non-adjacently
        # (e.g. across shard files), and the model only needs "same run of one document".
        local_docs = np.zeros(seq_len, dtype=np.int64)
        if seq_len > 1:
            local_docs[1:] = np.cumsum(docs[1:] != docs[:-1])
        return {
            "ids": ids[:-1],
            "targets": ids[1:],
            "doc_ids": local_docs,
            "target_bytes": nbytes[1:],
        }


def _stack(samples: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0]}


def core_stream(shards: Any, split: str) -> CoreStream:
    """The flat (ids, bytes, docs) arrays of a ShardSet's split, via its fast path, with an EOS
    after each record (from the shards' record table)."""
    packed = shards.packed_core()
    if isinstance(packed, dict):
        ids, unit_bytes, docs = packed["core"], packed["core_bytes"], packed["doc"]
    elif isinstance(packed, tuple):
        ids, unit_bytes, docs = packed
    else:
        ids, unit_bytes, docs = packed.core, packed.core_bytes, packed.doc
    if not (len(ids) == len(unit_bytes) == len(docs)):
        raise DataConfigError(
            f"{split} shards: core ids ({len(ids)}), core_bytes ({len(unit_bytes)}) "
            f"and doc ids ({len(docs)}) differ in length"
        )
    units, _ = shards.lengths()  # the record table: where each record ends
    return CoreStream(
        ids, unit_bytes, docs, source=f"{getattr(shards, 'corpus_dir', '?')} [{split}]",
        record_ends=np.cumsum(units, dtype=np.int64),
    )


class TrainBatches(IterableDataset):
    """Endless training batches, batch j = samples [j*B, (j+1)*B) of a seeded shuffle per pass.

    With several data-parallel ranks, batch j of data-parallel rank r is global batch
    j*world + r, `rank`/`world_size` being the data-parallel ones (trainer_position): the ranks
    of one tensor-parallel group read the same batches. With several workers,
    worker w produces the batches j = start + w, start + w + W, ... which the DataLoader hands out
    round-robin, so the order equals the single-process one.
    """

    def __init__(
        self,
        stream: CoreStream,
        seq_len: int,
        batch_size: int,
        seed: int,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.stream, self.seq_len, self.batch_size, self.seed = stream, seq_len, batch_size, seed
        self.start_batch, self.rank, self.world_size = start_batch, rank, world_size
        self.num_sequences = stream.num_sequences(seq_len)
        if self.num_sequences < 1:
            raise DataConfigError(
                f"{stream.source}: {len(stream)} symbols is fewer than one sequence of "
                f"data.seq_len+1={seq_len + 1}; lower data.seq_len or build a larger corpus"
            )
        self._perm_pass: int | None = None
        self._perm: np.ndarray | None = None

    def sequence_index(self, sample: int) -> int:
        n = self.num_sequences
        epoch = sample // n
        if epoch != self._perm_pass:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            self._perm_pass = epoch
        return int(self._perm[sample % n])

    def batch(self, j: int) -> dict[str, torch.Tensor]:
        first = (j * self.world_size + self.rank) * self.batch_size
        return _stack(
            [
                self.stream.sequence(self.sequence_index(first + b), self.seq_len)
                for b in range(self.batch_size)
            ]
        )

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        j = self.start_batch + worker
        while True:
            yield self.batch(j)
            j += workers


class ValSequences(Dataset):
    """The first `limit` sequences of the val split, in order (the same every validation)."""

    def __init__(self, stream: CoreStream, seq_len: int, limit: int | None = None):
        self.stream, self.seq_len = stream, seq_len
        n = stream.num_sequences(seq_len)
        if n < 1:
            raise DataConfigError(
                f"{stream.source}: {len(stream)} symbols is fewer than one sequence of "
                f"data.seq_len+1={seq_len + 1}; lower data.seq_len or build a larger corpus"
            )
        self.n = n if limit is None else min(n, limit)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return self.stream.sequence(i, self.seq_len)


def open_train_val(corpus_dir: str, expected_fingerprint: str | None,
                   core_vocab_size: int | None) -> tuple[Any, Any]:
    """Both splits of one corpus, checked before any training: val must come from train's
    lexicon, and the core's vocabulary must hold every symbol of that lexicon."""
    train = open_shards(corpus_dir, "train", expected_fingerprint)
    val = open_shards(corpus_dir, "val", train.lexicon_fingerprint)
    if core_vocab_size is not None and train.core_vocab_size > core_vocab_size:
        raise DataConfigError(
            f"model.vocab_size={core_vocab_size} is smaller than the lexicon's "
            f"{train.core_vocab_size} symbols (shards in {corpus_dir}); raise model.vocab_size"
        )
    return train, val


def data_parallel_position(trainer: Any) -> tuple[int, int]:
    """(data-parallel rank, data-parallel size): which share of the global batches this rank reads.

    Under strategy=fsdp2 (Lightning's ModelParallelStrategy) that is the rank's coordinate in the
    device mesh's "data_parallel" dimension and that dimension's size. The ranks of one
    tensor-parallel group differ only in their "tensor_parallel" coordinate, so they get the same
    position, hence the same batches: tensor parallelism splits each block's heads and SwiGLU
    width over the group and needs the group's input replicated. DDP and one process have no
    mesh: every rank is its own data-parallel rank (global rank, world size)."""
    if trainer is None:
        return 0, 1
    mesh = getattr(trainer.strategy, "device_mesh", None)  # raises if asked before setup
    if mesh is not None and "data_parallel" in (mesh.mesh_dim_names or ()):
        return mesh.get_local_rank("data_parallel"), mesh["data_parallel"].size()
    return trainer.global_rank, trainer.world_size


def trainer_position(trainer: Any) -> tuple[int, int, int]:
    """(first batch to serve, data-parallel rank, data-parallel size); see data_parallel_position.
    Lightning builds the train loader after a checkpoint is restored, so global_step is the
    resumed one and a resume continues the order."""
    if trainer is None:
        return 0, 0, 1
    start = trainer.global_step * trainer.accumulate_grad_batches
    return (start, *data_parallel_position(trainer))


class CoreDataModule(L.LightningDataModule):
    """Train/val loaders of packed core sequences; checks the shards against model and lexicon."""

    def __init__(
        self,
        corpus_dir: str,
        seq_len: int,
        batch_size: int,
        seed: int = 1234,
        num_workers: int = 0,
        val_max_batches: int | None = None,
        lexicon: str | None = None,
        model_vocab_size: int | None = None,
        model_max_seq_len: int | None = None,
    ):
        super().__init__()
        self.corpus_dir, self.seq_len, self.batch_size = str(corpus_dir), seq_len, batch_size
        self.seed, self.num_workers, self.val_max_batches = seed, num_workers, val_max_batches
        self.expected_fingerprint = resolve_expected_fingerprint(lexicon)
        self.model_vocab_size, self.model_max_seq_len = model_vocab_size, model_max_seq_len
        self.train_stream: CoreStream | None = None
        self.val_stream: CoreStream | None = None
        self.lexicon_fingerprint: str | None = None
        self.manifest: dict = {}

    @classmethod
    def from_config(cls, cfg: Any) -> CoreDataModule:
        d = cfg.data
        return cls(
            corpus_dir=d.dir,
            seq_len=d.seq_len,
            batch_size=d.batch_size,
            seed=d.seed,
            num_workers=d.num_workers,
            val_max_batches=d.val_max_batches,
            lexicon=d.lexicon,
            model_vocab_size=cfg.model.vocab_size,
            model_max_seq_len=cfg.model.max_seq_len,
        )

    def prepare(self) -> CoreDataModule:
        """Open and check both splits now (idempotent), so bad input fails before training."""
        if self.train_stream is not None:
            return self
        if self.model_max_seq_len is not None and self.seq_len > self.model_max_seq_len:
            raise DataConfigError(
                f"data.seq_len={self.seq_len} is longer than the model's context "
                f"model.max_seq_len={self.model_max_seq_len}"
            )
        train, val = open_train_val(
            self.corpus_dir, self.expected_fingerprint, self.model_vocab_size
        )
        self.lexicon_fingerprint = train.lexicon_fingerprint
        self.manifest = dict(getattr(train, "manifest", {}) or {})
        self.train_stream = core_stream(train, "train")
        self.val_stream = core_stream(val, "val")
        self._check_ids(self.train_stream)
        self._check_ids(self.val_stream)
        return self

    def _check_ids(self, stream: CoreStream) -> None:
        if self.model_vocab_size is None or len(stream) == 0:
            return
        top = int(np.max(stream.ids))
        if top >= self.model_vocab_size:
            raise DataConfigError(
                f"{stream.source}: symbol id {top} >= model.vocab_size={self.model_vocab_size}"
            )

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def train_batches(self, start_batch: int = 0) -> TrainBatches:
        self.prepare()
        _, rank, world = trainer_position(self.trainer)
        return TrainBatches(
            self.train_stream,
            self.seq_len,
            self.batch_size,
            self.seed,
            start_batch=start_batch,
            rank=rank,
            world_size=world,
        )

    def train_dataloader(self) -> DataLoader:
        start, _, _ = trainer_position(self.trainer)
        return DataLoader(
            self.train_batches(start),
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=False,
        )

    def val_dataloader(self) -> DataLoader:
        self.prepare()
        limit = None if self.val_max_batches is None else self.val_max_batches * self.batch_size
        return DataLoader(
            ValSequences(self.val_stream, self.seq_len, limit),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_stack,
        )
