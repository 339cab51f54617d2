"""`dualmind corpus build`: documents + lexicon -> hypertrain.jsonl, tokenizer.json, packed shards.

The build runs in four steps, each of which a killed build resumes from:

1. plan      read the inputs (policy `--errors`), detect languages, stage the accepted documents
             in OUT/.build/documents.jsonl, split them train/val by document (val holds every
             language that has at least two documents) and assign them to shards -> .build/plan.json
2. tokenizer train the decoder's byte-level BPE on the train (and qa) texts -> OUT/tokenizer.json
3. shards    `build_shard(out_dir, split, shard_index, num_shards)` — a pure function of the plan —
             writes shards/<split>-<k>.shard and its hypertrain part, each atomically; shards that
             exist are never rewritten. Run serially, over processes, or on Ray (`ray_backend`).
4. finalize  hypertrain.jsonl, the packed per-split arrays and manifest.json (written last: its
             presence means the build is complete).

A build whose settings (inputs, lexicon, options) differ from the ones in OUT is refused unless
`overwrite=True`: mixing shards of two builds would be silent corruption.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dualmind.data.problems import POLICIES, InputError, Problems
from dualmind.data.scenes import SceneLimits, cut_scenes, split_blocks
from dualmind.data.schema import HypertrainRecord
from dualmind.data.shards import (
    MANIFEST,
    PACKED,
    ShardBuilder,
    ShardFile,
    packed_paths,
    read_shard_header,
    shard_name,
)
from dualmind.data.sources import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    ReadOptions,
    expand_inputs,
    read_documents,
)
from dualmind.data.text_tokenizer import (
    load_text_tokenizer,
    token_byte_lengths,
    tokenizer_fingerprint,
    train_text_tokenizer,
)

FORMAT = "dualmind-corpus"
FORMAT_VERSION = 1
WORK = ".build"
SPLITS = ("train", "val", "qa")  # qa: question/answer and text pairs (kind qa|pair)
BACKENDS = ("process", "serial", "ray")


class CorpusError(ValueError):
    """A build that cannot start or continue: wrong lexicon level, conflicting output folder..."""


@dataclass
class BuildOptions:
    num_shards: int = 8  # train shards; val and qa get their own (see plan_shards)
    workers: int | None = None  # processes (default: CPU count); 1 = in this process
    errors: str = "replace"  # replace | skip | fail (see problems.py)
    backend: str = "process"  # process | serial | ray
    level: str | None = None  # required lexicon level; None = whatever the lexicon is
    text_vocab_size: int = 8192  # decoder BPE vocabulary
    val_fraction: float = 0.05  # of each language's characters, by whole documents
    min_units: int = 100
    max_units: int = 500
    target_units: int = 300
    block_chars: int = 1 << 16  # a document is encoded in blocks of at most this
    text_field: str = "text"
    lang: str | None = None  # force one language for every input
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    overwrite: bool = False
    progress: bool = True
    keep_work: bool = False  # keep .build/ (staged documents, parts) after success
    ray_address: str | None = None

    def validate(self) -> None:
        if self.errors not in POLICIES:
            raise CorpusError(f"errors must be one of {POLICIES}, got {self.errors!r}")
        if self.backend not in BACKENDS:
            raise CorpusError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.num_shards < 1:
            raise CorpusError(f"num_shards must be >= 1, got {self.num_shards}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise CorpusError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        SceneLimits(self.min_units, self.max_units, self.target_units, self.block_chars)

    def limits(self) -> SceneLimits:
        return SceneLimits(self.min_units, self.max_units, self.target_units, self.block_chars)

    def settings(self) -> dict[str, Any]:
        """The options that change the output (not workers, backend, progress...)."""
        keep = (
            "num_shards",
            "errors",
            "level",
            "text_vocab_size",
            "val_fraction",
            "min_units",
            "max_units",
            "target_units",
            "block_chars",
            "text_field",
            "lang",
            "max_line_bytes",
            "max_document_bytes",
        )
        return {k: getattr(self, k) for k in keep}


@dataclass
class BuildSummary:
    out_dir: str
    status: str  # "built" | "resumed" | "up-to-date"
    manifest: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    shards_built: int = 0
    shards_reused: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        m = self.manifest
        lines = [
            f"corpus {self.out_dir} ({self.status}; {self.shards_built} shards built, "
            f"{self.shards_reused} reused)",
            f"  lexicon {m['lexicon']['fingerprint']} level={m['lexicon']['level']} "
            f"vocab={m['lexicon']['vocab_size']}; decoder BPE vocab={m['tokenizer']['vocab_size']}",
        ]
        for split in split_order(m):
            s = m["splits"][split]
            # no square brackets: rich would read them as markup and drop them
            langs = " · ".join(
                f"{lang}: {v['records']} records, {v['bytes'] / 1e6:.2f} MB"
                for lang, v in sorted(s["langs"].items())
            )
            lines.append(
                f"  {split:5s} {s['documents']:6d} docs {s['records']:7d} records "
                f"{s['units']:9d} units {s['tokens']:9d} BPE tokens {s['bytes'] / 1e6:8.2f} MB"
            )
            ratio = (
                f"{s['bytes'] / s['units']:.2f} bytes/unit, "
                f"{s['tokens'] / s['units']:.2f} BPE tokens/unit; "
                if s["units"]
                else ""
            )
            lines.append(f"        {ratio}{langs}")
        lines += Problems(**_problems_args(m["problems"])).summary_lines()
        if self.timings:
            order = ["plan", "tokenizer", "shards", "finalize", "total"]
            keys = sorted(self.timings, key=lambda k: order.index(k) if k in order else len(order))
            lines.append("  time: " + ", ".join(f"{k} {self.timings[k]:.1f}s" for k in keys))
        return lines


def split_order(manifest: dict) -> list[str]:
    """Splits in the order their records appear in hypertrain.jsonl."""
    return manifest.get("hypertrain", {}).get("split_order") or [
        s for s in SPLITS if s in manifest["splits"]
    ]


def _problems_args(d: dict) -> dict:
    return {"policy": d["policy"], "counts": d["counts"], "examples": d["examples"]}


# ----------------------------------------------------------------------------- lexicon
def _lexicon_class():
    from dualmind.lexicon import Lexicon

    return Lexicon


def resolve_lexicon(lexicon: Any, out_dir: Path) -> tuple[Any, Path]:
    """(lexicon object, directory workers load it from). An object is saved once under .build/."""
    if isinstance(lexicon, (str, os.PathLike)):
        path = Path(lexicon).resolve()
        if not path.is_dir():
            raise CorpusError(
                f"lexicon {path}: no such folder (build one with `dualmind lexicon build`)"
            )
        return _lexicon_class().load(path), path
    path = (out_dir / WORK / "lexicon").resolve()
    marker = path / ".fingerprint"
    if not (marker.is_file() and marker.read_text() == lexicon.fingerprint):
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lexicon.save(path)
        marker.write_text(lexicon.fingerprint)
    return lexicon, path


def lexicon_langs(lex: Any) -> tuple[str, ...]:
    langs = getattr(lex, "langs", None) or ("en", "ru")
    return tuple(langs)


def check_level(lex: Any, level: str | None, where: Path) -> None:
    if level is not None and lex.level != level:
        raise CorpusError(
            f"lexicon {where} is built for level {lex.level!r}, but level {level!r} was "
            f"requested; build a {level!r} lexicon (`dualmind lexicon build --level {level}`) "
            f"or drop --level"
        )


def detect(text: str) -> str:
    from dualmind.lexicon import detect_language

    return detect_language(text[:4000])


# ----------------------------------------------------------------------------- small io helpers
def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


def _inputs_identity(files: Sequence[Path]) -> list[dict]:
    """What the inputs were: path, size and content hash of the first and last MiB (cheap,
    and catches the usual edits that size+mtime would miss after a copy)."""
    out = []
    for f in files:
        st = f.stat()
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if st.st_size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
        out.append(
            {"path": str(f.resolve()), "size": st.st_size, "sha256_ends": h.hexdigest()[:16]}
        )
    return out


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- step 1: plan
def _doc_unit(key: str) -> float:
    """A stable number in [0, 1) per document key: the train/val split never depends on order."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def choose_val(docs: list[dict], val_fraction: float) -> set[int]:
    """Per language: the documents with the smallest key hash until val_fraction of its chars."""
    val: set[int] = set()
    if val_fraction <= 0:
        return val
    by_lang: dict[str, list[dict]] = {}
    for d in docs:
        if d["kind"] == "doc":
            by_lang.setdefault(d["lang"], []).append(d)
    for lang_docs in by_lang.values():
        if len(lang_docs) < 2:
            continue  # one document cannot be both trained on and held out
        total = sum(d["chars"] for d in lang_docs)
        taken = held = 0
        for d in sorted(lang_docs, key=lambda d: (_doc_unit(d["key"]), d["doc"])):
            if taken >= val_fraction * total or held >= len(lang_docs) - 1:
                break  # enough held out, and at least one document stays in train
            val.add(d["doc"])
            taken += d["chars"]
            held += 1
    return val


