"""Run one training job from a composed config: `run(cfg)` (train.py, the demo, tests).

from dualmind.train.loop import train
result = train(["recipe=core_mini", "data.dir=runs/demo/corpus"])
print(result.summary())
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dualmind.config.schema import compose, validate


class TrainingError(RuntimeError):
    """A run that cannot start or continue; the message says why and names the key/path/step."""


class CheckpointWriteError(TrainingError):
    """A checkpoint could not be written (disk full...); the previous one is intact."""


@dataclass
class TrainResult:
    run_dir: Path
    steps: int  # the run's step count at the end (global_step), resumed steps included
    wall_s: float
    train: list[dict] = field(default_factory=list)  # {"step", "loss", "bpb", "seconds"} per batch
    val: list[dict] = field(default_factory=list)  # {"step", "loss", "bpb"} per validation
    last_checkpoint: Path | None = None
    lexicon_fingerprint: str | None = None
    global_rank: int = 0
    start_step: int = 0  # where this invocation started: the resumed checkpoint's step, or 0
    stopped_by: str | None = None  # SIGTERM / SIGINT: stopped early, resumable (stop_signal)

    @property
    def steps_this_run(self) -> int:
        return self.steps - self.start_step

    @property
    def first_loss(self) -> float:
        return self.train[0]["loss"] if self.train else math.nan

    @property
    def last_loss(self) -> float:
        return self.train[-1]["loss"] if self.train else math.nan

    @property
    def val_bpb(self) -> float:
        return self.val[-1]["bpb"] if self.val else math.nan

    def summary(self) -> str:
        span = f"trained {self.steps_this_run} steps in {self.wall_s:.0f} s"
        if self.start_step:  # a resumed run: this invocation's steps, then the run's
            span += f", resumed from step {self.start_step}: {self.steps} steps in total"
        if self.stopped_by:
            span += f", stopped by {self.stopped_by}"
        lines = [f"{span} -> {self.run_dir}"]
        if self.train:
            lines.append(
                f"train loss {self.first_loss:.3f} -> {self.last_loss:.3f} nats/symbol "
                f"(bpb {self.train[0]['bpb']:.3f} -> {self.train[-1]['bpb']:.3f})"
            )
        if len(self.train) > 2:
            picks = sorted({round(i * (len(self.train) - 1) / 7) for i in range(8)})
            lines.append(
                "loss curve: "
                + "  ".join(f"{self.train[i]['step']}:{self.train[i]['loss']:.2f}" for i in picks)
            )
        for v in self.val:
            lines.append(
                f"  step {v['step']:>6}: val loss {v['loss']:.3f}, val bits/byte {v['bpb']:.3f}"
            )
        if self.last_checkpoint:
            lines.append(f"checkpoint: {self.last_checkpoint}")
            if self.stopped_by:
                lines.append("resume: the same command with ckpt_path=last")
        return "\n".join(lines)


def train(overrides: Sequence[str] = ()) -> TrainResult:
    """Compose the config from Hydra-style overrides and run it."""
    return run(compose(overrides))


def resolve_run_dir(cfg: DictConfig) -> Path:
    if cfg.run_dir:
        return Path(cfg.run_dir)
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.runs_dir) / cfg.name


def _strategy(cfg: DictConfig) -> Any:
    name = cfg.strategy.name
    if cfg.strategy.activation_checkpointing != "none" or cfg.strategy.compile:
        if name != "fsdp2":
            raise TrainingError(
                f"strategy.activation_checkpointing={cfg.strategy.activation_checkpointing} / "
                f"strategy.compile={cfg.strategy.compile} are applied by strategy=fsdp2 (issue 5); "
                f"use none/false with strategy={name}"
            )
    if name == "single":
        return "auto"
    if name == "ddp":
        return "ddp"
    if name == "fsdp2":
        return _fsdp2_strategy(cfg)
    raise TrainingError(f"strategy.name={name!r}: expected single, ddp or fsdp2")


def _fsdp2_strategy(cfg: DictConfig) -> Any:
    """Lightning's ModelParallelStrategy: a (data_parallel x tensor_parallel) device mesh;
    DualMindModule.configure_model applies fully_shard (dualmind.distributed.parallel) over it. Its
    sharded checkpoints are staged and moved into place (dualmind.checkpoint.atomic_save)."""
    from dualmind.checkpoint.atomic_save import atomic_model_parallel_strategy

    s, t = cfg.strategy, cfg.trainer
    tp = int(s.tensor_parallel_size)
    dp = s.data_parallel_size
    if dp == "auto":
        if not isinstance(t.devices, int):
            raise TrainingError(
                f"strategy.data_parallel_size=auto needs an integer trainer.devices, "
                f"got {t.devices!r}: set both"
            )
        world = t.devices * t.num_nodes
        if world % tp:
            raise TrainingError(
                f"strategy.tensor_parallel_size={tp} does not divide the world size "
                f"{world} (trainer.devices x trainer.num_nodes)"
            )
        dp = world // tp
    return atomic_model_parallel_strategy(data_parallel_size=int(dp), tensor_parallel_size=tp)


def atomic_checkpoint_io():
    """Lightning's checkpoint IO, but each local file is written beside its final name and moved
    into place with os.replace, so a crash mid-save never leaves a torn last.ckpt.

    (Lightning's own save stages the file in the system temp dir and moves it over: atomic only
    when that temp dir is on the same filesystem as the checkpoints, which clusters rarely give.)
    The temporaries of earlier saves of the same name that were killed mid-write are removed
    first: each is as large as the checkpoint.
    """
    import torch
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    from dualmind.checkpoint.atomic_save import remove_stale, replace_durably

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            if "://" in str(path):
                return super().save_checkpoint(checkpoint, path, storage_options)
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale(path)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            try:
                with open(tmp, "wb") as f:
                    torch.save(checkpoint, f)
                    f.flush()
                    os.fsync(f.fileno())
                replace_durably(tmp, path)
            except OSError as err:  # a full disk, a quota: the user's to fix, not a traceback
                kept = (f"{path.name} keeps its previous content" if path.exists()
                        else f"no {path.name} was written")
                raise CheckpointWriteError(
                    f"cannot write checkpoint {path}: {err.strerror or err}; {kept}; make room "
                    "(or fix the folder), then resume with ckpt_path=last") from err
            finally:
                tmp.unlink(missing_ok=True)

    return AtomicCheckpointIO()


def _step_progress_bar(base: type) -> type:
    """Runs are budgeted in steps, with epochs open-ended (max_epochs=-1), so Lightning's
    "Epoch 0/-2" would be noise; show the pass over the data and the step budget instead."""

    class StepProgressBar(base):
        def _get_train_description(self, current_epoch: int) -> str:
            return f"pass {current_epoch} · {self.trainer.max_steps} steps"

    return StepProgressBar


def _final_step_checkpoint(base: type) -> type:
    """ModelCheckpoint that also saves when a run ends between two checkpoint intervals
    (max_steps 60 with a checkpoint every 50 steps would otherwise leave last.ckpt at step 50 and
    lose the last 10 steps). A run that stops on an exception never reaches on_train_end, so a
    failing step cannot overwrite the last good checkpoint."""

    class FinalStepCheckpoint(base):
        def on_train_end(self, trainer, pl_module) -> None:
            super().on_train_end(trainer, pl_module)
            self.save_now(trainer)

        def save_now(self, trainer) -> str:
            """Save step*.ckpt and last.ckpt now, as an interval save would at this step, unless
            this step is saved already (dualmind.train.stop_signal saves here on SIGTERM/SIGINT);
            returns last.ckpt's path."""
            if trainer.global_step > self._last_global_step_saved:
                candidates = self._monitor_candidates(trainer)
                self._save_topk_checkpoint(trainer, candidates)
                self._save_last_checkpoint(trainer, candidates)
            return self.last_model_path

    return FinalStepCheckpoint


