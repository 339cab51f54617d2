"""Shared pieces of the multi-process tests (no tests here): spawn ranks that meet through a file
store, so no TCP port is picked and raced for, and Lightning then finds the group ready."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch.multiprocessing as mp


def join_group(rank: int, world: int, store: str) -> None:
    """Initialise the gloo process group from a file store, and give Lightning the environment
    of a torchrun-style launch; Lightning sees the group initialised and reuses it."""
    import torch.distributed as dist

    # MASTER_PORT only satisfies Lightning's environment checks: nothing binds it, because the
    # group below already exists when Lightning would open one.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="1", WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank), NODE_RANK="0")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)


def _rank_entry(rank: int, world: int, store: str, fn: Callable, args: tuple) -> None:
    join_group(rank, world, store)
    fn(rank, *args)


def spawn_ranks(fn: Callable, world: int, *args) -> None:
    """Run ``fn(rank, *args)`` in ``world`` fresh processes joined in one gloo group; raises if any
    rank fails. ``fn`` must be importable (a module-level function)."""
    store = Path(tempfile.mkdtemp(prefix="dualmind-store-")) / "store"
    mp.spawn(_rank_entry, args=(world, str(store), fn, args), nprocs=world, join=True)