def assign_shards(docs: list[dict], num_shards: int) -> list[list[int]]:
    """Balance shards by characters (largest first onto the lightest shard); docs keep their
    order inside a shard. Deterministic."""
    heap = [(0, k) for k in range(num_shards)]  # (load, shard): the lightest shard on top
    shards: list[list[int]] = [[] for _ in range(num_shards)]
    for d in sorted(docs, key=lambda d: (-d["chars"], d["doc"])):
        load, k = heapq.heappop(heap)
        shards[k].append(d["doc"])
        heapq.heappush(heap, (load + d["chars"], k))
    return [sorted(s) for s in shards]


def make_plan(
    files: list[Path],
    lex: Any,
    lex_dir: Path,
    opts: BuildOptions,
    out_dir: Path,
    settings: dict,
    progress,
) -> dict:
    work = out_dir / WORK
    work.mkdir(parents=True, exist_ok=True)
    problems = Problems(opts.errors)
    langs = lexicon_langs(lex)
    read_opts = ReadOptions(opts.text_field, opts.max_line_bytes, opts.max_document_bytes)
    docs: list[dict] = []
    offsets = [0]
    keys: dict[str, int] = {}
    staged = work / "documents.jsonl"
    tmp = staged.with_name(staged.name + f".tmp{os.getpid()}")
    total_bytes = sum(f.stat().st_size for f in files)
    task = progress.add_task("reading inputs", total=total_bytes or 1, detail="")
    done_files: set[str] = set()
    read_bytes = 0
    with open(tmp, "wb") as out:
        for sd in read_documents(files, problems, read_opts):
            if sd.path not in done_files:
                done_files.add(sd.path)
                read_bytes += Path(sd.path).stat().st_size
                progress.update(
                    task,
                    completed=read_bytes,
                    detail=f"{read_bytes / 1e6:.1f}/{total_bytes / 1e6:.1f} MB, "
                    f"{len(done_files)}/{len(files)} files",
                )
            lang = opts.lang or sd.lang or detect(sd.text)
            if lang not in langs:
                how = "declared" if (opts.lang or sd.lang) else "detected"
                problems.report(
                    "unknown_language",
                    f"{how} language {lang!r} is not one of the lexicon's {list(langs)}",
                    sd.path,
                    sd.line,
                )
                continue
            key = sd.key
            if key in keys:
                action = problems.report(
                    "duplicate_id", f"duplicate document id {key!r}", sd.path, sd.line
                )
                if action == "skip":
                    continue
                n = 2
                while f"{key}~{n}" in keys:
                    n += 1
                key = f"{key}~{n}"
            i = len(docs)
            keys[key] = i
            rec = {
                "doc": i,
                "key": key,
                "lang": lang,
                "kind": sd.kind,
                "text": sd.text,
                "source": sd.source or sd.path,
                "path": sd.path,
                "line": sd.line,
            }
            if sd.target is not None:
                rec["target"] = sd.target
            line = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
            out.write(line)
            offsets.append(offsets[-1] + len(line))
            docs.append(
                {
                    "doc": i,
                    "key": key,
                    "lang": lang,
                    "kind": sd.kind,
                    "chars": len(sd.text) + len(sd.target or ""),
                }
            )
    progress.update(
        task,
        completed=total_bytes or 1,
        detail=f"{total_bytes / 1e6:.1f} MB, {len(files)} files, {len(docs)} documents",
    )
    os.replace(tmp, staged)
    np.save(work / "documents.offsets.npy", np.asarray(offsets, dtype=np.int64))
    if not any(d["kind"] == "doc" for d in docs):
        raise CorpusError(
            f"no usable documents in the inputs ({len(files)} files); "
            + "; ".join(problems.summary_lines())
        )
    val = choose_val(docs, opts.val_fraction)
    splits: dict[str, list[dict]] = {"train": [], "val": [], "qa": []}
    for d in docs:
        split = "qa" if d["kind"] in ("qa", "pair") else ("val" if d["doc"] in val else "train")
        d["split"] = split
        splits[split].append(d)
    counts = {"train": opts.num_shards, "val": max(1, math.ceil(opts.num_shards / 8)), "qa": 1}
    plan_splits = {}
    for split, sdocs in splits.items():
        if split == "qa" and not sdocs:
            continue
        n = min(counts[split], max(1, len(sdocs)))
        shards = assign_shards(sdocs, n)
        chars = {d["doc"]: d["chars"] for d in sdocs}
        plan_splits[split] = {
            "num_shards": n,
            "documents": len(sdocs),
            "langs": sorted({d["lang"] for d in sdocs}),
            "shards": shards,
            "chars": [sum(chars[i] for i in shard) for shard in shards],  # for progress bars
        }
    plan = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "settings_hash": settings_hash(settings),
        "settings": settings,
        "lexicon": {
            "dir": str(lex_dir),
            "fingerprint": lex.fingerprint,
            "level": lex.level,
            "vocab_size": int(lex.vocab_size),
            "langs": list(langs),
        },
        "documents": len(docs),
        "splits": plan_splits,
        "problems": problems.to_dict(),
    }
    atomic_write_text(work / "plan.json", _json(plan))
    return plan


