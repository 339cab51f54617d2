"""benchmarks/gpu_check.sh and gpu_check.py on a machine without a GPU: their argument handling,
the one-line refusal (exit 2, nothing installed, RESULTS.md untouched), and the parts that need
no GPU (peak lookup, MFU, the SDPA parity and a training step on the CPU, the report)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402 - benchmarks/ is not a package


def _sh(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60, env={**os.environ, **env})


def test_help_lists_the_options_and_exits_0():
    proc = _sh("--help")
    assert proc.returncode == 0, proc.stderr
    for word in ("--no-write", "--budget-s", "--steps", "GPU_CHECK_NO_INSTALL", "RESULTS.md"):
        assert word in proc.stdout


def test_without_a_gpu_it_fails_in_one_line_before_installing_anything():
    results = (REPO / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this holds on a GPU machine too.
    proc = _sh(CUDA_VISIBLE_DEVICES="", VENV="/nonexistent/venv")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA GPU: ")
    assert "CUDA_VISIBLE_DEVICES" in lines[0]
    assert (REPO / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8") == results


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_python_part_refuses_in_one_line_too(capsys):
    assert gpu_check.main(["--no-write"]) == gpu_check.NO_GPU_EXIT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpu_check: no CUDA GPU: ")


@pytest.mark.parametrize("args,message", [
    (["--steps", "0"], "--steps: must be > 0"),
    (["--batch", "x"], "--batch: expected a whole number"),
    (["--warmup", "-1"], "--warmup: must be >= 0"),
])
def test_bad_arguments_are_refused_by_name(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        gpu_check.parse_args(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_peak_and_mfu_come_from_the_planners_gpu_table():
    peak, source = gpu_check.peak_bf16_flops("NVIDIA H100 80GB HBM3")
    assert peak == 989e12 and "H100" in source
    assert gpu_check.peak_bf16_flops("NVIDIA H200")[0] == 989e12
    assert gpu_check.peak_bf16_flops("Tesla T4")[0] is None
    assert gpu_check.mfu(1000.0, 6e9, 1e13) == pytest.approx(0.6)
    assert gpu_check.mfu(1000.0, 6e9, None) is None


def test_the_checks_that_can_run_on_a_cpu_and_the_report():
    """SDPA against the fp32 reference on packed rows, flash/xformers reported as skipped here,
    a few training steps of a tiny core through the same code, and the GPU section rendered."""
    attention = gpu_check.check_attention("cpu", seq_len=128)
    assert attention["rows"]["sdpa"]["ok"]
    assert attention["rows"]["sdpa"]["max_abs_out"] <= gpu_check.ATOL["out"]
    assert all("skipped" in attention["rows"][b] for b in ("flash", "xformers"))
    from dualmind.model.config import CoreConfig

    tiny = CoreConfig(vocab_size=97, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
                      max_seq_len=64)
    step = gpu_check._train_steps(tiny, batch=2, seq_len=64, steps=3, warmup=1, device="cpu")
    assert step["tokens_per_s"] > 0 and step["last_loss"] < step["first_loss"]
    env = {"when": "2026-12-03 00:00 UTC", "gpu": "test", "torch": torch.__version__,
           "cuda": None, "flash_attn": "not installed", "xformers": "not installed",
           "seconds": 1.0}
    throughput = {"shape": "tiny", "params": tiny.num_params(), "seq_len": 64,
                  "flops_per_token": tiny.flops_per_token(64), "peak": None,
                  "peak_source": "none", "rows": {"sdpa": {**step, "mfu": None},
                                                  "flash": {"skipped": "not installed"}}}
    text = gpu_check.render(env, {"attention": attention, "throughput": throughput,
                                  "failed": {"fsdp2": "TimeoutExpired: 120 s"},
                                  "skipped_for_time": ["cross_attention"]})
    assert text.startswith("## GPU")
    assert "| sdpa | fp32 reference |" in text and "| flash | - |" in text
    assert f"| sdpa | 2 | {step['median_s']:.3f} |" in text
    assert "check fsdp2 FAILED: TimeoutExpired" in text
    assert "check cross_attention skipped" in text