def _precision_arguments(cfg: DictConfig, precision: str) -> tuple[str | None, list]:
    """Trainer(precision=...), or for fp16 autocast under strategy=fsdp2 the same plugin given
    as an instance: Lightning's ModelParallelStrategy refuses the string "16-mixed", while its
    loss scaler works with FSDP2 and tensor-parallel DTensor gradients (the inf check reduces
    over each gradient's mesh; dualmind.train.grad_clip clips per mesh;
    tests/test_fp16_clipping.py)."""
    if precision != "16-mixed" or cfg.strategy.name != "fsdp2":
        return precision, []
    from lightning.pytorch.plugins.precision import MixedPrecision

    from dualmind.config.precision import _device_type

    device = "cuda" if _device_type(cfg.trainer.accelerator) == "cuda" else "cpu"
    return None, [MixedPrecision("16-mixed", device)]


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: Sequence[Any] = (), *,
                  precision: str):
    """precision: the Lightning precision (dualmind.config.precision.resolve of
    trainer.precision)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from dualmind.train.progress import TrainingProgress, stdout_is_terminal
    from dualmind.train.stop_signal import StopOnSignal

    t = cfg.trainer
    loggers = []
    for name in t.loggers:
        if name == "csv":
            loggers.append(CSVLogger(save_dir=str(run_dir), name="csv"))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard"))
        else:
            raise TrainingError(
                f"trainer.loggers: unknown logger {name!r} (known: csv, tensorboard)"
            )
    every = t.checkpoint_every_n_steps or None
    checkpoint = _final_step_checkpoint(ModelCheckpoint)(
        dirpath=str(run_dir / "checkpoints"),
        filename="step{step:07d}",
        auto_insert_metric_name=False,
        every_n_train_steps=every,
        save_top_k=1,
        save_last=True,
    )
    # Off a terminal the rich bar prints nothing until the run ends: plain lines instead.
    plain = not stdout_is_terminal()
    rich_bar = bool(t.enable_progress_bar) and not plain
    progress = TrainingProgress(t.progress_every_n_steps, t.progress_every_s, plain=plain)
    cbs = [checkpoint, progress, StopOnSignal(), *callbacks]
    if t.get("max_flops") is not None:  # before the time budget: it may lower what this sets
        from dualmind.train.flop_budget import STAGES, FlopBudget

        if cfg.stage not in STAGES:
            raise TrainingError(f"trainer.max_flops counts the batches of stages {STAGES}, not "
                                f"stage={cfg.stage}: give trainer.max_steps instead")
        cbs.append(FlopBudget(float(t.max_flops)))
    if t.get("time_budget_s"):
        from dualmind.train.time_budget import TimeBudget

        cbs.append(TimeBudget(float(t.time_budget_s)))
    if rich_bar:
        cbs.append(_step_progress_bar(RichProgressBar)(leave=True))
    limit_val = t.limit_val_batches
    precision_arg, precision_plugins = _precision_arguments(cfg, precision)
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=_strategy(cfg),
        precision=precision_arg,
        max_steps=t.max_steps,
        val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=t.num_sanity_val_steps,
        limit_val_batches=limit_val,
        log_every_n_steps=t.log_every_n_steps,
        gradient_clip_val=t.gradient_clip_val,
        gradient_clip_algorithm=t.gradient_clip_algorithm,
        accumulate_grad_batches=t.accumulate_grad_batches,
        deterministic=t.deterministic,
        fast_dev_run=t.fast_dev_run,
        enable_progress_bar=rich_bar,
        logger=loggers or False,
        callbacks=cbs,
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,  # our loaders give each rank its own batches, seeded
        enable_model_summary=False,
        plugins=[atomic_checkpoint_io(), *precision_plugins],
    )


def _quiet_lightning_noise() -> None:
    """Drop Lightning's product tips, a deprecation warning it raises against itself under newer
    torch, and its warning about the frozen core's eval mode: none is actionable for a dualmind
    user, and all bury the loss curve."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # stage align/lora/unfreeze keep the frozen core in eval mode on purpose (DualMindModule.train).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    # The tips are logged by this one logger; a logger filter catches them whichever handler
    # (Lightning's own, or Hydra's root one under train.py) would print them.
    tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _drop_tips not in tips.filters:
        tips.addFilter(_drop_tips)