def plan_split_order(plan: dict) -> list[str]:
    """train, val, qa — the order of hypertrain.jsonl (plan.json itself is written key-sorted)."""
    return [s for s in SPLITS if s in plan["splits"]]


def load_plan(out_dir: Path) -> dict:
    path = Path(out_dir) / WORK / "plan.json"
    if not path.is_file():
        raise CorpusError(f"{path}: no build plan — run the plan step (build_corpus) first")
    return json.loads(path.read_text(encoding="utf-8"))


class StagedDocuments:
    """Random access to the staged documents by doc index (offsets + one file handle)."""

    def __init__(self, out_dir: Path):
        work = Path(out_dir) / WORK
        self.offsets = np.load(work / "documents.offsets.npy")
        self.path = work / "documents.jsonl"

    def read(self, indices: Iterable[int]) -> Iterable[dict]:
        with open(self.path, "rb") as f:
            for i in indices:
                f.seek(int(self.offsets[i]))
                yield json.loads(f.read(int(self.offsets[i + 1] - self.offsets[i])))


# ----------------------------------------------------------------------------- step 2: tokenizer
def train_tokenizer_step(out_dir: Path, plan: dict, vocab_size: int):
    path = out_dir / "tokenizer.json"
    if path.is_file():
        return load_text_tokenizer(path)
    staged = StagedDocuments(out_dir)
    train_docs = [
        i
        for split in ("train", "qa")
        if split in plan["splits"]
        for shard in plan["splits"][split]["shards"]
        for i in shard
    ]

    def texts():
        for d in staged.read(sorted(train_docs)):
            yield d["text"]
            if "target" in d:
                yield d["target"]

    tok = train_text_tokenizer(texts(), vocab_size=vocab_size)
    atomic_write_text(path, tok.to_str(pretty=True))
    return load_text_tokenizer(path)  # reload: the shards must use exactly what is on disk


