"""The align start-up's core fingerprint from an export's record (dualmind.checkpoint.core_verify):
the export records the fingerprint and one digest per tensor; a load checks every tensor's name,
dtype and shape and re-hashes a seeded sample. A changed tensor in the sample, a changed dtype or
shape anywhere, and a truncated file are caught; a changed tensor outside the sample is not (the
documented trade-off), and core.verify_tensors=all catches it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import test_train_align
from dualmind.checkpoint.core_verify import sample_names, verified_fingerprint
from dualmind.checkpoint.export import export_checkpoint, load_component_state, read_export_config
from dualmind.checkpoint.frozen_core import CoreCheckpointError, core_fingerprint, load_frozen_core
from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.fingerprint import weights_fingerprint
from test_parallel_support import spawn_ranks

core_checkpoint = test_train_align.core_checkpoint  # the tiny stage-core checkpoint fixture
CHANGED = "layers.1.feed_forward.w2.weight"


@pytest.fixture(scope="module")
def export(core_checkpoint, tmp_path_factory) -> Path:
    return export_checkpoint(core_checkpoint, tmp_path_factory.mktemp("export") / "core")


def _tampered(export: Path, tmp_path: Path, change) -> Path:
    """A copy of the export whose core.safetensors was rewritten by ``change(state)`` after the
    export (config.json, with its record, left as it was)."""
    out = tmp_path / "tampered"
    shutil.copytree(export, out)
    state = load_component_state(export, "core")
    aliases = read_export_config(export)["components"]["core"]["aliases"]
    for alias in aliases:
        state.pop(alias)
    change(state)
    save_file(state, str(out / "core.safetensors"), metadata={"aliases": json.dumps(aliases)})
    return out


def _bump(state: dict) -> None:
    state[CHANGED] = state[CHANGED].clone()
    state[CHANGED].view(-1)[3] += 1e-3  # one value of one tensor


def _loaded(path: Path) -> HyperCore:
    model = read_export_config(path)["model"]
    core = HyperCore(CoreConfig.from_dict(model))
    load_frozen_core(core, path)
    return core


def _seeds(names, k: int, inside: bool) -> int:
    """A seed whose sample of k holds (or misses) CHANGED."""
    return next(s for s in range(1000) if (CHANGED in sample_names(names, k, s)) == inside)


def test_export_records_the_fingerprint_and_a_digest_per_tensor(export, core_checkpoint):
    entry = read_export_config(export)["components"]["core"]
    saved = {k[len("core."):]: v for k, v in torch.load(core_checkpoint, weights_only=True)
             ["state_dict"].items()}
    assert entry["fingerprint"] == weights_fingerprint(saved)  # the value align checkpoints record
    assert set(entry["tensor_digests"]) == set(saved)
    assert entry["tensor_digests"][CHANGED]["shape"] == list(saved[CHANGED].shape)


def test_an_untouched_export_verifies_from_a_sample(export):
    core = _loaded(export)
    fingerprint, how = verified_fingerprint(core, export, 3, seed=0)
    assert fingerprint == core_fingerprint(core)
    assert "3 re-hashed" in how and f"all {len(core.state_dict())} tensors checked" in how


def test_a_changed_tensor_in_the_sample_is_caught(export, tmp_path):
    bad = _tampered(export, tmp_path, _bump)
    core = _loaded(bad)
    names = core.state_dict()
    with pytest.raises(CoreCheckpointError, match=f"tensor {CHANGED} hashes to .* re-export"):
        verified_fingerprint(core, bad, 3, seed=_seeds(names, 3, inside=True))
    with pytest.raises(CoreCheckpointError, match=CHANGED):
        verified_fingerprint(core, bad, "all")


def test_a_changed_tensor_outside_the_sample_passes_one_start_up(export, tmp_path):
    """The trade-off, pinned so that docs and code cannot drift apart: k of N tensors are
    re-hashed per start-up, and each start-up draws a new sample (a new seed)."""
    bad = _tampered(export, tmp_path, _bump)
    core = _loaded(bad)
    names = core.state_dict()
    fingerprint, _ = verified_fingerprint(core, bad, 3, seed=_seeds(names, 3, inside=False))
    assert fingerprint == read_export_config(bad)["components"]["core"]["fingerprint"]
    assert fingerprint != core_fingerprint(core)  # the record, not what was loaded
    # Over start-ups (seeds) it is caught k/N of the time: 3/21 here (binomial sd 0.0025).
    caught = sum(CHANGED in sample_names(names, 3, s) for s in range(20000)) / 20000
    assert abs(caught - 3 / len(names)) < 0.01


def test_a_changed_dtype_or_shape_or_size_is_caught_without_any_sample(export, tmp_path):
    bf16 = _tampered(export, tmp_path / "a",
                     lambda s: s.__setitem__(CHANGED, s[CHANGED].to(torch.bfloat16)))
    with pytest.raises(CoreCheckpointError, match=f"{CHANGED} is BF16 .* recorded torch.float32"):
        verified_fingerprint(_loaded(bf16), bf16, 0)
    truncated = tmp_path / "b"
    shutil.copytree(export, truncated)
    with open(truncated / "core.safetensors", "ab") as f:
        f.write(b"\0" * 8)
    with pytest.raises(CoreCheckpointError, match="a truncated or appended copy"):
        verified_fingerprint(_loaded(export), truncated, 0)


def test_a_ckpt_without_a_record_is_hashed_whole(core_checkpoint):
    core = HyperCore(CoreConfig.from_dict(torch.load(core_checkpoint, weights_only=True)
                                          ["dualmind"]["model"]))
    load_frozen_core(core, core_checkpoint)
    fingerprint, how = verified_fingerprint(core, core_checkpoint, 3)
    assert fingerprint == core_fingerprint(core) and how.startswith("hashed all")
    with pytest.raises(CoreCheckpointError, match="core.verify_tensors=-1"):
        verified_fingerprint(core, core_checkpoint, -1)


def _rank_verify(rank: int, path: str, seed: int, out: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    from dualmind.distributed.parallel import materialize_frozen_core, parallelize_core

    model = read_export_config(path)["model"]
    with torch.device("meta"):
        core = HyperCore(CoreConfig.from_dict(model))
    parallelize_core(core, init_device_mesh("cpu", (2,)), forward_only=True)
    materialize_frozen_core(core, "cpu", path)
    try:
        result = verified_fingerprint(core, path, 3, seed=seed)[0]
    except CoreCheckpointError as err:
        result = f"refused: {err}"
    Path(out, f"rank{rank}.txt").write_text(result)


@pytest.mark.multiprocess
def test_two_sharded_ranks_verify_their_gathered_sample(export, tmp_path):
    names = _loaded(export).state_dict()
    seed = _seeds(names, 3, inside=True)
    bad = _tampered(export, tmp_path, _bump)
    for path, out in ((export, tmp_path / "good"), (bad, tmp_path / "bad")):
        out.mkdir()
        spawn_ranks(_rank_verify, 2, str(path), seed, str(out), timeout_s=240)
    good = [(tmp_path / "good" / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert good == [read_export_config(export)["components"]["core"]["fingerprint"]] * 2
    refused = [(tmp_path / "bad" / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert all(r.startswith("refused") and CHANGED in r for r in refused), refused


def _rank_align(rank: int, overrides: list[str], out: str) -> None:
    from dualmind.config.schema import compose
    from dualmind.train.loop import run

    class Record(__import__("lightning").Callback):
        def on_fit_start(self, trainer, module):
            Path(out, f"fingerprint{rank}.txt").write_text(module.core_fingerprint)

    run(compose(overrides), callbacks=[Record()])


@pytest.mark.multiprocess
def test_fsdp2_align_from_an_export_records_the_verified_fingerprint(export, tmp_path, capfd):
    """Through training (configure_model): 2 fsdp2 ranks align a decoder to the exported core;
    the fingerprint they record is the export's, established from a sample, and said so."""
    from test_fsdp_align import COMMON, SHARDED
    from test_train_align import align_overrides

    overrides = align_overrides(tmp_path / "run", export, *COMMON, *SHARDED, "data.batch_size=2",
                                "trainer.max_steps=2", "core.verify_tensors=4")
    spawn_ranks(_rank_align, 2, overrides, str(tmp_path), timeout_s=300)
    want = read_export_config(export)["components"]["core"]["fingerprint"]
    assert [(tmp_path / f"fingerprint{r}.txt").read_text() for r in (0, 1)] == [want, want]
    said = capfd.readouterr().out
    assert f"core fingerprint {want}: the export's record" in said and "4 re-hashed" in said


def test_a_bad_verify_tensors_is_refused_by_name_when_the_config_is_read(tmp_path):
    from dualmind.config.schema import ConfigError, compose

    assert compose(["recipe=decoder_align"]).core.verify_tensors == 8
    with pytest.raises(ConfigError, match=r"core.verify_tensors='some'"):
        compose(["recipe=decoder_align", "core.verify_tensors=some"])
