import torch

from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.fingerprint import weights_fingerprint


def _core(seed: int) -> HyperCore:
    torch.manual_seed(seed)
    cfg = CoreConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64)
    return HyperCore(cfg)


def test_same_weights_same_fingerprint_regardless_of_order():
    state = _core(0).state_dict()
    reordered = dict(reversed(list(state.items())))
    assert weights_fingerprint(state) == weights_fingerprint(reordered)
    assert len(weights_fingerprint(state)) == 16


def test_one_changed_value_changes_the_fingerprint():
    core = _core(0)
    before = weights_fingerprint(core.state_dict())
    with torch.no_grad():
        next(core.parameters()).view(-1)[0] += 1e-3
    assert weights_fingerprint(core.state_dict()) != before
    assert weights_fingerprint(_core(1).state_dict()) != before


def test_bf16_weights_fingerprint():
    state = {k: v.to(torch.bfloat16) for k, v in _core(0).state_dict().items()}
    assert weights_fingerprint(state) != weights_fingerprint(_core(0).state_dict())
