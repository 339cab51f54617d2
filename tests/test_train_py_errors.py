"""What a user sees from train.py for a wrong path or key: one line on stderr, `error: ...`
naming the key, and exit code 2 — never a traceback (test_run_paths.py and test_overrides.py
cover each kind in-process; these run train.py itself, as a user would, without
HYDRA_FULL_ERROR)."""

from __future__ import annotations

import os
import subprocess
import sys

from dualmind.config.schema import repo_root
from dualmind.train.errors import one_line


def train_py(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, str(repo_root() / "train.py"), *overrides, f"runs_dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**env, "PYTHONWARNINGS": "ignore"},
    )


def test_a_missing_core_checkpoint_is_one_line_and_exit_2(tmp_path):
    corpus = tmp_path / "corpus"  # only its shape is checked before the checkpoint
    corpus.mkdir()
    (corpus / "manifest.json").write_text("{}")
    out = train_py(tmp_path, "recipe=decoder_align", f"data.dir={corpus}",
                   "core.checkpoint=/no/such/last.ckpt")
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr == (
        "error: core.checkpoint=/no/such/last.ckpt: no such file or folder (core.checkpoint "
        "takes a .ckpt file, a sharded checkpoint folder or a `dualmind export` folder)\n"
    )
    assert not (tmp_path / "decoder_align" / "checkpoints").exists()  # nothing was started


def test_a_bare_unknown_override_is_one_line_and_exit_2(tmp_path):
    out = train_py(tmp_path, "recipe=core_mini", "optim.lrr=1")
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr == (
        "error: override optim.lrr=1: unknown config key 'optim.lrr'; did you mean optim.lr?\n"
    )


def test_an_unknown_recipe_is_one_line_and_exit_2(tmp_path):
    out = train_py(tmp_path, "recipe=core_mimi")
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.startswith("error: recipe=core_mimi: no recipe of that name; did you mean "
                                 "core_mini? (recipe options: ")
    assert out.stderr.count("\n") == 1


def test_one_line_joins_a_wrapped_library_message():
    err = ValueError("ckpt_path=x: cannot read checkpoint (Weights only load failed.\n\n"
                     "  Check the documentation.)")
    assert one_line(err) == (
        "ckpt_path=x: cannot read checkpoint (Weights only load failed. Check the documentation.)"
    )
