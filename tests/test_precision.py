"""trainer.precision=auto: bf16-mixed where bf16 is native, 32-true elsewhere (issue 12: on an
AVX2-only CPU a bf16 demo trained one step in ten minutes). The probe is monkeypatched, so every
branch runs on whatever CPU runs the tests."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from dualmind.config import precision
from dualmind.config.precision import resolve
from dualmind.config.schema import compose, list_recipes
from dualmind.train.loop import run
from test_train_support import tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")

LARGE = {"core_70b", "core_200b", "decoder_align_70b"}  # fp32 master weights on GPUs: 32-true


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Set what the CPU probe answers: cpu_bf16(True) / cpu_bf16(False)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return lambda native: monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)


def test_auto_follows_the_cpu(cpu_bf16):
    cpu_bf16(False)
    choice = resolve("auto")
    assert (choice.value, choice.warning) == ("32-true", None)
    assert choice.line() == "precision: 32-true (auto: this CPU has no native bf16)"
    cpu_bf16(True)
    assert resolve("auto").value == "bf16-mixed"
    assert resolve("auto").line() == "precision: bf16-mixed (auto: this CPU has native bf16)"


def test_an_explicit_setting_is_obeyed_with_a_warning_for_emulated_bf16(cpu_bf16):
    cpu_bf16(False)
    for asked in ("bf16-mixed", "bf16-true"):
        choice = resolve(asked)
        assert choice.value == asked
        assert "without native bf16" in choice.warning and "auto" in choice.warning
    assert resolve("32-true").warning is None and resolve("32-true").value == "32-true"
    cpu_bf16(True)
    assert resolve("bf16-mixed").warning is None


def test_auto_on_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # the GPU decides
    assert resolve("auto").value == "bf16-mixed"
    assert resolve("auto", accelerator="cpu").value == "32-true"  # a CPU run on a GPU machine
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # pre-Ampere
    assert resolve("auto").value == "32-true"
    assert resolve("bf16-mixed").value == "16-mixed"  # kept from before: fp16 autocast instead


def test_every_cpu_sized_recipe_defaults_to_auto_and_the_large_ones_keep_32_true():
    for recipe in list_recipes():
        expected = "32-true" if recipe in LARGE else "auto"
        assert compose([f"recipe={recipe}"]).trainer.precision == expected, recipe
    assert compose([]).trainer.precision == "auto"


def test_the_planner_and_the_dry_run_read_auto_as_bf16_mixed_on_their_gpus(cpu_bf16):
    from dualmind.distributed.dry_run_world import PRECISION_POLICY, policy_of
    from dualmind.plan.request import PlanRequest
    from dualmind.plan.resolve import resolve_run

    cpu_bf16(False)  # what this machine has does not matter to a plan for GPUs
    cfg = compose(["recipe=core_1b"])
    assert cfg.trainer.precision == "auto"
    assert policy_of(cfg) == PRECISION_POLICY["auto"] == "fp32-master"
    _, _, settings = resolve_run(PlanRequest(recipe="core_1b"))
    assert settings["trainer_precision"] == "bf16-mixed" and settings["precision"] == "fp32-master"


class Peek(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.precision = trainer.precision


def _run_with(tmp_path, setting: str) -> str:
    peek = Peek()
    run(compose(tiny_overrides(tmp_path, "trainer.max_steps=1", "trainer.val_check_interval=100",
                               f"trainer.precision={setting}")), callbacks=[peek])
    return peek.precision


def test_a_run_uses_and_prints_the_resolved_precision(tmp_path, cpu_bf16, capsys):
    cpu_bf16(False)
    assert _run_with(tmp_path / "a", "auto") == "32-true"
    out = capsys.readouterr().out
    assert out.count("precision: 32-true (auto: this CPU has no native bf16)\n") == 1
    cpu_bf16(True)
    assert _run_with(tmp_path / "b", "auto") == "bf16-mixed"
    assert "precision: bf16-mixed (auto: this CPU has native bf16)" in capsys.readouterr().out


def test_a_run_asked_for_bf16_on_a_cpu_without_it_is_warned(tmp_path, cpu_bf16, capsys):
    cpu_bf16(False)
    with pytest.warns(UserWarning, match="bf16-mixed on a CPU without native bf16"):
        assert _run_with(tmp_path, "bf16-mixed") == "bf16-mixed"
    assert "precision: bf16-mixed (trainer.precision=bf16-mixed)" in capsys.readouterr().out


def test_the_environment_can_say_what_the_cpu_has(monkeypatch):
    """DUALMIND_NATIVE_BF16 overrides the probe either way (to time a no-bf16 machine on one
    that has it); anything else leaves the probe's answer."""
    from dualmind.config.precision import cpu_has_native_bf16

    monkeypatch.setenv("DUALMIND_NATIVE_BF16", "0")
    assert cpu_has_native_bf16() is False
    monkeypatch.setenv("DUALMIND_NATIVE_BF16", "1")
    assert cpu_has_native_bf16() is True
    monkeypatch.setenv("DUALMIND_NATIVE_BF16", "maybe")
    import torch

    assert cpu_has_native_bf16() == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