# ----------------------------------------------------------------------------- step 3: one shard
_CACHE: dict[str, Any] = {}


def _cached(key: str, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def check_spans(ids: list[int], spans: list[tuple[int, int]], n_chars: int, key: str) -> None:
    """The alignment relies on the lexicon's contract (one sorted, non-overlapping span per
    unit, inside the text); a lexicon that breaks it must fail loudly, not misalign silently."""
    if len(ids) != len(spans):
        raise CorpusError(
            f"lexicon gave {len(ids)} ids but {len(spans)} spans for document {key!r}"
        )
    if not spans:
        return
    a = np.asarray(spans, dtype=np.int64)
    if (
        a[0, 0] < 0
        or a[-1, 1] > n_chars
        or np.any(a[:, 1] < a[:, 0])
        or np.any(a[1:, 0] < a[:-1, 1])
    ):
        raise CorpusError(
            f"lexicon returned spans that are unsorted, overlapping or outside the text for "
            f"document {key!r}; this is a lexicon bug (see Lexicon.encode_with_spans)"
        )


def _byte_offsets(text: str) -> np.ndarray:
    """c2b[i] = UTF-8 byte offset of character i (length len(text)+1)."""
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    c2b = np.zeros(len(cps) + 1, dtype=np.int64)
    np.cumsum(1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000), out=c2b[1:])
    return c2b


