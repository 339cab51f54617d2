"""Step 3 of a build: one shard, `build_shard(out_dir, split, shard_index, num_shards)`.

A pure function of the plan, the lexicon and tokenizer.json, so that the serial, process and
Ray backends all call this very function, and a shard that exists is never rewritten (that is
what lets a killed build resume).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dualmind.data.build.alignment import align, check_spans, input_bytes
from dualmind.data.build.document_staging import StagedDocuments
from dualmind.data.build.files import atomic_write_text
from dualmind.data.build.lexicon_step import lexicon_class
from dualmind.data.build.options import WORK, CorpusError
from dualmind.data.build.plan import load_plan
from dualmind.data.build.scenes import SceneLimits, cut_scenes, split_blocks
from dualmind.data.schema import HypertrainRecord
from dualmind.data.shards import ShardBuilder, read_shard_header, shard_name
from dualmind.data.text_tokenizer import load_text_tokenizer, token_byte_lengths
from dualmind.sources.problems import Problems

# Loaded lexicons and tokenizers, per process: a worker building several shards loads them once.
_CACHE: dict[str, Any] = {}


def _cached(key: str, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def remember_lexicon(lex: Any) -> None:
    """Let shards built in this process reuse a lexicon the caller already has loaded."""
    _CACHE["lex:" + lex.fingerprint] = lex


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
    lex = _cached("lex:" + lexinfo["fingerprint"], lambda: lexicon_class().load(lexinfo["dir"]))
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
    by_unit = s.get("text_tokens", "text") == "units" or (
        s.get("text_tokens") == "auto" and lex.level == "lossless")
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
            core_bytes, n_bytes = input_bytes(d["text"], spans)
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
        if by_unit:
            encodings = encode_by_unit(tok, pending)
        else:
            encodings = [e.ids for e in tok.encode_batch([p[0] for p in pending],
                                                         add_special_tokens=False)]
        for (scene_text, u_ids, u_spans), text_ids in zip(pending, encodings, strict=True):
            core_bytes, span, n_bytes = align(scene_text, u_spans, text_ids, tok_lengths)
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
            add(rec, u_ids, core_bytes, text_ids, span, n_bytes, doc, lang, "scene")
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


def unit_pieces(text: str, unit_char_spans: list[tuple[int, int]]) -> list[str]:
    """The text each unit owns, in order (as :func:`dualmind.data.build.alignment.align` attributes
    bytes: from its start to the next unit's start, the first unit from the text's start):
    their concatenation is the text. A unit that shares its first character with the one before
    (a byte of a multi-byte character) owns an empty piece."""
    cuts = [0, *(a for a, _ in unit_char_spans[1:]), len(text)]
    return [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def encode_by_unit(tok, scenes: list[tuple[str, list, list]]) -> list[list[int]]:
    """Each scene's tokens with every unit's piece tokenized on its own (BuildOptions.
    text_tokens "units"): no token crosses a unit boundary. One batch for all pieces."""
    pieces = [unit_pieces(text, spans) for text, _, spans in scenes]
    flat = [p for ps in pieces for p in ps if p]
    encoded = iter(tok.encode_batch(flat, add_special_tokens=False))
    return [[i for p in ps if p for i in next(encoded).ids] for ps in pieces]
