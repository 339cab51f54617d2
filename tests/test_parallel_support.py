"""Shared pieces of the multi-process tests (no tests here): spawn ranks that meet through a file
store, so no TCP port is picked and raced for, and Lightning then finds the group ready."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch.multiprocessing as mp

# Two gloo ranks on the CPU running FSDP2 in fp32 throughout (one thread each), so that a
# comparison measures the sharding, not bf16 rounding or thread contention.
FSDP2_TWO_CPU_RANKS = ["strategy=fsdp2", "trainer.devices=2", "trainer.accelerator=cpu",
                       "trainer.precision=32-true", "trainer.num_threads=1",
                       "strategy.param_dtype=float32", "strategy.reduce_dtype=float32"]


def join_group(rank: int, world: int, store: str) -> None:
    """Initialise the gloo process group from a file store, and give Lightning the environment
    of a torchrun-style launch; Lightning sees the group initialised and reuses it."""
    import torch.distributed as dist

    # MASTER_PORT only satisfies Lightning's environment checks: nothing binds it, because the
    # group below already exists when Lightning would open one.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="1", WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank), NODE_RANK="0")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)


def leave_rank() -> None:
    """End a spawned rank whose work succeeded and whose group is destroyed, without Python's
    interpreter finalisation.

    Finalising a process that has run gloo and DTensors can abort it ("terminate called without
    an active exception", SIGABRT) after everything it had to do is done and checked. CI saw it
    twice; here test_core_parallel's rank died that way in 2 of 56 runs even with the group
    destroyed, and in 0 of 60 when the rank left through os._exit. What a test checks is
    decided before this point (results are files, failures are exceptions mp.spawn reports), so
    leaving early hides nothing it asserts."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _rank_entry(rank: int, world: int, store: str, fn: Callable, args: tuple) -> None:
    import torch.distributed as dist

    join_group(rank, world, store)
    try:
        fn(rank, *args)
        dist.barrier()  # no rank tears gloo down while another is still in a collective
    finally:
        # The group is ours (Lightning only registers its atexit teardown for groups it opens).
        if dist.is_initialized():
            dist.destroy_process_group()
    leave_rank()


def spawn_ranks(fn: Callable, world: int, *args, timeout_s: float | None = None) -> None:
    """Run ``fn(rank, *args)`` in ``world`` fresh processes joined in one gloo group; raises if any
    rank fails. ``fn`` must be importable (a module-level function). With ``timeout_s``, ranks
    still running after that many seconds are killed and TimeoutError is raised (a hang in a
    collective then fails the test instead of blocking the suite)."""
    # The store's folder goes when the ranks do (left behind, every run of the suite kept ~10).
    with tempfile.TemporaryDirectory(prefix="dualmind-store-") as folder:
        store = Path(folder) / "store"
        ctx = mp.spawn(_rank_entry, args=(world, str(store), fn, args), nprocs=world, join=False)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not ctx.join(timeout=5):
            if deadline is not None and time.monotonic() > deadline:
                for p in ctx.processes:
                    p.kill()
                raise TimeoutError(
                    f"{world} ranks of {fn.__name__} still running after {timeout_s} s")