def align(
    text: str, unit_char_spans: list[tuple[int, int]], token_ids: list[int], tok_lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """(core_bytes per unit, span per token, n_bytes).

    Unit i owns the bytes from its start to the next unit's start (the first unit also owns
    any bytes before it, the last the bytes after it), so core_bytes sums to n_bytes. A token
    belongs to the last unit starting at or before the token's first byte (-1 if none)."""
    c2b = _byte_offsets(text)
    n_bytes = int(c2b[-1])
    starts = (
        c2b[np.asarray([s for s, _ in unit_char_spans], dtype=np.int64)]
        if unit_char_spans
        else np.zeros(0, dtype=np.int64)
    )
    owned = starts.copy()
    if len(owned):
        owned[0] = 0
    core_bytes = np.diff(np.append(owned, n_bytes)) if len(owned) else np.zeros(0, dtype=np.int64)
    lens = tok_lengths[np.asarray(token_ids, dtype=np.int64)]
    if int(lens.sum()) != n_bytes:
        raise RuntimeError(f"decoder tokens cover {int(lens.sum())} bytes, the text has {n_bytes}")
    tok_start = np.cumsum(lens) - lens
    span = np.searchsorted(starts, tok_start, side="right") - 1
    return core_bytes, span, n_bytes


def build_shard(
    out_dir: str | Path,
    split: str,
    shard_index: int,
    num_shards: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Build shard `shard_index` of `num_shards` of `split` from the plan in out_dir/.build.

    Pure function of the plan, the lexicon and tokenizer.json: any process or machine that sees
    out_dir can run it. Returns the shard's stats. An existing shard is left untouched."""
    out_dir = Path(out_dir)
    plan = load_plan(out_dir)
    sp = plan["splits"].get(split)
    if sp is None:
        raise CorpusError(f"{out_dir}: the plan has no split {split!r}")
    if num_shards != sp["num_shards"] or not 0 <= shard_index < num_shards:
        raise CorpusError(
            f"{out_dir}: split {split!r} has {sp['num_shards']} shards; got shard "
            f"{shard_index} of {num_shards}"
        )
    final = out_dir / "shards" / shard_name(split, shard_index)
    if final.is_file():
        return dict(read_shard_header(final)["stats"], reused=True)
    t0 = time.perf_counter()
    lexinfo = plan["lexicon"]
    lex = _cached("lex:" + lexinfo["fingerprint"], lambda: _lexicon_class().load(lexinfo["dir"]))
    if lex.fingerprint != lexinfo["fingerprint"]:
        raise CorpusError(
            f"lexicon {lexinfo['dir']} changed since the plan was made "
            f"(fingerprint {lex.fingerprint}, plan {lexinfo['fingerprint']})"
        )
    tok_path = out_dir / "tokenizer.json"
    tok = _cached(
        f"tok:{tok_path}:{tok_path.stat().st_mtime_ns}", lambda: load_text_tokenizer(tok_path)
    )
    tok_lengths = _cached(
        f"toklen:{tok_path}:{tok_path.stat().st_mtime_ns}", lambda: token_byte_lengths(tok)
    )
    s = plan["settings"]
    limits = SceneLimits(s["min_units"], s["max_units"], s["target_units"], s["block_chars"])
    problems = Problems(plan["settings"]["errors"])  # only `note`s here: planning saw the input
    builder = ShardBuilder(split, shard_index, plan["lexicon"]["langs"])
    lines: list[str] = []
    stats = {"records": 0, "documents": 0, "units": 0, "tokens": 0, "bytes": 0, "langs": {}}

    def add(rec: HypertrainRecord, core, core_bytes, text_ids, span, n_bytes, doc, lang, kind):
        builder.add(core, core_bytes, text_ids, span, n_bytes, doc, lang, kind)
        lines.append(rec.to_json())
        for bucket in (
            stats,
            stats["langs"].setdefault(
                lang, {"records": 0, "documents": 0, "units": 0, "tokens": 0, "bytes": 0}
            ),
        ):
            bucket["records"] += 1
            bucket["units"] += len(core)
            bucket["tokens"] += len(text_ids)
            bucket["bytes"] += n_bytes

    for d in StagedDocuments(out_dir).read(sp["shards"][shard_index]):
        if progress is not None:
            progress(len(d["text"]) + len(d.get("target") or ""))
        lang, doc = d["lang"], d["doc"]
        stats["documents"] += 1
        stats["langs"].setdefault(
            lang, {"records": 0, "documents": 0, "units": 0, "tokens": 0, "bytes": 0}
        )
        stats["langs"][lang]["documents"] += 1
        if d["kind"] in ("qa", "pair"):
            ids, spans = lex.encode_with_spans(d["text"], lang)
            check_spans(ids, spans, len(d["text"]), d["key"])
            if not ids:
                problems.note(
                    "no_units",
                    "skipped",
                    f"{d['kind']} input of {d['key']!r} encodes to no units",
                    d.get("path"),
                    d.get("line"),
                )
                continue
            target_ids = tok.encode(d["target"], add_special_tokens=False).ids
            core_bytes, n_bytes = _input_bytes(d["text"], spans)
            span = np.full(len(target_ids), len(ids) - 1, dtype=np.int64)
            rec = HypertrainRecord(
                id=d["key"],
                kind=d["kind"],
                lang=lang,
                text=d["text"],
                hyperphrase=lex.to_hyperphrase(ids),
                input=d["text"],
                target=d["target"],
                target_hyperphrase=lex.to_hyperphrase(lex.encode(d["target"], lang)),
                doc=doc,
                split=split,
                source=d.get("source"),
                n_units=len(ids),
                n_bytes=n_bytes,
            )
            add(rec, ids, core_bytes, target_ids, span, n_bytes, doc, lang, d["kind"])
            continue
        text = d["text"]
        scene_no = 0
        pending = []  # (scene text, ids, spans) of this document, tokenized in one batch
        for b0, b1 in split_blocks(text, limits.block_chars):
            block = text[b0:b1]
            ids, spans = lex.encode_with_spans(block, lang)
            check_spans(ids, spans, len(block), d["key"])
            if not ids:
                if block.strip():
                    problems.note(
                        "no_units",
                        "skipped",
                        f"{len(block)} characters of document {d['key']!r} encode to no units",
                        d.get("path"),
                        d.get("line"),
                    )
                continue
            for cut in cut_scenes(block, spans, limits):
                scene_text = block[cut.char_start : cut.char_end]
                u_ids = ids[cut.unit_start : cut.unit_end]
                u_spans = [
                    (a - cut.char_start, b - cut.char_start)
                    for a, b in spans[cut.unit_start : cut.unit_end]
                ]
                pending.append((scene_text, u_ids, u_spans))
        encodings = tok.encode_batch([p[0] for p in pending], add_special_tokens=False)
        for (scene_text, u_ids, u_spans), enc in zip(pending, encodings, strict=True):
            core_bytes, span, n_bytes = align(scene_text, u_spans, enc.ids, tok_lengths)
            rec = HypertrainRecord(
                id=f"{d['key']}#s{scene_no}",
                kind="scene",
                lang=lang,
                text=scene_text,
                hyperphrase=lex.to_hyperphrase(u_ids),
                doc=doc,
                split=split,
                source=d.get("source"),
                n_units=len(u_ids),
                n_bytes=n_bytes,
            )
            add(rec, u_ids, core_bytes, enc.ids, span, n_bytes, doc, lang, "scene")
            scene_no += 1

    stats["problems"] = problems.to_dict()
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    parts = out_dir / WORK / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(parts / f"{split}-{shard_index:05d}.jsonl", "".join(x + "\n" for x in lines))
    final.parent.mkdir(parents=True, exist_ok=True)
    # `seconds` varies run to run; keep it out of the shard so rebuilt shards are byte-identical
    builder.write(final, {k: v for k, v in stats.items() if k != "seconds"})
    return stats


def _input_bytes(text: str, spans: list[tuple[int, int]]) -> tuple[np.ndarray, int]:
    """core_bytes of a qa/pair input, attributed like a scene's (see `align`)."""
    c2b = _byte_offsets(text)
    starts = c2b[np.asarray([a for a, _ in spans], dtype=np.int64)]
    starts[0] = 0
    n_bytes = int(c2b[-1])
    return np.diff(np.append(starts, n_bytes)), n_bytes


# ----------------------------------------------------------------------------- step 4: finalize
def finalize(out_dir: Path, plan: dict, tok, build_problems: Problems) -> dict:
    shard_dir = out_dir / "shards"
    manifest_splits: dict[str, Any] = {}
    parts_dir = out_dir / WORK / "parts"
    hyper_tmp = out_dir / f"hypertrain.jsonl.tmp{os.getpid()}"
    kinds: dict[str, int] = {}
    n_lines = 0
    with open(hyper_tmp, "wb") as hyper:
        for split in plan_split_order(plan):
            sp = plan["splits"][split]
            entries, agg = (
                [],
                {"records": 0, "documents": 0, "units": 0, "tokens": 0, "bytes": 0, "langs": {}},
            )
            core_parts, bytes_parts, doc_parts = [], [], []
            for k in range(sp["num_shards"]):
                path = shard_dir / shard_name(split, k)
                sf = ShardFile(path)
                st = sf.header["stats"]
                build_problems.merge(st.get("problems", {}))
                entries.append(
                    {
                        "file": f"shards/{path.name}",
                        "size": path.stat().st_size,
                        "records": sf.records,
                        "units": st["units"],
                        "tokens": st["tokens"],
                        "bytes": st["bytes"],
                    }
                )
                for key in ("records", "documents", "units", "tokens", "bytes"):
                    agg[key] += st[key]
                for lang, v in st["langs"].items():
                    mine = agg["langs"].setdefault(lang, {k2: 0 for k2 in v})
                    for k2, n in v.items():
                        mine[k2] += n
                core_parts.append(np.asarray(sf.arrays["core"]))
                bytes_parts.append(np.asarray(sf.arrays["core_bytes"]))
                units_per = np.diff(sf.arrays["rec_core"])
                doc_parts.append(np.repeat(sf.arrays["rec_doc"].astype(np.int32), units_per))
                part = parts_dir / f"{split}-{k:05d}.jsonl"
                with open(part, "rb") as pf:
                    for line in pf:
                        hyper.write(line)
                        n_lines += 1
                kinds_in = np.bincount(sf.arrays["rec_kind"], minlength=len(sf.kinds))
                for kind, n in zip(sf.kinds, kinds_in.tolist(), strict=False):
                    if n:
                        kinds[kind] = kinds.get(kind, 0) + n
            packed = {}
            for name, parts in zip(PACKED, (core_parts, bytes_parts, doc_parts), strict=True):
                path = packed_paths(shard_dir, split)[name]
                arr = (
                    np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)
                )
                tmp = path.with_name(path.name + f".tmp{os.getpid()}")
                with open(tmp, "wb") as f:
                    np.save(f, arr)
                os.replace(tmp, path)
                packed[name] = f"shards/{path.name}"
            manifest_splits[split] = dict(
                agg, num_shards=sp["num_shards"], shards=entries, packed=packed
            )
    os.replace(hyper_tmp, out_dir / "hypertrain.jsonl")
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "settings_hash": plan["settings_hash"],
        "settings": plan["settings"],
        "lexicon": {k: v for k, v in plan["lexicon"].items() if k != "dir"},
        "tokenizer": {
            "file": "tokenizer.json",
            "fingerprint": tokenizer_fingerprint(tok),
            "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "kind": "byte-level BPE",
            "special": {"pad": 0, "bos": 1, "eos": 2, "unk": 3},
        },
        # records of hypertrain.jsonl come split by split in this order, shard by shard
        "hypertrain": {
            "file": "hypertrain.jsonl",
            "records": n_lines,
            "kinds": dict(sorted(kinds.items())),
            "split_order": plan_split_order(plan),
        },
        "documents": plan["documents"],
        "splits": manifest_splits,
        "problems": build_problems.to_dict(),
        "inputs": plan["settings"].get("inputs", []),
    }
    atomic_write_text(out_dir / MANIFEST, _json(manifest))
    return manifest


