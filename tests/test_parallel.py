"""dualmind.distributed.parallel's activation checkpointing changes memory, never results: a block
under full or selective recomputation gives the gradients of the plain block, and keeps its
names."""

from __future__ import annotations

import pytest
import torch

from dualmind.distributed.parallel import ParallelConfigError, apply_activation_checkpointing
from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore


def _grads(policy: str) -> tuple[list[str], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    cfg = CoreConfig(vocab_size=61, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48,
                     max_seq_len=64)
    model = HyperCore(cfg)
    for block in model.layers:
        apply_activation_checkpointing(block, policy)
    ids = torch.randint(0, 61, (2, 16), generator=torch.Generator().manual_seed(1))
    model(ids).logits.square().mean().backward()
    return list(model.state_dict()), {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("policy", ["full", "selective"])
def test_checkpointed_blocks_give_the_plain_gradients(policy):
    names, want = _grads("none")
    got_names, got = _grads(policy)
    assert got_names == names  # checkpoints stay loadable whatever the policy
    for name, grad in want.items():
        torch.testing.assert_close(got[name], grad, atol=1e-6, rtol=1e-5)


def test_unknown_policy_names_the_key():
    with pytest.raises(ParallelConfigError, match="strategy.activation_checkpointing='some'"):
        apply_activation_checkpointing(torch.nn.Linear(2, 2), "some")
