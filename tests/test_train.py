"""Training stage=core end to end on a tiny real corpus: fast-dev-run of every mini recipe,
exact resume, lexicon fingerprint checks, bad input, NaN stop, and the train.py entry point."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import lightning as L
import pytest
import torch

from dualmind.config.schema import compose, list_recipes, repo_root
from dualmind.train.loop import TrainingError, run, train
from dualmind.train.module import NonFiniteLossError
from test_train_support import tiny_corpus, tiny_overrides

MINI_RECIPES = [r for r in list_recipes() if r.endswith("_mini")]


@pytest.mark.parametrize("recipe", MINI_RECIPES)
def test_fast_dev_run_every_mini_recipe(recipe, tmp_path):
    # The recipe's own model and data shapes; only the lexicon-sized vocab is from the tiny corpus
    # (model.vocab_size of the recipe is larger, so nothing needs overriding).
    result = train(
        [
            f"recipe={recipe}",
            f"data.dir={tiny_corpus()}",
            f"run_dir={tmp_path}",
            "trainer.fast_dev_run=true",
            "trainer.enable_progress_bar=false",
        ]
    )
    assert result.steps == 1
    assert len(result.train) == 1 and math.isfinite(result.train[0]["loss"])
    assert 0 < result.train[0]["bpb"] < 20
    assert len(result.val) == 1 and math.isfinite(result.val[0]["bpb"])


def test_loss_falls_and_metrics_are_logged(tmp_path):
    result = train(
        tiny_overrides(
            tmp_path,
            "trainer.max_steps=30",
            "trainer.val_check_interval=15",
            "optim.warmup_steps=5",
            "optim.lr=3e-3",
            "trainer.loggers=[csv]",
        )
    )
    first = sum(x["loss"] for x in result.train[:3]) / 3
    last = sum(x["loss"] for x in result.train[-3:]) / 3
    assert last < first - 0.5, (first, last)
    assert [v["step"] for v in result.val] == [15, 30]
    # bits per byte is NLL / (ln 2 * text bytes): consistent with bits per symbol and bytes/unit
    metrics = (next((tmp_path / "csv").glob("version_*")) / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    for key in (
        "train/loss",
        "train/bits_per_symbol",
        "train/bpb",
        "train/symbols_per_s",
        "train/bytes_per_s",
        "train/lr",
        "train/flops_per_step",
        "train/flops_total",
        "val/loss",
        "val/bpb",
        "val/bits_per_symbol",
    ):
        assert key in header, key
    row = dict(zip(header, metrics[1].split(","), strict=True))
    assert float(row["train/bits_per_symbol"]) == pytest.approx(
        float(row["train/loss"]) / math.log(2), rel=1e-5
    )
    assert float(row["train/flops_per_step"]) > 6 * 64 * 64 * 4  # 6 N per symbol, 256 symbols
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


class Crash(L.Callback):
    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated crash")


def test_resume_is_exact(tmp_path):
    base = [
        "trainer.max_steps=10",
        "trainer.checkpoint_every_n_steps=4",
        "trainer.val_check_interval=100",
    ]
    whole = train(tiny_overrides(tmp_path / "whole", *base))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose(tiny_overrides(tmp_path / "cut", *base)), callbacks=[Crash(at_step=6)])
    # the crash came after step 6; the newest checkpoint is the one of step 4
    cut = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)
    done = torch.load(whole.last_checkpoint, weights_only=True)
    assert (cut["global_step"], done["global_step"]) == (4, 10)
    # It counts the FLOPs of the 4 steps it holds (packed batches: equal steps); it used to be
    # written before its own step was added, and a resumed run then ended one step short.
    per_step = done["dualmind"]["flops_total"] / 10
    assert cut["dualmind"]["flops_total"] == pytest.approx(4 * per_step, rel=1e-9)
    resumed = train(tiny_overrides(tmp_path / "cut", *base, "ckpt_path=last"))
    ended = torch.load(resumed.last_checkpoint, weights_only=True)["dualmind"]["flops_total"]
    assert ended == pytest.approx(10 * per_step, rel=1e-9)
    assert [x["step"] for x in resumed.train] == list(range(5, 11))
    whole_tail = [x["loss"] for x in whole.train[4:]]
    assert [x["loss"] for x in resumed.train] == pytest.approx(whole_tail, abs=1e-6)
    assert resumed.steps == 10


def test_checkpoint_with_other_lexicon_is_refused(tmp_path):
    first = train(tiny_overrides(tmp_path, "trainer.max_steps=2", "trainer.val_check_interval=100"))
    ckpt = torch.load(first.last_checkpoint, weights_only=True)
    assert ckpt["dualmind"]["lexicon_fingerprint"] == first.lexicon_fingerprint
    ckpt["dualmind"]["lexicon_fingerprint"] = "0" * 64
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    with pytest.raises(TrainingError, match="lexicon 0000.*" + first.lexicon_fingerprint[:12]):
        train(tiny_overrides(tmp_path, "trainer.max_steps=4", f"ckpt_path={other}"))
    # ckpt_path=last reads the run's own last.ckpt: make that one foreign too
    torch.save(ckpt, first.last_checkpoint)
    with pytest.raises(TrainingError, match="lexicon"):
        train(tiny_overrides(tmp_path, "trainer.max_steps=4", "ckpt_path=last"))


def test_bad_input_names_key_or_path(tmp_path):
    with pytest.raises(TrainingError, match="data.dir=.*nowhere"):
        train(tiny_overrides(tmp_path, f"data.dir={tmp_path / 'nowhere'}"))
    with pytest.raises(TrainingError, match="data.dir is not set"):
        train(["recipe=core_mini", f"run_dir={tmp_path}"])
    with pytest.raises(TrainingError, match="model.vocab_size=512 is smaller"):
        train(tiny_overrides(tmp_path, "model.vocab_size=512"))
    with pytest.raises(TrainingError, match="lexicon"):  # shards built with another lexicon
        train(tiny_overrides(tmp_path, "data.lexicon=" + "ab" * 32))
    with pytest.raises(Exception, match="data.seq_len=300.*max_seq_len"):
        train(tiny_overrides(tmp_path, "data.seq_len=300"))
    with pytest.raises(TrainingError, match="ckpt_path=.*missing.ckpt"):
        train(tiny_overrides(tmp_path, f"ckpt_path={tmp_path / 'missing.ckpt'}"))
    with pytest.raises(TrainingError, match="tensor_parallel_size=3 does not divide"):
        train(tiny_overrides(tmp_path, "strategy=fsdp2", "strategy.tensor_parallel_size=3"))


class PoisonWeights(L.Callback):
    """Make the loss NaN from a given step on, as a diverging run would."""

    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, *args):
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                pl_module.core.norm.weight.fill_(float("nan"))


def test_the_final_step_is_saved_between_checkpoint_intervals(tmp_path):
    result = train(tiny_overrides(tmp_path, "trainer.max_steps=7",
                                  "trainer.checkpoint_every_n_steps=5",
                                  "trainer.val_check_interval=100"))
    assert result.steps == 7
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 7  # not 5: the two steps after the interval are kept too


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path):
    cfg = compose(
        tiny_overrides(
            tmp_path,
            "trainer.max_steps=10",
            "trainer.checkpoint_every_n_steps=3",
            "trainer.val_check_interval=100",
        )
    )
    with pytest.raises(NonFiniteLossError,
                       match=r"at step 6 .*after 5 good ones.*last.ckpt") as err:
        run(cfg, callbacks=[PoisonWeights(at_step=5)])
    assert "nan" in str(err.value).lower()
    ckpt_dir = tmp_path / "checkpoints"
    last = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3  # the last good one, untouched by the failing step
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values())
    assert not list(ckpt_dir.glob("*.tmp*"))


def _python_env():
    return {**os.environ, "HYDRA_FULL_ERROR": "1", "PYTHONWARNINGS": "ignore"}


def test_train_py_runs_and_reports_bad_input(tmp_path):
    args = [
        sys.executable,
        str(repo_root() / "train.py"),
        *tiny_overrides(tmp_path / "run"),
        "trainer.max_steps=3",
        "trainer.val_check_interval=3",
    ]
    out = subprocess.run(
        args, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_python_env()
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trained 3 steps" in out.stdout and "val bits/byte" in out.stdout
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "run" / "train.log").is_file()  # Hydra's log of the run
    bad = subprocess.run(
        [sys.executable, str(repo_root() / "train.py"), "recipe=core_mini", "data.dir=/no/such"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=_python_env(),
    )
    assert bad.returncode == 2 and "data.dir=/no/such" in bad.stderr


@pytest.mark.slow
def test_train_py_multirun_sweeps(tmp_path):
    common = [
        f"data.dir={tiny_corpus()}",
        f"runs_dir={tmp_path}",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.enable_progress_bar=false",
        "data.seq_len=64",
        "data.batch_size=2",
    ]
    def multirun(*overrides: str) -> None:
        out = subprocess.run(
            [sys.executable, str(repo_root() / "train.py"), "-m", *overrides, *common],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=_python_env(),
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.count("trained 2 steps") == 2

    multirun("recipe=core_mini", "optim.lr=1e-3,3e-4")
    multirun("recipe=sweep_core_mini")
    jobs = sorted((tmp_path / "multirun" / "sweep_core_mini").glob("*/*/config.yaml"))
    assert len(jobs) == 2


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    from dualmind.train.loop import atomic_checkpoint_io

    io = atomic_checkpoint_io()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    real_save = torch.save

    def torn_save(obj, f, *args, **kwargs):  # writes half a file, then the "disk" fails
        f.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(TrainingError, match=rf"cannot write checkpoint {path}: disk full; "
                                            "last.ckpt keeps its previous content; make room"):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=True)["step"] == 1  # the previous checkpoint, intact
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary left behind


def test_a_full_disk_mid_save_stops_the_run_with_one_error_and_it_resumes(tmp_path, monkeypatch):
    """ENOSPC in the middle of the step-8 last.ckpt write (the step-8 file was written): the run
    stops with a TrainingError (train.py: one line, exit 2), not an OSError traceback; last.ckpt
    is step 4's, whole; the resume takes the newest whole checkpoint and goes on."""
    import errno

    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        saves.append(getattr(f, "name", f))
        if len(saves) == 4:  # step4 file, last (4), step8 file, last (8): this one
            f.write(b"PK half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    base = tiny_overrides(tmp_path, "trainer.checkpoint_every_n_steps=4",
                          "trainer.val_check_interval=100")
    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(TrainingError, match="last.ckpt: No space left on device; last.ckpt "
                                            "keeps its previous content"):
        train([*base, "trainer.max_steps=12"])
    monkeypatch.setattr(torch, "save", real_save)
    ckpts = tmp_path / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 4
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step0000008.ckpt"]
    resumed = train([*base, "trainer.max_steps=12", "ckpt_path=last"])
    assert [r["step"] for r in resumed.train] == [9, 10, 11, 12]