# ----------------------------------------------------------------------------- orchestration
def _prepare_out_dir(out_dir: Path, h: str, overwrite: bool) -> str:
    """'fresh' | 'resume' | 'done'; refuses a folder holding another build or unrelated files."""
    manifest = out_dir / MANIFEST
    plan = out_dir / WORK / "plan.json"
    existing = None
    for path in (manifest, plan):
        if path.is_file():
            try:
                existing = json.loads(path.read_text(encoding="utf-8")).get("settings_hash")
            except ValueError:
                existing = "unreadable"
            break
    if existing == h and manifest.is_file():
        return "done"
    staged = out_dir / WORK / "documents.jsonl"
    if existing == h and staged.is_file():
        return "resume"
    if existing == h:
        # the plan survived but its staged documents did not (a finished build whose manifest
        # was deleted): nothing to resume from, so start again
        existing = None
    ours = {MANIFEST, WORK, "shards", "hypertrain.jsonl", "tokenizer.json", "build_report.json"}
    present = [p.name for p in out_dir.iterdir()] if out_dir.is_dir() else []
    foreign = [
        n
        for n in present
        if n not in ours and not n.startswith(("hypertrain.jsonl.tmp", "tokenizer.json.tmp"))
    ]
    if existing is not None and not overwrite:
        raise CorpusError(
            f"{out_dir} holds a corpus build with other settings or inputs "
            f"(settings hash {existing}, this build {h}); pass --overwrite to replace it"
        )
    if foreign and not overwrite:
        raise CorpusError(
            f"{out_dir} holds files that are not a corpus build's ({sorted(foreign)[:5]}); "
            "choose an empty folder, or pass --overwrite (which removes only a build's own files)"
        )
    # Our own files without a plan are what a build that stopped while planning leaves: they
    # carry no finished work, so they go. Files that are not ours are never touched.
    for n in present:
        if n not in foreign:
            p = out_dir / n
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return "fresh"


