"""`dualmind export` of a sharded (DCP) checkpoint: a 2-rank fsdp2 run's checkpoint folder is
consolidated tensor by tensor into safetensors identical to the model the run trained (gathered
in the run), never holding more than one whole tensor; the same folder and its export then fill
a 2-rank sharded core rank-locally (dualmind.checkpoint.sharded_load, as stage=align does)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning as L
import pytest
import torch

from dualmind.config.schema import compose
from dualmind.train.loop import run
from test_export_support import watch_resident_tensors
from test_parallel_support import FSDP2_TWO_CPU_RANKS, spawn_ranks
from test_train_support import tiny_corpus, tiny_overrides

# A 2-rank fsdp2 run (~25 s on 2 idle cores, ~60 s on busy ones) feeds both tests.
pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

SHARDED = ["trainer.max_steps=2", "trainer.checkpoint_every_n_steps=2",
           "trainer.val_check_interval=1000", "data.batch_size=2", *FSDP2_TWO_CPU_RANKS]


class SaveFullWeights(L.Callback):
    """The trained model gathered from both ranks (a collective), written by rank 0."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_end(self, trainer, module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True,
                                                                     cpu_offload=True))
        if trainer.global_rank == 0:
            torch.save(full, self.path)


def _train_rank(rank: int, overrides: list[str], out: str) -> None:
    run(compose(overrides), callbacks=[SaveFullWeights(Path(out, "full.pt"))])


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory) -> Path:
    tiny_corpus()
    run_dir = tmp_path_factory.mktemp("fsdp2-run")
    spawn_ranks(_train_rank, 2, tiny_overrides(run_dir, *SHARDED), str(run_dir))
    return run_dir


def test_export_of_sharded_checkpoint_is_the_trained_model_one_tensor_at_a_time(
        sharded_run, tmp_path, monkeypatch):
    from dualmind.checkpoint.export import load_core
    from dualmind.checkpoint.export_cli import run as export_cli

    ckpt = sharded_run / "checkpoints" / "last.ckpt"
    assert ckpt.is_dir() and len(list(ckpt.glob("*.distcp"))) == 2
    full = torch.load(sharded_run / "full.pt", weights_only=True)

    peak = watch_resident_tensors(monkeypatch)  # whole tensors the exporter holds at once
    out = tmp_path / "export"
    assert export_cli(argparse.Namespace(checkpoint=str(sharded_run), out=str(out),
                                         lexicon=None)) == 0
    assert peak[0] == 1, f"{peak[0]} whole tensors were resident at once"

    core, config = load_core(out)
    assert config["global_step"] == 2 and config["stage"] == "core"
    core_full = {k[len("core."):]: v for k, v in full.items() if k.startswith("core.")}
    got = core.state_dict()
    assert got.keys() == core_full.keys()
    for k, v in core_full.items():
        assert torch.equal(got[k], v), k
    assert config["components"]["core"]["aliases"] == {"output.weight": "tok_embeddings.weight"}
    # The file is plain safetensors: the reference reader checks offsets and sizes.
    from safetensors.torch import load_file

    assert load_file(str(out / "core.safetensors")).keys() == core_full.keys() - {"output.weight"}


def _load_rank(rank: int, sources: list[str], reference: str, out: str) -> None:
    """Shard a meta core over the 2 ranks and fill it from each source; compare in full."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh

    from dualmind.distributed.parallel import materialize_frozen_core, parallelize_core
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    full = torch.load(reference, weights_only=True)
    want = {k[len("core."):]: v for k, v in full.items() if k.startswith("core.")}
    cfg = CoreConfig.from_dict(dict(compose(tiny_overrides(Path(out), *SHARDED)).model))
    results = {}
    for source in sources:
        with torch.device("meta"):
            core = HyperCore(cfg)
        parallelize_core(core, init_device_mesh("cpu", (2,)), param_dtype=None, reduce_dtype=None)
        materialize_frozen_core(core, "cpu", source)
        local = {n: p.to_local().numel() for n, p in core.named_parameters()}
        got = get_model_state_dict(core, options=StateDictOptions(full_state_dict=True))
        results[Path(source).name] = {
            "equal": got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want),
            "frozen": not any(p.requires_grad for p in core.parameters()),
            "sharded": sum(local.values()) < sum(v.numel() for v in want.values()),
        }
    Path(out, f"load-rank{rank}.json").write_text(json.dumps(results))


def test_sharded_core_fills_rank_locally_from_dcp_and_export(sharded_run, tmp_path):
    from dualmind.checkpoint.export import export_checkpoint

    ckpt = sharded_run / "checkpoints" / "last.ckpt"
    export = export_checkpoint(ckpt, tmp_path / "export")
    spawn_ranks(_load_rank, 2, [str(ckpt), str(export)], str(sharded_run / "full.pt"),
                str(tmp_path))
    for rank in (0, 1):
        results = json.loads((tmp_path / f"load-rank{rank}.json").read_text())
        assert results == {name: {"equal": True, "frozen": True, "sharded": True}
                           for name in ("last.ckpt", "export")}, (rank, results)
