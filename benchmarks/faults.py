"""Reliability campaign (issue 12): kill -9 at random moments of short training runs, and bad
inputs through the real command lines.

    .venv/bin/python benchmarks/faults.py                 # the whole campaign (~15 min, 2 cores)
    .venv/bin/python benchmarks/faults.py --quick --no-write   # 2 core trials, 3 input classes

1. Kill campaign (benchmarks/faults_kill.py): a tiny core_mini-shaped run (16 steps, a checkpoint
   every 4), an align run (a tiny decoder over the frozen core the core reference run made) and
   a 2-process fsdp2 run (gloo, Lightning's ModelParallelStrategy: what strategy=fsdp2 does on
   CPU), each SIGKILLed at seeded random moments, some inside a checkpoint write, then resumed
   with ckpt_path=last until done; every final state is compared bit for bit with an
   uninterrupted run of the same command.
2. Bad inputs (benchmarks/faults_inputs.py): one row per class, run through `dualmind corpus
   build`, `dualmind lexicon build`, `train.py` and `dualmind eval`: exit code, first line of the
   message, what was counted, and whether the last good state and the inputs are intact.

Writes benchmarks/RESULTS.md, section reliability (unless --no-write), and faults.json in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO / "tests"))  # the tiny shapes and corpus of the training tests

from faults_kill import Trial, final_state, launch, plan_kills, run_trial  # noqa: E402
from results_md import RESULTS, write_section  # noqa: E402

STEPS, EVERY = 16, 4
# Checkpoint streams written as on a 3 MB/s disk: a tiny core checkpoint file (1.7 MB) takes
# ~0.6 s, an fsdp2 rank's shard (~1.1 MB) ~0.4 s, so kills aimed into a write land in one.
WRITE_BYTES_PER_S = "3e6"


def shapes(corpus: Path, core_ckpt: Path | None) -> dict[str, list[str]]:
    """The campaign's runs: name -> overrides (run_dir added per trial)."""
    from test_parallel_support import FSDP2_TWO_CPU_RANKS
    from test_train_align import TINY_DECODER
    from test_train_support import QUIET, TINY_MODEL

    steps = [f"trainer.max_steps={STEPS}", f"trainer.checkpoint_every_n_steps={EVERY}",
             "trainer.val_check_interval=8", "trainer.precision=32-true",
             "trainer.num_threads=1", "trainer.progress_every_n_steps=1",
             "data.val_max_batches=1", *QUIET]
    core = ["recipe=core_mini", f"data.dir={corpus}", *TINY_MODEL, "data.seq_len=64", *steps]
    out = {"core": [*core, "data.batch_size=4"],
           "fsdp2": [*core, "data.batch_size=2", *FSDP2_TWO_CPU_RANKS]}
    if core_ckpt is not None:
        out["align"] = ["recipe=decoder_align", f"data.dir={corpus}",
                        f"core.checkpoint={core_ckpt}", *TINY_MODEL, *TINY_DECODER,
                        "data.seq_len=128", "data.batch_size=2", *steps]
    return out


def campaign(name: str, overrides: list[str], trials: int, rng, work: Path, env: dict,
             keep_reference: Path | None = None) -> tuple[list[Trial], Path]:
    """The reference run, then `trials` killed-and-resumed runs; returns them and the reference
    run's final checkpoint."""
    home = work / name
    home.mkdir(parents=True, exist_ok=True)
    log = home / "log.txt"
    ref_dir = home / "reference"
    rc, _, error, _ = launch([*overrides, f"run_dir={ref_dir}"], home, env, None, log)
    if rc != 0:
        raise SystemExit(f"{name}: the uninterrupted reference run failed ({rc}): {error}; "
                         f"see {log}")
    reference = final_state(ref_dir)
    done = []
    for i, kills in enumerate(plan_kills(trials, rng, STEPS, EVERY)):
        trial = Trial(f"{name}-{i + 1}", kills)
        run_dir = home / trial.name
        print(f"[faults] {trial.name}: {', '.join(k.planned() for k in kills)}", flush=True)
        run_trial(trial, [*overrides, f"run_dir={run_dir}"], run_dir, env, log, reference)
        print(f"[faults] {trial.name}: {'identical' if trial.identical else trial.differences}"
              f" after {trial.resumes} resumes", flush=True)
        done.append(trial)
    return done, ref_dir / "checkpoints" / "last.ckpt"