def _remove_temporaries(out_dir: Path) -> None:
    for folder in (out_dir, out_dir / "shards", out_dir / WORK, out_dir / WORK / "parts"):
        if folder.is_dir():
            for p in folder.iterdir():
                if ".tmp" in p.name and p.is_file():
                    p.unlink()


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}", markup=False),
        disable=not enabled,
    )


def run_shards(
    out_dir: Path, tasks: list[tuple[str, int, int]], opts: BuildOptions, progress
) -> list[dict]:
    """Run build_shard for each (split, index, num_shards) on the chosen backend."""
    workers = opts.workers or os.cpu_count() or 1
    serial = opts.backend == "serial" or workers <= 1 or len(tasks) <= 1
    where = {"ray": "on Ray", "process": f"on {min(workers, len(tasks))} processes"}
    where_now = "in this process" if serial and opts.backend != "ray" else where[opts.backend]
    plan = load_plan(out_dir)
    # progress is measured in characters of documents (the plan knows each shard's share)
    share = {(s, k): (plan["splits"][s].get("chars") or [1] * n)[k] for s, k, n in tasks}
    task = progress.add_task(
        f"building shards {where_now}", total=sum(share.values()) or 1, detail=""
    )
    results: list[dict] = []

    def detail() -> str:
        mb = sum(r["bytes"] for r in results) / 1e6
        units = sum(r["units"] for r in results)
        return f"{len(results)}/{len(tasks)} shards, {mb:.1f} MB, {units} units"

    def advance(chars: int) -> None:
        progress.update(task, advance=chars)

    def done(stats: dict) -> None:
        results.append(stats)
        progress.update(task, detail=detail())

    if opts.backend == "ray":
        from dualmind.data.ray_backend import run_shards_on_ray

        for r in run_shards_on_ray(out_dir, tasks, address=opts.ray_address, num_cpus=opts.workers):
            advance(share.get((r.get("split"), r.get("shard")), 0))
            done(r)
    elif serial:
        for split, k, n in tasks:
            done(build_shard(out_dir, split, k, n, progress=advance))
    else:
        from dualmind.data.shard_worker import run_in_workers

        run_in_workers(
            out_dir,
            tasks,
            min(workers, len(tasks)),
            lambda _task, stats: done(stats),
            on_progress=advance,
        )
    progress.update(
        task,
        completed=sum(share.values()) or 1,
        detail=detail() if tasks else "all shards already built",
    )
    return results


