"""Aligned batches for stage=align: each record's hyperphrase (core side) beside its text.

Every record of a split — a scene (hyperphrase -> its text) or a QA pair (question and answer
hyperphrases -> answer text) — is one aligned unit; both kinds are packed the same way. Records
are laid back to back in their stored order into rows of at most `core_len` core symbols and
`text_len` text positions, and the cross-attention ids come from
:func:`dualmind.model.masks.pack_alignment`, so the decoder only ever reads the states the mask
mode allows.

Text side of one record: input ``[BOS, t0 .. t(n-1)]``, target ``[t0 .. t(n-1), EOS]``. The span of
each position is the span of the token it *predicts* (EOS: the record's last unit), so stream
mode lets a position read the units up to the one whose text it is about to produce. EOS is
predicted and charged: the code length then includes where the text ends. Core side of one
record: its units, then the lexicon's EOS, as the core was pretrained (train.datamodule); no text
is aligned to that EOS, but the core pays for predicting it, so the core's code length also
includes where the record ends.

A record is never cut: one that does not fit the rest of a row fills it and continues in the
next rows as consecutive windows (:mod:`dualmind.train.align_windows`), each charged for its own
units, text tokens and bytes, so rows are full, training sees everything and evaluation scores
every byte (:attr:`AlignPacks.windowed` says how many records were continued across rows).
Every record is checked as it is read: no text, or text whose alignment does not match its
hyperphrase, is refused naming the shard file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from dualmind.data.open_corpus import DataConfigError, resolve_expected_fingerprint
from dualmind.lexicon.lexicon import Lexicon
from dualmind.model.loss import IGNORE
from dualmind.model.masks import SceneSpans, pack_alignment
from dualmind.train.align_windows import (
    Window,
    check_record,
    plan_windows,
    record_bytes,
    record_location,
    window_bytes,
)
from dualmind.train.datamodule import open_train_val, trainer_position

CORE_EOS = Lexicon.EOS  # ends each record's core units, as in core pretraining
NO_LIMIT = 1 << 40  # core_len of text-only rows (the BPE baseline reads no core symbols)


@dataclass
class AlignedRecord:
    """One window of a record: core ids, text input/target, span per position, bytes."""

    core: np.ndarray
    text_in: np.ndarray
    target: np.ndarray
    span: np.ndarray
    n_bytes: int
    doc: int


def aligned_window(scene: Any, w: Window, bos: int, eos: int, has_core: bool = True
                   ) -> AlignedRecord:
    """Window `w` of a (checked) record. Targets: its text tokens, plus EOS in the last window;
    inputs: the token before each target (BOS for the record's first). Span of a position: the
    window-local unit of the token it predicts (EOS: the window's last unit of the record's
    own, not the core EOS after it); -1 without a core, where nothing reads the alignment.
    Core: the window's units, plus the core EOS (Lexicon.EOS) in the last window. `bos`/`eos`
    are the text tokenizer's."""
    text = np.asarray(scene.text, dtype=np.int64)
    span = np.asarray(scene.span, dtype=np.int64)
    target = text[w.p:w.q]
    target_span = np.where(span[w.p:w.q] >= 0, span[w.p:w.q] - w.a, -1)
    if w.last:
        target = np.append(target, eos)
        target_span = np.append(target_span, w.b - w.a - 1)
    before = bos if w.first or w.p == 0 else int(text[w.p - 1])  # p == 0: no text before it
                                                                   # (a QA pair's question units)
    text_in = np.concatenate([[before], text[w.p:w.q]])[: len(target)]
    if not has_core:
        target_span = np.full(len(target), -1)
    core = np.asarray(scene.core[w.a:w.b], dtype=np.int64)
    if w.last:
        core = np.append(core, CORE_EOS)
    return AlignedRecord(core=core,
                         text_in=text_in.astype(np.int64), target=target.astype(np.int64),
                         span=target_span.astype(np.int64),
                         n_bytes=window_bytes(scene.core_bytes, w), doc=int(scene.doc))


class AlignPacks(Dataset):
    """The rows of one split: records back to back in order, each row a list of (record index,
    Window); a record that does not fit the rest of a row fills it and continues in the next
    (rows are full, nothing is cut). core_len=NO_LIMIT: text-only rows (the BPE baseline)."""

    def __init__(self, shards: Any, core_len: int, text_len: int, bos: int, eos: int,
                 limit_records: int | None = None, records: Sequence[int] | None = None):
        """records: indices of the records to lay out, in order (default: the first
        `limit_records`, or all)."""
        self.shards = shards
        self.core_len, self.text_len, self.bos, self.eos = core_len, text_len, bos, eos
        self.has_core = core_len < NO_LIMIT
        if records is None:
            n = len(shards) if limit_records is None else min(len(shards), limit_records)
            records = range(n)
        chosen = np.asarray(records, dtype=np.int64)
        units, tokens = shards.lengths()
        empty = chosen[(units[chosen] == 0) | (tokens[chosen] == 0)]
        if len(empty):  # found from the record table, before any record is read
            check_record(shards[int(empty[0])], record_location(shards, int(empty[0])))
        self.records = len(chosen)
        self.split_bytes = _split_bytes(shards, chosen)
        self.rows: list[list[tuple[int, Window]]] = []
        row: list[tuple[int, Window]] = []
        used_core = used_text = 0
        self.windowed = self.windows = 0
        for i in chosen.tolist():
            room = (core_len - used_core, text_len - used_text) if row else None
            windows = self._windows(i, int(units[i]), int(tokens[i]), room)
            self.windowed += len(windows) > 1
            self.windows += len(windows)
            for w in windows:
                u, t = w.b - w.a + w.last, w.q - w.p + w.last  # + the core and text EOS
                if row and (used_core + u > core_len or used_text + t > text_len):
                    self.rows.append(row)
                    row, used_core, used_text = [], 0, 0
                row.append((i, w))
                used_core += u
                used_text += t
        if row:
            self.rows.append(row)
        if not self.rows:
            raise DataConfigError(f"{getattr(shards, 'corpus_dir', '?')} [{shards.split}]: "
                                  "no records to align")

    def _windows(self, i: int, units: int, tokens: int, room: tuple[int, int] | None
                 ) -> list[Window]:
        room_core, room_text = room or (self.core_len, self.text_len)
        # Fits whole, with its core EOS (+ 1 unit) and text EOS (<): read nothing yet.
        if units + 1 <= room_core and tokens < room_text:
            return [Window(0, units, 0, tokens, True, True)]
        scene = self.shards[i]
        where = record_location(self.shards, i)
        check_record(scene, where)
        return plan_windows(scene.span, units, self.core_len, self.text_len, self.has_core,
                            where, room)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> list[AlignedRecord]:
        out = []
        for j, w in self.rows[i]:
            scene = self.shards[j]
            check_record(scene, record_location(self.shards, j))
            out.append(aligned_window(scene, w, self.bos, self.eos, self.has_core))
        return out


def _split_bytes(shards: Any, records: np.ndarray) -> int:
    """Bytes of text in these records, from the record table (what scoring must cover)."""
    return int(record_bytes(shards)[records].sum()) if len(records) else 0


def records_of_documents(shards: Any, lang: str, documents: int) -> np.ndarray:
    """Indices of the records of the first `documents` documents in `lang` (whole documents: a
    corpus of another lexicon level splits them into other scenes, but holds the same bytes)."""
    chosen = records_of_language(shards, lang)
    docs = np.concatenate([np.asarray(f.arrays["rec_doc"]) for f in shards.files])[chosen]
    keep = list(dict.fromkeys(docs.tolist()))[:documents]  # in stored order
    return chosen[np.isin(docs, keep)]


def records_of_language(shards: Any, lang: str) -> np.ndarray:
    """Indices of the records in `lang`, from the record table (no record is read)."""
    parts = [np.asarray(f.langs)[np.asarray(f.arrays["rec_lang"])] for f in shards.files]
    langs = np.concatenate(parts) if parts else np.zeros(0, dtype=str)
    chosen = np.flatnonzero(langs == lang)
    if not len(chosen):
        raise DataConfigError(f"{shards.corpus_dir} [{shards.split}]: no records in language "
                              f"{lang!r} (languages: {sorted(set(langs.tolist()))})")
    return chosen


def _follows_pointer(decoder_cfg: Any) -> bool:
    """DecoderConfig.follows_pointer of a composed config's decoder group."""
    from omegaconf import OmegaConf

    from dualmind.model.decoder_config import DecoderConfig

    values = OmegaConf.to_container(decoder_cfg, resolve=True) if OmegaConf.is_config(
        decoder_cfg) else dict(decoder_cfg)
    return DecoderConfig.from_dict(values, source="cfg.decoder").follows_pointer


def collate_aligned(rows: list[list[AlignedRecord]]) -> dict[str, Any]:
    """Pad rows into one batch: core ids/docs, text input/target, the Alignment, bytes."""
    local_rows = []
    for row in rows:  # renumber documents 0.. per row: ids must not reappear after another doc
        docs, out = {}, []
        for rec in row:
            if not out or rec.doc != out[-1][0].doc:
                docs[len(docs)] = rec.doc
            out.append((rec, len(docs) - 1))
        local_rows.append(out)
    alignment = pack_alignment([[SceneSpans(len(r.core), r.span.tolist(), d) for r, d in row]
                                for row in local_rows])
    B, T = alignment.text_span.shape
    S = alignment.core_scene.shape[1]
    core = torch.zeros(B, S, dtype=torch.int64)
    text_in = torch.zeros(B, T, dtype=torch.int64)
    target = torch.full((B, T), IGNORE, dtype=torch.int64)
    text_bytes = torch.zeros(B, dtype=torch.int64)
    for b, row in enumerate(local_rows):
        core_row = np.concatenate([r.core for r, _ in row])
        core[b, : len(core_row)] = torch.from_numpy(core_row)
        ti = np.concatenate([r.text_in for r, _ in row])
        text_in[b, : len(ti)] = torch.from_numpy(ti)
        target[b, : len(ti)] = torch.from_numpy(np.concatenate([r.target for r, _ in row]))
        text_bytes[b] = sum(r.n_bytes for r, _ in row)
    return {"core_ids": core, "text_ids": text_in, "targets": target, "alignment": alignment,
            "text_bytes": text_bytes}


class AlignTrainBatches(IterableDataset):
    """Endless batches; batch j = rows [j*B, (j+1)*B) of a seeded permutation per pass (so a
    resumed run continues with the batch it would have seen). Batch j of data-parallel rank r is
    global batch j*world + r, rank and world being the data-parallel ones (trainer_position):
    stage lm may run tensor-parallel, and the ranks of one tensor-parallel group share batches."""

    def __init__(self, packs: AlignPacks, batch_size: int, seed: int, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.packs, self.batch_size, self.seed = packs, batch_size, seed
        self.start_batch, self.rank, self.world_size = start_batch, rank, world_size

    def row(self, sample: int) -> int:
        n = len(self.packs)
        perm = np.random.default_rng([self.seed, sample // n]).permutation(n)
        return int(perm[sample % n])

    def batch(self, j: int) -> dict[str, Any]:
        first = (j * self.world_size + self.rank) * self.batch_size
        return collate_aligned([self.packs[self.row(first + b)] for b in range(self.batch_size)])

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        j = self.start_batch + worker
        while True:
            yield self.batch(j)
            j += workers


def warn_old_alignment(corpus_dir: str, manifest: dict) -> None:
    """Say so when the corpus gave its tokens their units by another rule than today's build
    (``ALIGNMENT_RULE``): a decoder trained on it learns an alignment generation does not follow
    (before the rule, a word's first token belonged to the unit before the word's)."""
    from dualmind.data.build.alignment import ALIGNMENT_RULE

    rule = manifest.get("settings", {}).get("alignment", "first-byte")
    if rule != ALIGNMENT_RULE:
        print(f"align: {corpus_dir} gives each text token the unit of its {rule!r} (today's "
              f"builds: {ALIGNMENT_RULE!r}); rebuild it with `dualmind corpus build ... "
              "--overwrite` for the alignment generation follows")


class AlignDataModule(L.LightningDataModule):
    """Train/val loaders of aligned (hyperphrase, text) rows for the decoder."""

    def __init__(self, corpus_dir: str, core_len: int, text_len: int, batch_size: int,
                 seed: int = 1234, num_workers: int = 0, val_max_batches: int | None = None,
                 lexicon: str | None = None, core_vocab_size: int | None = None,
                 text_vocab_size: int | None = None, qa: bool = False,
                 qa_heldout_fraction: float = 0.1, text_vocab_key: str = "decoder.vocab_size"):
        """qa: mix the corpus's training QA pairs into the train rows (dualmind.train.align_qa);
        the held-out ones become qa_val_packs, scored apart from the scenes' val/bpb.
        text_vocab_key: the config key that sets text_vocab_size, for the error that finds it
        too small (stage lm reads the text with the model's own vocabulary)."""
        super().__init__()
        self.qa, self.qa_heldout_fraction = qa, qa_heldout_fraction
        self.qa_val_packs: AlignPacks | None = None
        self.qa_train_records = 0
        self.corpus_dir, self.core_len, self.text_len = str(corpus_dir), core_len, text_len
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.val_max_batches = val_max_batches
        self.expected_fingerprint = resolve_expected_fingerprint(lexicon)
        self.core_vocab_size, self.text_vocab_size = core_vocab_size, text_vocab_size
        self.text_vocab_key = text_vocab_key
        self.train_packs: AlignPacks | None = None
        self.val_packs: AlignPacks | None = None
        self.lexicon_fingerprint: str | None = None
        self.manifest: dict = {}

    @classmethod
    def from_config(cls, cfg: Any) -> AlignDataModule:
        d = cfg.data
        if cfg.stage == "lm":  # the BPE baseline: rows of data.seq_len text tokens, the model's
            return cls(corpus_dir=d.dir, core_len=NO_LIMIT, text_len=d.seq_len,  # vocab is text
                       batch_size=d.batch_size, seed=d.seed, num_workers=d.num_workers,
                       val_max_batches=d.val_max_batches, lexicon=d.lexicon,
                       core_vocab_size=None, text_vocab_size=cfg.model.vocab_size,
                       text_vocab_key="model.vocab_size")
        from dualmind.adapters.settings import AdaptSettings

        align, adapt = cfg.get("align") or {}, cfg.get("adapt") or {}
        qa = bool(align.get("qa", False))
        if qa and _follows_pointer(cfg.decoder):
            # A QA record's answer tokens all sit at its last unit (the shards keep no alignment
            # of the answer's text to its hyperphrase), which would teach a decoder that follows
            # its text through the units to keep talking at a scene's end.
            print("align: QA pairs left out: this decoder follows its text through the units "
                  "(decoder.mask_mode / cross_rope / pointer_feed / copy_logits), and the QA "
                  "records carry no alignment of the answer's text to its units")
            qa = False
        return cls(corpus_dir=d.dir, core_len=d.seq_len, text_len=cfg.decoder.max_seq_len,
                   batch_size=d.batch_size, seed=d.seed, num_workers=d.num_workers,
                   val_max_batches=d.val_max_batches, lexicon=d.lexicon,
                   core_vocab_size=cfg.model.vocab_size, text_vocab_size=cfg.decoder.vocab_size,
                   qa=qa,  # the adapters' held-out questions
                   qa_heldout_fraction=float(adapt.get("heldout_fraction",
                                                       AdaptSettings.heldout_fraction)))

    def prepare(self) -> AlignDataModule:
        if self.train_packs is not None:
            return self
        train, val = open_train_val(self.corpus_dir, self.expected_fingerprint,
                                    self.core_vocab_size)
        if self.text_vocab_size is not None and train.text_vocab_size > self.text_vocab_size:
            raise DataConfigError(f"{self.text_vocab_key}={self.text_vocab_size} is smaller than "
                                  f"the text tokenizer's {train.text_vocab_size} tokens "
                                  f"({self.corpus_dir}/tokenizer.json)")
        self.lexicon_fingerprint = train.lexicon_fingerprint
        self.manifest = dict(train.manifest)
        if self.core_len != NO_LIMIT:  # the decoder reads the spans (stage lm reads text only)
            warn_old_alignment(self.corpus_dir, self.manifest)
        special = self.manifest.get("tokenizer", {}).get("special", {})
        bos, eos = int(special.get("bos", 1)), int(special.get("eos", 2))
        self.train_packs = AlignPacks(self._with_qa(train, bos, eos), self.core_len,
                                      self.text_len, bos, eos)
        self.val_packs = AlignPacks(val, self.core_len, self.text_len, bos, eos)
        return self

    def _with_qa(self, train: Any, bos: int, eos: int) -> Any:
        """The train records, with the training QA pairs interleaved when align.qa is on;
        the held-out QA pairs become qa_val_packs."""
        if not self.qa:
            return train
        from dualmind.train.align_qa import Interleaved, load_qa_records

        qa = load_qa_records(self.corpus_dir, self.qa_heldout_fraction, self.core_len,
                             self.text_len)
        if qa is None:
            print(f"align: {self.corpus_dir} has no qa split; aligning on scenes only")
            return train
        print(f"align: {len(qa.train)} QA pairs mixed into training, {len(qa.heldout)} held "
              f"out (adapt.heldout_fraction={self.qa_heldout_fraction}), {qa.skipped} skipped "
              "(longer than one row)")
        self.qa_train_records = len(qa.train)
        if len(qa.heldout):
            self.qa_val_packs = AlignPacks(qa.heldout, self.core_len, self.text_len, bos, eos)
        return Interleaved(train, qa.train) if len(qa.train) else train

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def train_dataloader(self) -> DataLoader:
        self.prepare()
        start, rank, world = trainer_position(self.trainer)
        return DataLoader(AlignTrainBatches(self.train_packs, self.batch_size, self.seed, start,
                                            rank, world),
                          batch_size=None, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        """The held-out scenes only: val/bpb stays comparable with runs before QA pairs."""
        return self._val_loader(self.prepare().val_packs)

    def qa_val_dataloader(self) -> DataLoader | None:
        """The held-out QA pairs (None without any), for scoring them apart from the scenes."""
        packs = self.prepare().qa_val_packs
        return None if packs is None else self._val_loader(packs)

    def _val_loader(self, packs: Dataset) -> DataLoader:
        if self.val_max_batches is not None:
            packs = torch.utils.data.Subset(
                packs, range(min(len(packs), self.val_max_batches * self.batch_size)))
        return DataLoader(packs, batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers, collate_fn=collate_aligned)
