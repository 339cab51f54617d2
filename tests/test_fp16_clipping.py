"""fp16 (16-mixed: autocast + a loss scaler) clips gradients the way bf16/fp32 runs do: by the norm
of the true (unscaled) gradients, per device mesh under tensor parallelism
(dualmind.train.grad_clip).

Before, the fp16 branch handed clipping to Lightning's AMP plugin, which refuses optimizers that
unscale inside their step (fused AdamW, the default on GPUs) and takes one norm over all
gradients (torch.nn.utils.clip_grad_norm_), which fails on tensor-parallel runs whose gradients
live on two meshes; and strategy=fsdp2 refused trainer.precision=16-mixed outright (Lightning's
ModelParallelStrategy check), so fp16 with tensor parallelism could not start.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from dualmind.config.schema import compose
from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.train.loop import run
from dualmind.train.module import DualMindModule
from test_parallel_support import FSDP2_TWO_CPU_RANKS, spawn_ranks
from test_train_fsdp2 import StartFrom, _reference_weights
from test_train_support import tiny_corpus, tiny_overrides

SCALE = 2.0**10


def _scaled_backward(core, scaler):
    ids = torch.randint(0, 61, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.float16):
        logits = core(ids).logits
    loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1),
                                             ids.roll(-1, 1).flatten())
    scaler.scale(loss).backward()


def test_fp16_clipping_unscales_a_fused_optimizers_gradients_once():
    """A fused optimizer (it unscales inside its step): the clipping hook unscales, takes the true
    norm, clips, and the step then applies the clipped true gradients (not unscaled twice).
    SGD, whose update is lr x gradient, shows a second unscaling (Adam would hide it)."""
    torch.manual_seed(0)
    core = HyperCore(CoreConfig(vocab_size=61, dim=32, n_layers=2, n_heads=4, n_kv_heads=2,
                                ffn_dim=64, max_seq_len=32))
    params = list(core.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1, fused=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=SCALE)
    _scaled_backward(core, scaler)
    true = [p.grad.detach() / SCALE for p in params]
    true_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in true]))
    max_norm = float(true_norm) / 4  # clipping bites
    module = SimpleNamespace(trainer=SimpleNamespace(precision_plugin=SimpleNamespace(
        scaler=scaler)), _grad_norm=None)
    before = [p.detach().clone() for p in params]
    DualMindModule.configure_gradient_clipping(module, optimizer, max_norm, "norm")
    torch.testing.assert_close(module._grad_norm, true_norm, rtol=1e-5, atol=0)
    scaler.step(optimizer)
    scaler.update()
    factor = max_norm / (float(true_norm) + 1e-6)  # torch's clip coefficient
    for p, b, g in zip(params, before, true, strict=True):
        torch.testing.assert_close(p.detach(), b - 0.1 * factor * g, rtol=1e-5, atol=1e-7)


class GradNorms(L.Callback):
    def __init__(self):
        self.norms: list[float] = []

    def on_train_batch_end(self, trainer, module, *args):
        self.norms.append(float(module._grad_norm))


def _rank_main(rank: int, overrides: list[str], out: str) -> None:
    norms = GradNorms()
    result = run(compose(overrides), callbacks=[StartFrom(_reference_weights(overrides)), norms])
    Path(out, f"rank{rank}.json").write_text(json.dumps(
        {"loss": [r["loss"] for r in result.train], "norm": norms.norms}))


@pytest.mark.multiprocess
def test_fp16_with_tensor_parallelism_trains_and_clips_per_mesh(tmp_path):
    """2 gloo ranks, one tensor-parallel group, trainer.precision=16-mixed, clipping at 0.5:
    it starts, every step's norm is finite and the same on both ranks, and it is the norm a
    32-true run of the same layout takes (fp16 autocast rounding: 2e-2 relative)."""
    tiny_corpus()
    runs = {}
    for precision in ("16-mixed", "32-true"):
        out = tmp_path / precision
        out.mkdir()
        overrides = tiny_overrides(
            out, *FSDP2_TWO_CPU_RANKS, "strategy.tensor_parallel_size=2",
            f"trainer.precision={precision}", "trainer.max_steps=3",
            "trainer.val_check_interval=1000", "trainer.checkpoint_every_n_steps=0",
            "trainer.gradient_clip_val=0.5", "optim.warmup_steps=1")
        spawn_ranks(_rank_main, 2, overrides, str(out), timeout_s=300)
        ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
        assert ranks[0] == ranks[1], precision
        runs[precision] = ranks[0]
    fp16, fp32 = runs["16-mixed"], runs["32-true"]
    assert len(fp16["norm"]) == 3 and all(torch.isfinite(torch.tensor(fp16["norm"])))
    assert fp16["norm"][0] > 0.5  # the clip bites
    torch.testing.assert_close(fp16["norm"][0], fp32["norm"][0], rtol=2e-2, atol=0)
    torch.testing.assert_close(fp16["loss"][0], fp32["loss"][0], rtol=1e-2, atol=0)
