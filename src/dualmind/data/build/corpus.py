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

A build that fails (or is interrupted) before its plan is written removes what it made: nothing
could be resumed from it. From the plan on, OUT is an unfinished build that the same command
resumes; readers refuse it until manifest.json exists (state.discard_unplanned).

A build whose settings (inputs, lexicon, options) differ from the ones in OUT is refused unless
`overwrite=True`: mixing shards of two builds would be silent corruption.

This module runs the steps; each lives in its own module of data/build/:

    options          BuildOptions, CorpusError, format constants
    summary          BuildSummary (what a build returns and the CLI prints)
    lexicon_step     loading / saving / checking the lexicon for the workers
    state            the build's settings hash and what OUT already holds (fresh/resume/done)
    document_staging reading the inputs into .build/documents.jsonl, and reading them back
    plan             step 1: val choice, shard assignment, plan.json
    tokenizer_step   step 2: the decoder BPE
    alignment        BPE tokens <-> lexicon units, in bytes
    shard_build      step 3: build_shard
    finalize         step 4: hypertrain.jsonl, packed arrays, manifest.json

Other code imports each name from the module that defines it; this one is build_corpus's.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dualmind.data.build.files import atomic_write_text, json_text
from dualmind.data.build.finalize import finalize
from dualmind.data.build.lexicon_step import check_level, resolve_lexicon
from dualmind.data.build.options import (
    WORK,
    BuildOptions,
)
from dualmind.data.build.plan import (
    input_files,
    load_plan,
    make_plan,
    plan_split_order,
)
from dualmind.data.build.progress import progress_display

# run_shards calls build_shard through this module's namespace (serial backend): a caller that
# wraps `dualmind.data.build.corpus.build_shard` (the killed-build test does) wraps what runs.
from dualmind.data.build.shard_build import build_shard, remember_lexicon
from dualmind.data.build.state import (
    build_settings,
    discard_unplanned,
    missing_dirs,
    note_resumable,
    prepare_out_dir,
    remove_temporaries,
    settings_hash,
)
from dualmind.data.build.summary import BuildSummary, restore_problems
from dualmind.data.build.tokenizer_step import train_tokenizer_step
from dualmind.data.shards import MANIFEST, shard_name


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
        from dualmind.data.build.ray_backend import run_shards_on_ray

        for r in run_shards_on_ray(out_dir, tasks, address=opts.ray_address, num_cpus=opts.workers):
            advance(share.get((r.get("split"), r.get("shard")), 0))
            done(r)
    elif serial:
        for split, k, n in tasks:
            done(build_shard(out_dir, split, k, n, progress=advance))
    else:
        from dualmind.data.build.shard_worker import run_in_workers

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
    `heldout` (an option): files whose documents form the val split, and nothing else does.

    `lexicon` is a Lexicon or its folder. Options are the fields of BuildOptions
    (num_shards, workers, errors, backend, level, text_vocab_size, val_fraction, ...)."""
    opts = BuildOptions(**options)
    opts.validate()
    out_dir = Path(out_dir).resolve()
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    files = input_files(inputs, opts)
    made = missing_dirs(out_dir)
    lex_obj, lex_dir, state, settings = _start(files, lexicon, out_dir, opts, made)
    if state == "done":
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        return BuildSummary(
            str(out_dir), "up-to-date", manifest, {"total": time.perf_counter() - t_start}
        )
    remember_lexicon(lex_obj)  # in-process shards reuse the loaded lexicon
    with note_resumable(out_dir), progress_display(opts.progress) as progress:
        t = time.perf_counter()
        if state == "resume":
            plan = load_plan(out_dir)
        else:
            with discard_unplanned(out_dir, made):
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
        manifest = finalize(out_dir, plan, tok, restore_problems(plan["problems"]))
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
    atomic_write_text(out_dir / "build_report.json", json_text(report))
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


def _start(
    files: list[Path], lexicon: Any, out_dir: Path, opts: BuildOptions, made: list[Path]
) -> tuple[Any, Path, str, dict]:
    """Check the lexicon, decide fresh/resume/done, and make the lexicon loadable by workers.
    Returns (lexicon, its folder, state, the build's settings). ``made``: the folders this build
    creates (missing_dirs), removed again if it fails before its plan exists."""
    if isinstance(lexicon, (str, os.PathLike)):
        lex_obj, lex_dir = resolve_lexicon(lexicon, out_dir)
        check_level(lex_obj, opts.level, lex_dir)
    else:
        lex_obj, lex_dir = lexicon, None
        check_level(lex_obj, opts.level, Path("<lexicon object>"))
    settings = build_settings(opts, files, lex_obj)
    state = prepare_out_dir(out_dir, settings_hash(settings), opts.overwrite)
    if state == "done":
        return lex_obj, lex_dir, state, settings
    with discard_unplanned(out_dir, made):
        out_dir.mkdir(parents=True, exist_ok=True)
        if lex_dir is None:  # an object: saved under .build/ so that other processes can load it
            lex_obj, lex_dir = resolve_lexicon(lexicon, out_dir)
        remove_temporaries(out_dir)
    return lex_obj, lex_dir, state, settings


def prepare_build(inputs, lexicon, out_dir, **options) -> dict:
    """Steps 1–2 only (plan + tokenizer), for running the shards elsewhere; returns the plan."""
    opts = BuildOptions(**dict(options, progress=False))
    opts.validate()
    out_dir = Path(out_dir).resolve()
    files = input_files(inputs, opts)
    made = missing_dirs(out_dir)
    lex_obj, lex_dir, state, settings = _start(files, lexicon, out_dir, opts, made)
    if state == "done":
        return load_plan(out_dir)
    with progress_display(False) as progress, discard_unplanned(out_dir, made):
        plan = (
            load_plan(out_dir)
            if state == "resume"
            else make_plan(files, lex_obj, lex_dir, opts, out_dir, settings, progress)
        )
    train_tokenizer_step(out_dir, plan, opts.text_vocab_size)
    return plan
