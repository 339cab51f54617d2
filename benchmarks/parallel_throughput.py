"""Step time of the core with FSDP2 over 2 processes, DDP over 2 processes, and one process (CPU).

    .venv/bin/python benchmarks/parallel_throughput.py                  # mini + 125m, + dry runs
    .venv/bin/python benchmarks/parallel_throughput.py --shapes mini --steps 3 --no-write

One step = forward + backward + AdamW update of the whole core on random symbols, fp32, the same
*global* batch in every mode: one process with `batch` rows and 2 threads, or 2 processes (gloo,
rendezvous through a file store) with `batch / 2` rows and 1 thread each, so every mode has the
machine's 2 cores. FSDP2 is dualmind.distributed.parallel.parallelize_core (fully_shard per block +
root, the training code path, no activation checkpointing so only sharding is measured); DDP is
torch's DistributedDataParallel. A step ends when every rank has finished it (barrier). Step time =
the median of the timed steps (after warm-up), ratios against one process; the modes of one shape
run alternately in `rounds` rounds, and each mode's best round is kept (on a shared machine the
least disturbed one). Peak RSS is the largest rank's max RSS (incl. ~0.4 GiB of Python/torch).

Also writes the dry runs of core_70b (256 GPUs), core_200b (1024) and decoder_align_70b (64)
(`python train.py recipe=... trainer.dry_run=true trainer.num_nodes=...`) to the `dry_run` section.

Results go to benchmarks/RESULTS.md sections `parallel_throughput` and `dry_run`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_md import write_section  # benchmarks/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Per shape: global batch x seq_len, alternated rounds, timed steps after warm-up steps (125m:
# fewer, a step takes ~5 s on 2 idle cores and several times that on busy ones).
SHAPES = {"mini": {"batch": 8, "seq_len": 512, "rounds": 2, "steps": 4, "warmup": 1},
          "125m": {"batch": 2, "seq_len": 512, "rounds": 1, "steps": 3, "warmup": 1}}
MODES = ("single", "ddp", "fsdp2")
# Each large recipe at its own size (nodes of 8 GPUs): the launch its comments describe.
DRY_RUNS = [("core_70b", 32), ("core_200b", 128), ("decoder_align_70b", 8)]


def _rank(rank: int, world: int, mode: str, args: dict, store: str, out: str) -> None:
    import resource

    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch import nn

    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    torch.set_num_threads(args["threads"])
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                                world_size=world)
    cfg = CoreConfig.from_name(args["shape"])
    torch.manual_seed(0)
    if mode == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh

        from dualmind.distributed.parallel import materialize_core, parallelize_core

        with torch.device("meta"):
            core = HyperCore(cfg)
        parallelize_core(core, init_device_mesh("cpu", (world,)), param_dtype=None,
                         reduce_dtype=None)
        materialize_core(core, "cpu")
        model: nn.Module = core
    else:
        core = HyperCore(cfg)
        model = core
        if mode == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(core)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows = args["batch"] // world
    ids = torch.randint(0, cfg.vocab_size, (rows, args["seq_len"] + 1),
                        generator=torch.Generator().manual_seed(rank))
    times = []
    for _ in range(args["warmup"] + args["steps"]):
        start = time.perf_counter()
        logits = model(ids[:, :-1]).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if world > 1:
            dist.barrier()
        times.append(time.perf_counter() - start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out, f"rank{rank}.json").write_text(json.dumps(
        {"times": times[args["warmup"]:], "rss_mib": rss,
         "params": sum(p.numel() for p in core.parameters())}))
    if world > 1:
        dist.destroy_process_group()


def worker(ns: argparse.Namespace) -> None:
    """One measurement: `world` processes of one mode; prints one JSON line."""
    import torch.multiprocessing as mp

    args = json.loads(ns.worker)
    world = 1 if args["mode"] == "single" else 2
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp, "store"))
        if world == 1:
            _rank(0, 1, "single", args, store, tmp)
        else:
            mp.spawn(_rank, args=(world, args["mode"], args, store, tmp), nprocs=world,
                     join=True)
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(world)]
    steps = [max(step) for step in zip(*(r["times"] for r in ranks), strict=True)]
    print(json.dumps({"median_s": statistics.median(steps), "min_s": min(steps),
                      "rss_mib": max(r["rss_mib"] for r in ranks),
                      "params": ranks[0]["params"]}))


def measure(shape: str, mode: str, steps: int, warmup: int) -> dict:
    s = SHAPES[shape]
    args = {"shape": shape, "mode": mode, "batch": s["batch"], "seq_len": s["seq_len"],
            "steps": steps, "warmup": warmup, "threads": 2 if mode == "single" else 1}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(args)],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{shape}/{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dry_runs() -> str:
    lines = []
    for recipe, nodes in DRY_RUNS:
        cmd = ["train.py", f"recipe={recipe}", "trainer.dry_run=true",
               f"trainer.num_nodes={nodes}"]
        proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, cwd=REPO)
        lines += [f"$ python {' '.join(cmd)}   # {nodes * 8} GPUs, exit {proc.returncode}",
                  proc.stdout.strip()]
        if proc.returncode:
            lines.append(proc.stderr.strip())
        lines.append("")
    return "\n".join(lines)


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--steps", type=int, default=None, help="override the per-shape steps")
    p.add_argument("--warmup", type=int, default=None, help="override the per-shape warm-up")
    p.add_argument("--rounds", type=int, default=None, help="override the per-shape rounds")
    p.add_argument("--no-dry-run", action="store_true")
    p.add_argument("--no-write", action="store_true")
    ns = p.parse_args()
    if ns.worker:
        return worker(ns)

    import torch

    load_before = _load()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    for shape in ns.shapes:
        best: dict[str, dict] = {}
        for r in range(ns.rounds or SHAPES[shape]["rounds"]):
            for mode in MODES:
                m = measure(shape, mode, ns.steps or SHAPES[shape]["steps"],
                            SHAPES[shape]["warmup"] if ns.warmup is None else ns.warmup)
                print(f"{shape} {mode} round {r}: median {m['median_s']:.3f} s/step, "
                      f"min {m['min_s']:.3f}, peak {m['rss_mib']:.0f} MiB (load {_load()})",
                      flush=True)
                if mode not in best or m["median_s"] < best[mode]["median_s"]:
                    best[mode] = m
        rows.append((shape, best))
    load_after = _load()

    s = SHAPES
    table = ["| shape | params | global batch x seq | one process s/step | DDP x2 s/step | "
             "FSDP2 x2 s/step | **DDP / one** | **FSDP2 / one** | **FSDP2 / DDP** | "
             "peak MiB one / DDP / FSDP2 (largest rank) |", "|---" * 10 + "|"]
    for shape, b in rows:
        one, ddp, fsdp = (b[m]["median_s"] for m in MODES)
        table.append(
            f"| {shape} | {b['single']['params'] / 1e6:.1f}M | {s[shape]['batch']}x"
            f"{s[shape]['seq_len']} | {one:.3f} | {ddp:.3f} | {fsdp:.3f} | **{ddp / one:.2f}** | "
            f"**{fsdp / one:.2f}** | **{fsdp / ddp:.2f}** | "
            + " / ".join(f"{b[m]['rss_mib']:.0f}" for m in MODES) + " |")
    text = "\n".join([
        "## Parallel step time on CPU: FSDP2 x2 vs DDP x2 vs one process",
        "",
        f"`benchmarks/parallel_throughput.py`, {started}, torch {torch.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average (1/5/15 min) {load_before} "
        f"before, {load_after} after (shared with other jobs: figures are noisy). fp32; one step "
        "= fwd + bwd + AdamW of the whole core on random symbols; the same global batch in "
        "every mode (one process: all rows, 2 threads; 2 gloo processes: half the rows and 1 "
        "thread each). Step time = median of the timed steps after warm-up ("
        + ", ".join(f"{sh}: {ns.steps or s[sh]['steps']} after "
                    f"{s[sh]['warmup'] if ns.warmup is None else ns.warmup}, "
                    f"{ns.rounds or s[sh]['rounds']} round(s)" for sh, _ in rows)
        + "), best round per mode; ratios > 1 mean slower than one process.",
        "",
        *table,
        "",
        "What this shows on CPU: the cost of the collectives (gloo all-reduce for DDP; "
        "all-gather + reduce-scatter per block for FSDP2) against compute, on two cores. It is "
        "not a GPU figure: no GPU was available, and NCCL over NVLink/InfiniBand overlaps "
        "communication with compute in a way gloo on one host does not. FSDP2's gain is "
        "memory: each rank holds half the parameters, gradients and AdamW state. On a shared "
        "machine the one-process figure (one process, 2 threads) suffers most from other jobs; "
        "FSDP2 / DDP (2 processes x 1 thread each) compares like with like.",
    ])
    print(text)
    if not ns.no_dry_run:
        dry = dry_runs()
        print(dry)
    if ns.no_write:
        return None
    write_section("parallel_throughput", text)
    if not ns.no_dry_run:
        write_section("dry_run", "\n".join([
            "## Dry runs of the large recipes: core_70b at 256, core_200b at 1024, "
            "decoder_align_70b at 64 GPUs",
            "",
            f"`python train.py recipe=... trainer.dry_run=true trainer.num_nodes=N` (8 GPUs per "
            f"node, each recipe at its own size), {started}: built on meta, sharded over a fake "
            "process group of the world size (the core with `parallelize_core`; stage align: the "
            "frozen core and the decoder with `parallelize_align`), nothing allocated; memory from "
            "the planner's models (`dualmind.plan.memory`, `dualmind.plan.align_memory`). Written "
            "by `benchmarks/parallel_throughput.py`.",
            "",
            "```",
            dry.strip(),
            "```",
        ]))
    return None


if __name__ == "__main__":
    main()
