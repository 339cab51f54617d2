"""Staging: the accepted input documents, one JSON line each, in OUT/.build/documents.jsonl.

Reading and checking the inputs happens once, while planning; every shard then reads only its
own documents from the staged file by offset, so shard workers never re-parse the inputs and
never disagree with the plan about what a document is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from dualmind.data.build.lexicon_step import detect, lexicon_langs
from dualmind.data.build.options import WORK, BuildOptions, CorpusError
from dualmind.sources.documents import read_documents
from dualmind.sources.problems import Problems
from dualmind.sources.readers import ReadOptions


def stage_documents(
    files: list[Path], lex: Any, opts: BuildOptions, work: Path, progress
) -> tuple[list[dict], Problems]:
    """Read the inputs (policy opts.errors), settle each document's language and unique key,
    and stage the accepted ones. Returns the plan's view of each document (no text) and the
    problems met."""
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
    held_files = set(opts.heldout)  # resolved paths (build_plan.input_files)
    is_held: dict[str, bool] = {}
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
            held = is_held.setdefault(sd.path, str(Path(sd.path).resolve()) in held_files)
            if held and sd.kind != "doc":
                # val holds scenes of documents; a pair would go to the qa split, which
                # alignment trains on: refused rather than trained on after being held out
                raise CorpusError(
                    f"{sd.path}:{sd.line}: a held-out file (--heldout) holds a question/answer "
                    "or text pair; val holds documents only: move the pairs to the training "
                    "inputs, or leave them out"
                )
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
                    "heldout": held,
                }
            )
    progress.update(
        task,
        completed=total_bytes or 1,
        detail=f"{total_bytes / 1e6:.1f} MB, {len(files)} files, {len(docs)} documents",
    )
    os.replace(tmp, staged)
    np.save(work / "documents.offsets.npy", np.asarray(offsets, dtype=np.int64))
    return docs, problems


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
