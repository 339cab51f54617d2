"""Step 4 of a build: hypertrain.jsonl, the packed per-split arrays and manifest.json.

The manifest is written last, atomically: its presence is what marks a build as complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dualmind.data.build.files import atomic_write_text, json_text
from dualmind.data.build.options import FORMAT, FORMAT_VERSION, WORK
from dualmind.data.build.plan import plan_split_order
from dualmind.data.shards import MANIFEST, PACKED, ShardFile, packed_paths, shard_name
from dualmind.data.text_tokenizer import tokenizer_fingerprint
from dualmind.sources.problems import Problems


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
    atomic_write_text(out_dir / MANIFEST, json_text(manifest))
    return manifest