def _drop_tips(record) -> bool:
    return "Tip: For seamless" not in record.getMessage()


def run(cfg: DictConfig, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train as configured; raises TrainingError (bad input) or NonFiniteLossError (NaN/inf).

    callbacks: extra Lightning callbacks (tests use one to interrupt a run).
    """
    import lightning as L
    import torch

    from dualmind.data.open_corpus import DataConfigError
    from dualmind.train.datamodule import CoreDataModule
    from dualmind.train.module import DualMindModule
    from dualmind.train.progress import TrainingProgress
    from dualmind.train.stop_signal import TrainingStopped

    validate(cfg)
    _quiet_lightning_noise()
    if OmegaConf.is_missing(cfg.data, "dir"):
        raise TrainingError(
            "data.dir is not set: pass data.dir=<corpus folder> "
            "(build one with `dualmind corpus build`)"
        )
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    run_dir = resolve_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)

    if cfg.stage in ("align", "lm"):  # (hyperphrase, text) rows; lm reads only the text
        from dualmind.train.align_datamodule import AlignDataModule

        datamodule = AlignDataModule.from_config(cfg)
        if cfg.stage == "align":  # held-out QA pairs scored apart from the scenes: val/qa_bpb
            from dualmind.train.qa_validation import QAValidation

            callbacks = [*callbacks, QAValidation(datamodule)]
    elif cfg.stage in ("lora", "unfreeze"):  # adapters (issue 7): QA/pairs in hyperphrase space
        from dualmind.train.qa_data import QADataModule as _QA

        datamodule = _QA.from_config(cfg)
    else:
        datamodule = CoreDataModule.from_config(cfg)
    try:
        datamodule.prepare()
    except DataConfigError as err:
        raise TrainingError(str(err)) from err
    except Exception as err:  # ShardError and friends from the corpus package: add the key
        raise TrainingError(f"data.dir={cfg.data.dir}: {err}") from err

    from dualmind.checkpoint.resume import ResumeError, resume_path

    try:
        ckpt_path = resume_path(cfg, run_dir, datamodule.lexicon_fingerprint)
    except ResumeError as err:
        raise TrainingError(str(err)) from err

    precision = _announce_precision(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    plain_cfg = OmegaConf.to_container(cfg, resolve=True)
    plain_cfg.pop("hydra", None)
    module_cls = DualMindModule
    if cfg.stage in ("lora", "unfreeze"):
        from dualmind.train.adapt import AdapterModule as module_cls
    module = module_cls(plain_cfg, lexicon_fingerprint=datamodule.lexicon_fingerprint)
    trainer = build_trainer(cfg, run_dir, callbacks, precision=precision)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)

    start = time.perf_counter()

    def result(stopped_by: str | None = None) -> TrainResult:
        last = trainer.checkpoint_callback.last_model_path if trainer.checkpoint_callback else ""
        progress = next(c for c in trainer.callbacks if isinstance(c, TrainingProgress))
        return TrainResult(
            run_dir=run_dir,
            steps=trainer.global_step,
            wall_s=time.perf_counter() - start,
            train=module.history["train"],
            val=module.history["val"],
            last_checkpoint=Path(last) if last else None,
            lexicon_fingerprint=datamodule.lexicon_fingerprint,
            global_rank=trainer.global_rank,
            start_step=progress.start_step or 0,
            stopped_by=stopped_by,
        )

    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except TrainingStopped as stop:  # SIGTERM / Ctrl-C: a checkpoint is saved; say what ran
        import signal

        stop.result = result(signal.Signals(stop.signum).name)
        raise
    return result()


def _announce_precision(cfg: DictConfig) -> str:
    """Resolve trainer.precision for this machine (dualmind.config.precision), say so once, warn
    about bf16 asked for on a CPU without it; returns the Lightning precision."""
    from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

    from dualmind.config.precision import resolve

    choice = resolve(cfg.trainer.precision, cfg.trainer.accelerator)
    if rank_zero_only.rank == 0:
        print(choice.line(), flush=True)
    if choice.warning:
        rank_zero_warn(choice.warning)
    return choice.value