def build_corpus(
    inputs: Sequence[str | os.PathLike] | None,
    lexicon: Any,
    out_dir: str | os.PathLike,
    **options: Any,
) -> BuildSummary:
    """Build (or resume, or confirm) a corpus. `inputs` None = the embedded demo corpus.

    `lexicon` is a Lexicon or its folder. Options are the fields of BuildOptions
    (num_shards, workers, errors, backend, level, text_vocab_size, val_fraction, ...)."""
    opts = BuildOptions(**options)
    opts.validate()
    out_dir = Path(out_dir).resolve()
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    if inputs is None:
        from dualmind.data.demo import demo_files

        inputs = [str(p) for p in demo_files()]
    files = expand_inputs(inputs)
    lex_obj, lex_dir, state, settings = _start(files, lexicon, out_dir, opts)
    if state == "done":
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        return BuildSummary(
            str(out_dir), "up-to-date", manifest, {"total": time.perf_counter() - t_start}
        )
    _CACHE["lex:" + lex_obj.fingerprint] = lex_obj  # in-process shards reuse the loaded lexicon
    with _progress(opts.progress) as progress:
        t = time.perf_counter()
        if state == "resume":
            plan = load_plan(out_dir)
        else:
            plan = make_plan(files, lex_obj, lex_dir, opts, out_dir, settings, progress)
        timings["plan"] = time.perf_counter() - t
        t = time.perf_counter()
        spin = progress.add_task("training decoder BPE", total=1, detail="")
        tok = train_tokenizer_step(out_dir, plan, opts.text_vocab_size)
        progress.update(spin, completed=1, detail=f"{tok.get_vocab_size()} tokens")
        timings["tokenizer"] = time.perf_counter() - t
        t = time.perf_counter()
        all_tasks = [
            (split, k, plan["splits"][split]["num_shards"])
            for split in plan_split_order(plan)
            for k in range(plan["splits"][split]["num_shards"])
        ]
        todo = [x for x in all_tasks if not (out_dir / "shards" / shard_name(x[0], x[1])).is_file()]
        run_shards(out_dir, todo, opts, progress)
        timings["shards"] = time.perf_counter() - t
        t = time.perf_counter()
        fin = progress.add_task("writing hypertrain.jsonl and manifest", total=1, detail="")
        manifest = finalize(out_dir, plan, tok, Problems(**_problems_args(plan["problems"])))
        progress.update(fin, completed=1, detail=f"{manifest['hypertrain']['records']} records")
        timings["finalize"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    report = {
        "timings": timings,
        "workers": opts.workers or os.cpu_count(),
        "backend": opts.backend,
        "shards_built": len(todo),
        "shards_reused": len(all_tasks) - len(todo),
    }
    atomic_write_text(out_dir / "build_report.json", _json(report))
    if not opts.keep_work:
        for name in ("documents.jsonl", "documents.offsets.npy", "parts"):
            p = out_dir / WORK / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    return BuildSummary(
        str(out_dir),
        "built" if state == "fresh" else "resumed",
        manifest,
        timings,
        shards_built=len(todo),
        shards_reused=len(all_tasks) - len(todo),
    )


def _settings(opts: BuildOptions, files: list[Path], lex: Any) -> dict:
    return dict(
        opts.settings(), inputs=_inputs_identity(files), lexicon_fingerprint=lex.fingerprint
    )


def _start(
    files: list[Path], lexicon: Any, out_dir: Path, opts: BuildOptions
) -> tuple[Any, Path, str, dict]:
    """Check the lexicon, decide fresh/resume/done, and make the lexicon loadable by workers.
    Returns (lexicon, its folder, state, the build's settings)."""
    if isinstance(lexicon, (str, os.PathLike)):
        lex_obj, lex_dir = resolve_lexicon(lexicon, out_dir)
        check_level(lex_obj, opts.level, lex_dir)
    else:
        lex_obj, lex_dir = lexicon, None
        check_level(lex_obj, opts.level, Path("<lexicon object>"))
    settings = _settings(opts, files, lex_obj)
    state = _prepare_out_dir(out_dir, settings_hash(settings), opts.overwrite)
    if state == "done":
        return lex_obj, lex_dir, state, settings
    out_dir.mkdir(parents=True, exist_ok=True)
    if lex_dir is None:  # an object: saved under .build/ so that other processes can load it
        lex_obj, lex_dir = resolve_lexicon(lexicon, out_dir)
    _remove_temporaries(out_dir)
    return lex_obj, lex_dir, state, settings


def prepare_build(inputs, lexicon, out_dir, **options) -> dict:
    """Steps 1–2 only (plan + tokenizer), for running the shards elsewhere; returns the plan."""
    opts = BuildOptions(**dict(options, progress=False))
    opts.validate()
    out_dir = Path(out_dir).resolve()
    if inputs is None:
        from dualmind.data.demo import demo_files

        inputs = [str(p) for p in demo_files()]
    files = expand_inputs(inputs)
    lex_obj, lex_dir, state, settings = _start(files, lexicon, out_dir, opts)
    if state == "done":
        return load_plan(out_dir)
    with _progress(False) as progress:
        plan = (
            load_plan(out_dir)
            if state == "resume"
            else make_plan(files, lex_obj, lex_dir, opts, out_dir, settings, progress)
        )
    train_tokenizer_step(out_dir, plan, opts.text_vocab_size)
    return plan


__all__ = [
    "BuildOptions",
    "BuildSummary",
    "CorpusError",
    "InputError",
    "build_corpus",
    "build_shard",
    "prepare_build",
    "load_plan",
]
