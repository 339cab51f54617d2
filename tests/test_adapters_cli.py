"""The adapters end to end: train.py's loop writes the adapter folder, `dualmind adapt merge`
turns it into an export folder that loads like any other, and a stage-unfreeze checkpoint
exports with `dualmind export`."""

from __future__ import annotations

import json

import pytest
import torch

from dualmind.adapters.lora import load_adapter
from dualmind.checkpoint.export import export_checkpoint, load_core
from dualmind.cli import main
from dualmind.train.loop import train
from test_adapters_support import adapt_overrides, tiny_core, write_core_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    ckpt = write_core_checkpoint(root / "core.ckpt")
    result = train(adapt_overrides("bridge_lora", root / "run", ckpt, "trainer.max_steps=3",
                                   "trainer.val_check_interval=3"))
    return root, ckpt, result


def test_train_writes_the_adapter_and_reports_the_task_loss(lora_run):
    root, ckpt, result = lora_run
    assert result.steps == 3 and result.val and result.val[-1]["loss"] > 0
    meta = json.loads((root / "run" / "adapter" / "dualmind.json").read_text())
    base = torch.load(ckpt, weights_only=True)["dualmind"]
    assert meta["lexicon_fingerprint"] == base["lexicon_fingerprint"]
    assert meta["global_step"] == 3 and meta["core_checkpoint"] == str(ckpt)
    saved = torch.load(result.last_checkpoint, weights_only=True)["dualmind"]
    assert saved["stage"] == "lora" and saved["base_core_fingerprint"] == meta["core_fingerprint"]


def test_adapt_merge_writes_an_export_that_loads_like_any_other(lora_run, tmp_path, capsys):
    root, ckpt, _ = lora_run
    adapter = root / "run" / "adapter"
    assert main(["adapt", "info", str(adapter)]) == 0
    assert "core fingerprint" in capsys.readouterr().out
    out = tmp_path / "merged"
    assert main(["adapt", "merge", str(adapter), "--core", str(ckpt), "--out", str(out)]) == 0
    merged, config = load_core(out)
    assert config["stage"] == "lora-merged"
    ids = torch.randint(4, 1024, (1, 20))
    with torch.no_grad():
        adapted = load_adapter(tiny_core(seed=0), adapter)
        assert (merged(ids).logits - adapted(ids).logits).abs().max().item() <= 1e-5


def test_adapt_merge_refuses_another_core(lora_run, tmp_path, capsys):
    root, _, _ = lora_run
    other = write_core_checkpoint(tmp_path / "other.ckpt", seed=1)
    code = main(["adapt", "merge", str(root / "run" / "adapter"), "--core", str(other),
                 "--out", str(tmp_path / "merged")])
    assert code == 2
    assert "adapter was trained on core" in capsys.readouterr().err
    assert not (tmp_path / "merged").exists()


def test_unfreeze_checkpoint_exports_with_dualmind_export(tmp_path):
    ckpt = write_core_checkpoint(tmp_path / "core.ckpt")
    result = train(adapt_overrides("core_unfreeze", tmp_path / "run", ckpt,
                                   "trainer.max_steps=2", "unfreeze.top_k=1"))
    out = export_checkpoint(result.last_checkpoint, tmp_path / "export")
    core, config = load_core(out)
    assert config["stage"] == "unfreeze"
    base = tiny_core(seed=0).state_dict()
    moved = {k for k, v in core.state_dict().items() if not torch.equal(v, base[k])}
    assert moved and all(k.startswith("layers.1.") for k in moved)


def test_lora_run_resumes_from_its_checkpoint(tmp_path):
    """ckpt_path=last rebuilds the LoRA layers first, then restores them and the step."""
    ckpt = write_core_checkpoint(tmp_path / "core.ckpt")
    first = train(adapt_overrides("bridge_lora", tmp_path / "run", ckpt, "trainer.max_steps=2",
                                  "trainer.checkpoint_every_n_steps=2"))
    saved = torch.load(first.last_checkpoint, weights_only=True)["state_dict"]
    resumed = train(adapt_overrides("bridge_lora", tmp_path / "run", ckpt, "trainer.max_steps=4",
                                    "trainer.checkpoint_every_n_steps=2", "ckpt_path=last"))
    assert first.steps == 2 and resumed.steps == 4 and len(resumed.train) == 2
    meta = json.loads((tmp_path / "run" / "adapter" / "dualmind.json").read_text())
    assert meta["global_step"] == 4
    final = torch.load(resumed.last_checkpoint, weights_only=True)["state_dict"]
    for k, v in saved.items():  # the base weights went through save/restore untouched
        if "lora_" not in k:
            assert torch.equal(final[k], v), k
