"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
import torch


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
