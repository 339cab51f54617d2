"""Packed binary shards: write one, read a split back as `ShardSet` (numpy only, no torch).

A shard file `shards/<split>-<k>.shard` is self-describing:

    8 bytes   magic b"DMSHARD1"
    8 bytes   header length H (little-endian uint64)
    H bytes   JSON header: split, shard, records, langs, kinds, stats, and for each array
              its dtype, byte offset (from the file start) and length
    arrays    64-byte aligned, little-endian, read through one np.memmap:
              core, core_bytes      int32 [units]     lexicon ids; text bytes given to each unit
              text, span            int32 [tokens]    decoder BPE ids; unit index per token
                                                        (-1 = before the first unit)
              rec_core, rec_text    int64 [records+1] offsets of each record into core / text
              rec_doc, rec_n_bytes  int64 [records]
              rec_lang, rec_kind    uint8 [records]   indices into header["langs"] / KINDS

Shards are written to a temporary name and renamed into place, so a shard either exists whole
or not at all: that is what makes a killed build resumable. The split-wide fast path for the
core pretraining packer lives next to them: `<split>.core.npy`, `<split>.core_bytes.npy`,
`<split>.doc.npy` (int32, all records of the split concatenated in order).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

MAGIC = b"DMSHARD1"
ALIGN = 64
KINDS = ("scene", "pair", "qa")
ARRAY_DTYPES = {
    "core": "<i4",
    "core_bytes": "<i4",
    "text": "<i4",
    "span": "<i4",
    "rec_core": "<i8",
    "rec_text": "<i8",
    "rec_doc": "<i8",
    "rec_n_bytes": "<i8",
    "rec_lang": "u1",
    "rec_kind": "u1",
}
PACKED = ("core", "core_bytes", "doc")
MANIFEST = "manifest.json"


class ShardError(RuntimeError):
    """A corpus folder or shard that cannot be used; the message names the path."""


@dataclass
class Scene:
    core: np.ndarray  # int64 [n_units] lexicon ids
    core_bytes: np.ndarray  # int64 [n_units] text bytes attributed to each unit; sums to n_bytes
    text: np.ndarray  # int64 [n_tokens] decoder BPE ids
    span: (
        np.ndarray
    )  # int64 [n_tokens] unit index each token belongs to (-1: before the first unit)
    n_bytes: int
    doc: int
    lang: str
    kind: str


class PackedCore(NamedTuple):
    core: np.ndarray  # int32 memmap [units of the whole split]
    core_bytes: np.ndarray  # int32 memmap
    doc: np.ndarray  # int32 memmap: document id of each unit


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.shard"


def packed_paths(shard_dir: Path, split: str) -> dict[str, Path]:
    return {name: shard_dir / f"{split}.{name}.npy" for name in PACKED}


# ----------------------------------------------------------------------------- writing
class ShardBuilder:
    """Collects records in memory (one shard's worth) and writes the file atomically."""

    def __init__(self, split: str, shard: int, langs: list[str]):
        self.split, self.shard = split, shard
        self.langs = list(langs)
        self.core: list[np.ndarray] = []
        self.core_bytes: list[np.ndarray] = []
        self.text: list[np.ndarray] = []
        self.span: list[np.ndarray] = []
        self.doc: list[int] = []
        self.n_bytes: list[int] = []
        self.lang: list[int] = []
        self.kind: list[int] = []

    def add(
        self, core, core_bytes, text, span, n_bytes: int, doc: int, lang: str, kind: str
    ) -> None:
        if lang not in self.langs:
            self.langs.append(lang)
        self.core.append(np.asarray(core, dtype=np.int32))
        self.core_bytes.append(np.asarray(core_bytes, dtype=np.int32))
        self.text.append(np.asarray(text, dtype=np.int32))
        self.span.append(np.asarray(span, dtype=np.int32))
        self.doc.append(int(doc))
        self.n_bytes.append(int(n_bytes))
        self.lang.append(self.langs.index(lang))
        self.kind.append(KINDS.index(kind))

    def __len__(self) -> int:
        return len(self.doc)

    def arrays(self) -> dict[str, np.ndarray]:
        def cat(parts, dtype):
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        def offsets(parts):
            return np.concatenate([[0], np.cumsum([len(p) for p in parts], dtype=np.int64)]).astype(
                np.int64
            )

        return {
            "core": cat(self.core, np.int32),
            "core_bytes": cat(self.core_bytes, np.int32),
            "text": cat(self.text, np.int32),
            "span": cat(self.span, np.int32),
            "rec_core": offsets(self.core),
            "rec_text": offsets(self.text),
            "rec_doc": np.asarray(self.doc, dtype=np.int64),
            "rec_n_bytes": np.asarray(self.n_bytes, dtype=np.int64),
            "rec_lang": np.asarray(self.lang, dtype=np.uint8),
            "rec_kind": np.asarray(self.kind, dtype=np.uint8),
        }

    def write(self, path: Path, stats: dict[str, Any] | None = None) -> None:
        write_shard(
            path,
            self.arrays(),
            {
                "split": self.split,
                "shard": self.shard,
                "records": len(self),
                "langs": self.langs,
                "kinds": list(KINDS),
                "stats": stats or {},
            },
        )


def write_shard(path: Path, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
    """Write atomically: a partial file is never visible under the final name."""
    specs, offset = {}, 0
    for name, dtype in ARRAY_DTYPES.items():
        a = np.ascontiguousarray(arrays[name], dtype=np.dtype(dtype))
        arrays[name] = a
        specs[name] = {"dtype": dtype, "length": int(a.shape[0]), "rel": offset}
        offset += -(-a.nbytes // ALIGN) * ALIGN
    head = dict(header, version=1, arrays=specs)
    # The header's own length decides where the data starts; pad it to the alignment.
    blob = json.dumps(head, sort_keys=True, ensure_ascii=False).encode("utf-8")
    data_start = -(-(len(MAGIC) + 8 + len(blob)) // ALIGN) * ALIGN
    blob = blob + b" " * (data_start - len(MAGIC) - 8 - len(blob))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for name in ARRAY_DTYPES:
            a = arrays[name]
            f.write(a.tobytes())
            f.write(b"\0" * (-(-a.nbytes // ALIGN) * ALIGN - a.nbytes))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_shard_header(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            magic = f.read(len(MAGIC))
            if magic != MAGIC:
                raise ShardError(f"{path}: not a dualmind shard (bad magic {magic!r})")
            n = int.from_bytes(f.read(8), "little")
            head = json.loads(f.read(n).decode("utf-8"))
    except OSError as e:
        raise ShardError(f"{path}: cannot read shard: {e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ShardError(f"{path}: corrupt shard header: {e}") from None
    head["data_start"] = len(MAGIC) + 8 + n
    return head


class ShardFile:
    """One shard, memory-mapped."""

    def __init__(self, path: Path):
        self.path = path
        self.header = read_shard_header(path)
        size = path.stat().st_size
        mm = np.memmap(path, dtype=np.uint8, mode="r")
        self.arrays: dict[str, np.ndarray] = {}
        for name, spec in self.header["arrays"].items():
            dt = np.dtype(spec["dtype"])
            start = self.header["data_start"] + spec["rel"]
            end = start + spec["length"] * dt.itemsize
            if end > size:
                raise ShardError(
                    f"{path}: truncated shard (array {name!r} ends at byte {end}, file has {size})"
                )
            self.arrays[name] = mm[start:end].view(dt)
        self.records = int(self.header["records"])
        self.langs: list[str] = self.header["langs"]
        self.kinds: list[str] = self.header["kinds"]

    def scene(self, i: int) -> Scene:
        a = self.arrays
        c0, c1 = int(a["rec_core"][i]), int(a["rec_core"][i + 1])
        t0, t1 = int(a["rec_text"][i]), int(a["rec_text"][i + 1])
        return Scene(
            core=a["core"][c0:c1].astype(np.int64),
            core_bytes=a["core_bytes"][c0:c1].astype(np.int64),
            text=a["text"][t0:t1].astype(np.int64),
            span=a["span"][t0:t1].astype(np.int64),
            n_bytes=int(a["rec_n_bytes"][i]),
            doc=int(a["rec_doc"][i]),
            lang=self.langs[int(a["rec_lang"][i])],
            kind=self.kinds[int(a["rec_kind"][i])],
        )


# ----------------------------------------------------------------------------- reading a split
class ShardSet:
    """All records of one split of a finished corpus build, indexable like a list."""

    def __init__(self, corpus_dir: Path, split: str, manifest: dict, files: list[ShardFile]):
        self.corpus_dir = corpus_dir
        self.split = split
        self.manifest = manifest
        self.files = files
        self._ends = np.cumsum([f.records for f in files], dtype=np.int64)

    @classmethod
    def open(
        cls, corpus_dir: str | Path, split: str = "train", lexicon_fingerprint: Any = None
    ) -> ShardSet:
        """Open a split; `lexicon_fingerprint` (a str, or a Lexicon) must match the build's."""
        corpus_dir = Path(corpus_dir)
        if not corpus_dir.is_dir():
            raise ShardError(f"{corpus_dir}: no such corpus folder")
        mpath = corpus_dir / MANIFEST
        if not mpath.is_file():
            raise ShardError(
                f"{mpath}: missing — {corpus_dir} is not a finished corpus build "
                "(run `dualmind corpus build`, which resumes an interrupted one)"
            )
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ShardError(f"{mpath}: unreadable manifest: {e}") from None
        want = getattr(lexicon_fingerprint, "fingerprint", lexicon_fingerprint)
        have = manifest.get("lexicon", {}).get("fingerprint")
        if want is not None and want != have:
            raise ShardError(
                f"{corpus_dir}: built with lexicon fingerprint {have}, but lexicon "
                f"fingerprint {want} was expected — rebuild the corpus with this lexicon"
            )
        splits = manifest.get("splits", {})
        if split not in splits:
            raise ShardError(f"{corpus_dir}: no split {split!r} (splits: {sorted(splits)})")
        files = []
        for entry in splits[split]["shards"]:
            path = corpus_dir / entry["file"]
            if not path.is_file():
                raise ShardError(f"{path}: shard listed in the manifest is missing")
            if path.stat().st_size != entry["size"]:
                raise ShardError(
                    f"{path}: size {path.stat().st_size} differs from the manifest's "
                    f"{entry['size']}"
                )
            files.append(ShardFile(path))
        return cls(corpus_dir, split, manifest, files)

    @property
    def path(self) -> Path:
        return self.corpus_dir

    @property
    def lexicon_fingerprint(self) -> str:
        return self.manifest["lexicon"]["fingerprint"]

    def languages(self) -> list[str]:
        """The languages of this split's records, in order of first appearance (record table
        only: nothing is read)."""
        seen: dict[str, None] = {}
        for f in self.files:
            for i in np.unique(np.asarray(f.arrays["rec_lang"])):
                seen[f.langs[int(i)]] = None
        return list(seen)

    @property
    def lexicon_level(self) -> str:
        return self.manifest["lexicon"]["level"]

    @property
    def core_vocab_size(self) -> int:
        return int(self.manifest["lexicon"]["vocab_size"])

    @property
    def text_vocab_size(self) -> int:
        return int(self.manifest["tokenizer"]["vocab_size"])

    @property
    def tokenizer_path(self) -> Path:
        return self.corpus_dir / self.manifest["tokenizer"]["file"]

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, i: int) -> Scene:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"record {i} out of range for {n} records in split {self.split!r}")
        k = int(np.searchsorted(self._ends, i, side="right"))
        before = int(self._ends[k - 1]) if k else 0
        return self.files[k].scene(i - before)

    def __iter__(self) -> Iterator[Scene]:
        for f in self.files:
            for j in range(f.records):
                yield f.scene(j)

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """(units per record, tokens per record), for samplers and packers."""
        units = [np.diff(f.arrays["rec_core"]) for f in self.files]
        tokens = [np.diff(f.arrays["rec_text"]) for f in self.files]

        def cat(xs):
            return np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)

        return cat(units), cat(tokens)

    def packed_core(self, split: str | None = None) -> PackedCore:
        """Flat memmaps of the split's core ids, core_bytes and doc ids (records in order)."""
        split = split or self.split
        entry = self.manifest["splits"].get(split, {}).get("packed")
        if not entry:
            raise ShardError(f"{self.corpus_dir}: no packed arrays for split {split!r}")
        units = self.manifest["splits"][split].get("units")
        arrays = []
        for name in PACKED:
            path = self.corpus_dir / entry[name]
            if not path.is_file():
                raise ShardError(f"{path}: packed array missing")
            try:  # a file cut short fails here, in numpy's words that name no file
                array = np.load(path, mmap_mode="r")
            except (ValueError, OSError, EOFError) as err:
                raise ShardError(f"{path}: packed array cannot be read ({err}); the corpus is "
                                 "damaged: rebuild it (`dualmind corpus build` into a new "
                                 "--out)") from err
            if units is not None and len(array) != units:
                raise ShardError(f"{path}: {len(array)} units, the manifest says {units}; the "
                                 "corpus is damaged: rebuild it")
            arrays.append(array)
        return PackedCore(*arrays)
