"""Fixtures shared by several test modules, and the property tests' settings."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

# The property tests draw the same examples every run (derandomize), so `make test` and CI pass
# or fail together: drawing new ones each run once failed a fresh clone on an input no earlier
# run had met (a scene cut inside a character, now fixed and kept as an @example). To explore
# new inputs: HYPOTHESIS_PROFILE=explore make test (then keep what it finds as an @example).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared, loaded CPU every OpenMP
    region of a small op can stall for milliseconds: one thread keeps these tests fast.

    Not autouse: a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``,
    so tests that want the machine's threads (and the distributed ones, which set their own) keep
    them.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
