"""Shared pieces of the exact-resume tests (no tests here): give the training step randomness of
every kind a run must restore on resume, and log it per step."""

from __future__ import annotations


def make_core_step_noisy(monkeypatch, log: dict) -> None:
    """Patch DualMindModule._core_step so that each training step corrupts a fifth of its input
    symbols with torch draws and also draws once from numpy and once from Python's random; the
    core has no dropout, so without this an RNG restore would go untested.
    log[global_step] = (batch hash, symbols flipped, numpy draw, Python draw)."""
    import hashlib
    import random

    import numpy as np
    import torch

    from dualmind.train.module import DualMindModule

    plain = DualMindModule._core_step

    def noisy(self, batch):
        ids = batch["ids"]
        if self.training:
            flip = torch.rand(ids.shape) < 0.2
            ids = torch.where(flip, torch.randint(0, self.core_config.vocab_size, ids.shape), ids)
            batch_hash = hashlib.sha256(batch["ids"].numpy().tobytes()).hexdigest()[:16]
            log[self.global_step] = (batch_hash, int(flip.sum()), float(np.random.rand()),
                                     random.random())
        return plain(self, {**batch, "ids": ids})

    monkeypatch.setattr(DualMindModule, "_core_step", noisy)
