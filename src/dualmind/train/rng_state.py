"""The random stream of training steps, saved per rank in checkpoints so a resume continues it.

Everything random inside a training step (dropout, noise, sampling: torch, numpy's global
generator, Python's ``random``, and the current CUDA device's generator) draws from one stream
per data-parallel rank, seeded from ``(seed, rank)``. "Rank" here and below is the data-parallel
rank (dualmind.train.datamodule.data_parallel_position; the global rank without tensor
parallelism): the ranks of one tensor-parallel group share a batch and a stream, because the
step's randomness shapes activations the group holds replicated. The stream is switched in around
each step and out again, so the draws of everything else (validation and DataLoader iterators
seed themselves from torch's global generator, and a resumed run builds them at other moments
than an uninterrupted one) never shift it. Checkpoints store every rank's stream (``meta["rng"]``,
one entry per global rank, each naming its data-parallel rank); a resume with the same number of
data-parallel ranks continues each stream exactly, whatever the tensor-parallel size. Otherwise
the streams cannot be mapped rank to rank: each rank starts a fresh stream seeded from
``(seed, rank, step)``.

The data position needs no state of its own: batch j of data-parallel rank r is a pure function
of ``(data.seed, j * world + r)`` and the loader restarts at ``global_step * accumulate``
(dualmind.train.datamodule).
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

STATE_VERSION = 1


def stream_seed(seed: int, rank: int, step: int = 0) -> int:
    """One 63-bit seed per (seed, rank, step), well spread (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(2, np.uint64)[0] >> 1)


def _numpy_state(legacy: tuple) -> tuple:
    # Plain ints and lists, so checkpoints stay loadable with torch.load(weights_only=True).
    name, keys, pos, has_gauss, gauss = legacy
    return (name, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss))


def _cuda_on() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def capture() -> dict:
    """The global generators' states now."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state(np.random.get_state()),
        "python": random.getstate(),
    }
    if _cuda_on():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(_as_python_state(state["python"]))
    if state.get("cuda") is not None and _cuda_on():
        torch.cuda.set_rng_state(state["cuda"])


def _as_python_state(state) -> tuple:
    version, internal, gauss = state  # a checkpoint may hand back lists for tuples
    return (version, tuple(internal), gauss)


def fresh(seed: int) -> dict:
    """Generator states seeded with ``seed``, made without touching the global generators."""
    state = {
        "torch": torch.Generator().manual_seed(seed).get_state(),
        "numpy": _numpy_state(np.random.RandomState(seed % 2**32).get_state()),
        "python": random.Random(seed).getstate(),
        "cuda_seed": seed,  # the CUDA generator is seeded on first use (needs the device)
    }
    return state


class TrainingRNG:
    """One data-parallel rank's training-step stream: ``with rng.active(): ...`` runs a step on
    it. ``rank`` is the data-parallel rank, shared by the ranks of one tensor-parallel group."""

    def __init__(self, seed: int, rank: int):
        self.seed, self.rank = seed, rank
        self.state = fresh(stream_seed(seed, rank))

    @contextlib.contextmanager
    def active(self):
        outside = capture()
        restore(self.state)
        if "cuda_seed" in self.state and _cuda_on():
            torch.cuda.manual_seed(self.state["cuda_seed"])
        try:
            yield
        finally:
            self.state = capture()
            restore(outside)

    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, "rank": self.rank, **self.state}

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"training RNG state version {state.get('version')!r}, this "
                             f"dualmind reads {STATE_VERSION}")
        self.state = {k: v for k, v in state.items() if k not in ("version", "rank")}

    def reseed(self, step: int) -> None:
        """A fresh stream for ``step`` (a resume whose saved streams do not map to this rank)."""
        self.state = fresh(stream_seed(self.seed, self.rank, step))


def gather_states(rng: TrainingRNG, world_size: int) -> list[dict]:
    """Every global rank's stream, in global rank order, each with its data-parallel ``rank``
    (a collective: call it on all ranks; tensor-parallel peers contribute identical copies)."""
    state = rng.state_dict()
    if world_size <= 1 or not torch.distributed.is_initialized():
        return [state]
    states: list = [None] * world_size
    torch.distributed.all_gather_object(states, state)
    return states


def resume(rng: TrainingRNG, states: list[dict] | None, step: int, rank: int,
           data_parallel_size: int) -> None:
    """Give this data-parallel rank its saved stream. Saved by another number of data-parallel
    ranks (or without streams), start a fresh one for ``step``, and say so."""
    saved = {int(s["rank"]): s for s in states or []}  # tensor-parallel peers: one stream each
    if sorted(saved) == list(range(data_parallel_size)):
        rng.load_state_dict(saved[rank])
        return
    from lightning.pytorch.utilities import rank_zero_warn

    rng.reseed(step)
    rank_zero_warn(
        f"the checkpoint holds the training RNG of {len(saved)} data-parallel ranks, this run "
        f"has {data_parallel_size}: each rank starts a fresh random stream at step {step} (the "
        "data order still continues exactly; dropout/noise draws do not)"
    )
