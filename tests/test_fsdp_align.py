"""stage=align under strategy=fsdp2 trains what one process trains: two gloo ranks, the frozen core
and the decoder both sharded (fully_shard per block and at the root), the core built on meta and
filled rank-locally from its checkpoint, against one process with strategy=single, from the same
decoder weights, on the same global batches (rank r's batch j is global batch 2j + r).

Both runs normalise by the global number of text tokens (rows differ in length), so the losses and
updates must agree to float rounding, and the core must leave the run bit for bit as it came in.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

import test_train_align
from dualmind.config.schema import compose
from dualmind.model.fingerprint import weights_fingerprint
from dualmind.train.loop import run
from test_parallel_support import spawn_ranks
from test_train_align import align_overrides
from test_train_support import tiny_corpus

pytestmark = pytest.mark.multiprocess
core_checkpoint = test_train_align.core_checkpoint  # the tiny stage-core checkpoint fixture

STEPS = 10
COMMON = [
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=1000",
    "trainer.checkpoint_every_n_steps=0",
    "trainer.precision=32-true",  # fp32: the comparison measures sharding, not bf16 rounding
    "trainer.num_threads=1",
    "optim.warmup_steps=2",
    "data.seq_len=64",
]
SHARDED = ["strategy=fsdp2", "trainer.devices=2", "trainer.accelerator=cpu",
           "strategy.activation_checkpointing=full", "strategy.param_dtype=float32",
           "strategy.reduce_dtype=float32"]


def saved_core(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    return {k[len("core."):]: v for k, v in state.items() if k.startswith("core.")}


def decoder_weights(overrides: list[str]) -> dict[str, torch.Tensor]:
    from dualmind.model.config import CoreConfig
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    cfg = compose(overrides)
    torch.manual_seed(11)
    return LanguageDecoder(DecoderConfig.for_core(
        dict(cfg.decoder), CoreConfig.from_dict(dict(cfg.model)))).state_dict()


def full_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True,
                                                                 cpu_offload=True))


class StartAndCheck(L.Callback):
    """Same decoder weights in both runs; records whether the core really came from the
    checkpoint (at the start) and is unchanged and gradient-free (at the end)."""

    def __init__(self, decoder: dict, core: dict, out: Path):
        self.decoder, self.core, self.out = decoder, core, out
        self.checks: dict[str, bool] = {}

    def _core_equal(self, module) -> bool:
        got = full_state(module.core) if module.sharded else module.core.state_dict()
        return got.keys() == self.core.keys() and all(
            torch.equal(got[k].cpu(), self.core[k]) for k in self.core)

    def on_fit_start(self, trainer, module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        self.checks["core_loaded"] = self._core_equal(module)
        # The sharded core's fingerprint (gathered tensor by tensor) is the unsharded one's.
        self.checks["core_fingerprint"] = module.core_fingerprint == weights_fingerprint(self.core)
        self.checks["core_sharded"] = module.sharded == all(
            type(p).__name__ == "DTensor" for p in module.core.parameters())
        if module.sharded:
            set_model_state_dict(module.decoder, self.decoder,
                                 options=StateDictOptions(full_state_dict=True))
        else:
            module.decoder.load_state_dict(self.decoder)

    def on_train_batch_end(self, trainer, module, *args):
        # After each step the sharded core holds shards only: no block, the last included,
        # stays gathered for a backward the frozen core never runs.
        resharded = not module.sharded or all(type(p).__name__ == "DTensor"
                                              for p in module.core.parameters())
        self.checks["core_resharded"] = self.checks.get("core_resharded", True) and resharded

    def on_fit_end(self, trainer, module):
        self.checks["core_unchanged"] = self._core_equal(module)
        self.checks["core_frozen"] = all(not p.requires_grad and p.grad is None
                                         for p in module.core.parameters())
        self.checks["core_eval"] = not module.core.training
        if trainer.global_rank == 0:
            self.out.write_text(json.dumps(self.checks))


def _rank_main(rank: int, overrides: list[str], ckpt: str, out: str) -> None:
    check = StartAndCheck(decoder_weights(overrides), saved_core(Path(ckpt)),
                          Path(out, "checks.json"))
    result = run(compose(overrides), callbacks=[check])
    Path(out, f"rank{rank}.json").write_text(json.dumps([r["loss"] for r in result.train]))


def test_fsdp2_align_two_processes_match_one_process(tmp_path, core_checkpoint):
    core_ckpt = core_checkpoint
    tiny_corpus()
    single = align_overrides(tmp_path / "single", core_ckpt, *COMMON, "data.batch_size=4")
    check = StartAndCheck(decoder_weights(single), saved_core(core_ckpt), tmp_path / "c1.json")
    want = [r["loss"] for r in run(compose(single), callbacks=[check]).train]
    assert json.loads((tmp_path / "c1.json").read_text()) == dict.fromkeys(check.checks, True)

    out = tmp_path / "fsdp2"
    out.mkdir()
    sharded = align_overrides(out, core_ckpt, *COMMON, "data.batch_size=2", *SHARDED)
    spawn_ranks(_rank_main, 2, sharded, str(core_ckpt), str(out))

    checks = json.loads((out / "checks.json").read_text())
    assert checks == dict.fromkeys(checks, True) and len(checks) == 7, checks
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank logs the loss of the whole global batch
    got = ranks[0]
    assert len(got) == len(want) == STEPS
    assert got[-1] < got[0]  # it trains
    worst = max(abs(g - w) for g, w in zip(got, want, strict=True))
    print(f"fsdp2 align vs one process: max |loss difference| over {STEPS} steps = {worst:.2e}")
    assert worst <= 1e-5, (got, want)