def test_resume_with_other_data_settings_says_so(tmp_path):
    import warnings

    base = ["trainer.checkpoint_every_n_steps=2", "trainer.val_check_interval=100"]
    train(tiny_overrides(tmp_path, "trainer.max_steps=2", *base))
    with warnings.catch_warnings(record=True) as same:
        warnings.simplefilter("always")
        train(tiny_overrides(tmp_path, "trainer.max_steps=3", *base, "ckpt_path=last"))
    assert not [w for w in same if "other data settings" in str(w.message)]
    with pytest.warns(UserWarning, match=r"other data settings \(samples per step.*4x1x1 -> 2x1x1"):
        train(tiny_overrides(tmp_path, "trainer.max_steps=4", *base, "ckpt_path=last",
                             "data.batch_size=2"))


def test_the_resume_check_compares_samples_per_step_not_each_factor():
    from dualmind.checkpoint.meta import changed_data_settings

    def cfg(batch, accumulate=1, seed=0):
        return {"data": {"batch_size": batch, "seed": seed, "seq_len": 64},
                "trainer": {"accumulate_grad_batches": accumulate}}

    # 2 ranks x 2 rows resume as 1 rank x 4 rows: the same samples, in the same order
    assert changed_data_settings(cfg(2), cfg(4), saved_dp=2, dp=1) == []
    assert changed_data_settings(cfg(2, accumulate=2), cfg(4), saved_dp=1, dp=1) == []
    # 2 ranks -> 1 at the same rows per rank would replay half of what was read
    assert changed_data_settings(cfg(2), cfg(2), saved_dp=2, dp=1) == [
        "samples per step (data.batch_size x data-parallel ranks x "
        "trainer.accumulate_grad_batches): 2x2x1 -> 2x1x1"]
    assert changed_data_settings(cfg(2), cfg(2, seed=1)) == ["data.seed: 0 -> 1"]
    assert changed_data_settings(None, cfg(2)) == []  # nothing recorded: nothing compared


def test_a_resume_from_a_rank0_flops_count_says_so():
    import warnings

    from dualmind.checkpoint.meta import warn_on_resume

    def warned(meta):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            warn_on_resume({"dualmind": meta}, {}, dp=2)
        return [str(w.message) for w in got if "flops_total" in str(w.message)]

    two_ranks = [{"rank": 0}, {"rank": 1}]
    assert warned({"rng": two_ranks}) and "rank 0's batches only" in warned({"rng": two_ranks})[0]
    assert not warned({"rng": two_ranks, "flops_scope": "global"})
    assert not warned({"rng": [{"rank": 0}]})  # one rank: rank 0's batches were all of them