def kill_table(name: str, trials: list[Trial]) -> list[str]:
    kills = [r for t in trials for r in t.runs if r.landed]
    in_write = [r for r in kills if r.landed.startswith("writing")]
    same = sum(t.identical for t in trials)
    lines = [
        f"**{name}**: {len(trials)} trials, {len(kills)} kills ({len(in_write)} inside a "
        f"checkpoint write), {sum(t.resumes for t in trials)} resumes; final state identical to "
        f"the uninterrupted run in **{same}/{len(trials)}**; unreadable last checkpoints after a "
        f"kill: **{sum(t.unreadable_last for t in trials)}**; temporaries left at the end: "
        f"{sum(t.temps_left for t in trials)}.",
        "",
        "| trial | kill planned | kill landed | checkpoints after the kill | resumed from | "
        "resumes | identical |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        killed = [r for r in t.runs if r.kill is not None]
        planned = "; ".join(r.kill.planned() for r in killed) or "-"
        landed = "; ".join(r.landed or "not reached" for r in killed) or "-"
        after = "; ".join(r.after for r in t.runs if r.landed) or "-"
        starts = "; ".join(r.start for r in t.runs[1:]) or "-"
        verdict = "yes" if t.identical else (
            f"NO ({', '.join(t.differences)})" if t.differences else
            f"NO (exit {t.runs[-1].rc}: {t.runs[-1].error or 'see log'})")
        lines.append(f"| {t.name} | {planned} | {landed} | {after} | {starts} | {t.resumes} | "
                     f"{verdict} |")
    return lines


def input_table(rows: list[dict]) -> list[str]:
    lines = ["| # | class | command | exit | first line of the message | counted / replaced | "
             "nothing lost | test |", "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        msg = r["message"].replace("|", "\\|")
        lost = ("yes: " if r["nothing_lost"] else "**NO**: ") + r["lost_note"]
        lines.append(f"| {i} | {r['name']} | `{r['command']}` | {r['exit']} | {msg} | "
                     f"{r['counted']} | {lost} | {r['test']} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="2 core trials, no align or fsdp2 trials, 3 input classes")
    p.add_argument("--core-trials", type=int, default=12)
    p.add_argument("--align-trials", type=int, default=4)
    p.add_argument("--fsdp2-trials", type=int, default=4)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--corpus", type=Path,
                   help="a tiny corpus folder with its lexicon/ beside it (default: built here)")
    p.add_argument("--out", type=Path, help="work folder (default: a temporary one, removed)")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.core_trials, args.align_trials, args.fsdp2_trials = 2, 0, 0
    from faults_inputs import run_inputs

    if args.corpus is None:
        from test_train_support import tiny_corpus

        args.corpus = tiny_corpus()
    work = args.out or Path(tempfile.mkdtemp(prefix="dualmind-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FAULTS_WRITE_BYTES_PER_S": WRITE_BYTES_PER_S}
    rng = random.Random(args.seed)
    runs = shapes(args.corpus, None)
    results: dict[str, list[Trial]] = {}
    results["core"], core_ckpt = campaign("core", runs["core"], args.core_trials, rng, work, env)
    align_ckpt = None
    if not args.quick:  # the align reference run also gives the eval rows their decoder
        runs = shapes(args.corpus, core_ckpt)
        results["align"], align_ckpt = campaign("align", runs["align"], args.align_trials, rng,
                                                work, env)
    if args.fsdp2_trials:
        results["fsdp2"], _ = campaign("fsdp2", runs["fsdp2"], args.fsdp2_trials, rng, work,
                                       env)
    rows = run_inputs(work / "inputs", args.corpus, runs["core"], core_ckpt.parent.parent,
                      align_ckpt, quick=args.quick)

    (work / "faults.json").write_text(json.dumps(
        {"kill": {k: [asdict(t) for t in v] for k, v in results.items()}, "inputs": rows},
        indent=1, default=str))
    text = report(results, rows, args)
    print(text)
    if not args.no_write:
        write_section("reliability", text, args.results)
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    bad = [t.name for v in results.values() for t in v if not t.identical]
    bad += [r["name"] for r in rows if not r["nothing_lost"]]
    return 1 if bad else 0


# What the campaign found when it was first run (2026-12, issue 12), and what became of it.
FINDINGS = [
    "Found by this campaign and fixed (each with a unit test): an fsdp2 save overwrote "
    "last.ckpt's shards in place, so a kill mid-save left old metadata beside cut shards that "
    "resume took as intact (now staged and moved into place: checkpoint/atomic_save.py); a run "
    "killed between step*.ckpt and last.ckpt resumed from the older last.ckpt, or at its first "
    "save from step 0, and at its final step left last.ckpt behind for good (ckpt_path=last now "
    "takes the intact checkpoint of the highest step and refreshes last.ckpt); temporaries of "
    "killed saves were never removed; a full disk mid-save was an OSError traceback; a packed "
    "array cut short said only 'mmap length is greater than file size'; negative step counts "
    "and learning rates were tracebacks (optim.warmup_steps=-5 ran); an unknown recipe was a "
    "dozen lines with exit 1; train.py refused a ckpt_path cut short without naming the intact "
    "checkpoint beside it.",
    "",
    "Seen and left as they are (files others own): `dualmind eval` prints its error line on "
    "stdout as `dualmind eval: ...` (the other commands: stderr, `error: ...`); the NaN stop "
    "names the step by completed steps (`at step 16` for the progress line's step 17) and, "
    "after a resume from a file outside the run folder, says 'Last good checkpoint: none "
    "written yet' although the folder holds last.ckpt.",
]


def report(results: dict[str, list[Trial]], rows: list[dict], args) -> str:
    import platform

    titles = {"core": "core_mini-shaped tiny core (1 process)",
              "align": "decoder_align: tiny decoder over the frozen tiny core (1 process)",
              "fsdp2": "core, strategy=fsdp2 over 2 gloo processes (sharded DCP checkpoints)"}
    lines = [
        "## Reliability (`benchmarks/faults.py`)",
        "",
        f"Run on {platform.machine()} with {os.cpu_count()} CPUs, seed {args.seed}"
        f"{', quick mode' if args.quick else ''}. Each kill is a SIGKILL to the run's whole "
        "process group; checkpoint streams were written at 3 MB/s in the "
        "child (benchmarks/faults_child.py) so kills can land inside them; a run is "
        f"{STEPS} steps with a checkpoint every {EVERY}. 'identical' compares weights, optimizer "
        "state, global step, lr schedule and RNG streams of the final last.ckpt, bit for bit, "
        "with an uninterrupted run of the same command.",
    ]
    lines += ["", *FINDINGS]
    for name, trials in results.items():
        lines += ["", f"### Kill -9: {titles[name]}", "", *kill_table(name, trials)]
    lines += ["", f"### Bad inputs ({len(rows)} classes, through the real command lines)", "",
              "'nothing lost' is checked, not assumed: the inputs' bytes, the previous "
              "checkpoint's bytes, or the good documents in the output, as the row says.", "",
              *input_table(rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
