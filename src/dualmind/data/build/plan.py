"""Step 1 of a build, the plan: which documents go to train, val and qa, and to which shard.

The plan (OUT/.build/plan.json) is what makes the shard step a pure function: every shard
builder, in any process or on any machine, reads its documents and settings from it.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
from pathlib import Path
from typing import Any

from dualmind.data.build.document_staging import stage_documents
from dualmind.data.build.files import atomic_write_text, json_text
from dualmind.data.build.lexicon_step import lexicon_langs
from dualmind.data.build.options import (
    FORMAT,
    FORMAT_VERSION,
    SPLITS,
    WORK,
    BuildOptions,
    CorpusError,
)
from dualmind.data.build.state import settings_hash
from dualmind.sources.readers import expand_inputs


def _doc_unit(key: str) -> float:
    """A stable number in [0, 1) per document key: the train/val split never depends on order."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def input_files(inputs, opts: BuildOptions) -> list[Path]:
    """Every file the build reads: the inputs (None: the embedded demo corpus) and the held-out
    files. Sets ``opts.heldout`` to the held-out files, resolved, so the build's settings and the
    staging step name the same files whichever way they were given (folder, glob, path).

    A file named both as an input and as held out is held out: a user who says a file is held
    out means it, and `corpus build data/ --heldout data/val/` is the natural way to say it."""
    if inputs is None:
        if opts.heldout:
            raise CorpusError(
                "--heldout names the val documents, so the training inputs must be named too "
                "(without inputs the build reads the embedded demo corpus)"
            )
        from dualmind.sources.demo import demo_files

        inputs = [str(p) for p in demo_files()]
    held = expand_inputs(opts.heldout) if opts.heldout else []
    opts.heldout = tuple(str(f.resolve()) for f in held)
    return expand_inputs([*inputs, *held])


def held_out_documents(docs: list[dict], opts: BuildOptions) -> set[int]:
    """The val split: the documents of the --heldout files when given (and nothing else), else
    `choose_val` by val_fraction per language."""
    if not opts.heldout:
        return choose_val(docs, opts.val_fraction)
    val = {d["doc"] for d in docs if d["heldout"] and d["kind"] == "doc"}
    if not val:
        raise CorpusError(
            f"none of the {len(opts.heldout)} --heldout files gave a usable document "
            "(see the problems counted above; a held-out file's language must be one of the "
            "lexicon's)"
        )
    if not any(d["kind"] == "doc" and d["doc"] not in val for d in docs):
        raise CorpusError("every document is held out (--heldout): nothing is left to train on")
    return val


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
    """Stage the documents, split them train/val/qa and assign them to shards; writes and
    returns the plan."""
    work = out_dir / WORK
    work.mkdir(parents=True, exist_ok=True)
    docs, problems = stage_documents(files, lex, opts, work, progress)
    langs = lexicon_langs(lex)
    if not any(d["kind"] == "doc" for d in docs):
        raise CorpusError(
            f"no usable documents in the inputs ({len(files)} files); {problems.reason()}"
        )
    val = held_out_documents(docs, opts)
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
    atomic_write_text(work / "plan.json", json_text(plan))
    return plan


def plan_split_order(plan: dict) -> list[str]:
    """train, val, qa — the order of hypertrain.jsonl (plan.json itself is written key-sorted)."""
    return [s for s in SPLITS if s in plan["splits"]]


def load_plan(out_dir: Path) -> dict:
    path = Path(out_dir) / WORK / "plan.json"
    if not path.is_file():
        raise CorpusError(f"{path}: no build plan — run the plan step (build_corpus) first")
    return json.loads(path.read_text(encoding="utf-8"))
