"""Hydra entry point of dualmind training.

    python train.py recipe=core_mini data.dir=runs/demo/corpus
    python train.py recipe=core_mini data.dir=... ckpt_path=last          # resume exactly
    python train.py -m recipe=core_mini data.dir=... optim.lr=1e-3,3e-4   # sweep (basic launcher)
    python train.py -m recipe=sweep_core_mini data.dir=...                # the recipe's own sweep

The configs are conf/ (primary + groups) and recipes/recipe/ (found through hydra.searchpath,
set from the package location by dualmind.config.schema). Runs land in runs/<name>/.
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

import dualmind.config.schema  # noqa: F401  (sets DUALMIND_RECIPES_DIR before Hydra reads the searchpath)
from dualmind.config.overrides import UnknownOverride


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from dualmind.train.errors import one_line, user_error_types
    from dualmind.train.loop import run
    from dualmind.train.resume_check import check_resume
    from dualmind.train.run_paths import check_run_paths
    from dualmind.train.stop_signal import TrainingStopped

    # Hydra already routes the root logger to the console and <run>/train.log; Lightning's own
    # console handlers would print every line twice.
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    if cfg.trainer.dry_run:
        from dualmind.distributed.dry_run import main as dry_run

        code = dry_run(cfg)
        if code:
            sys.exit(code)
        return None
    try:
        check_run_paths(cfg)  # every path the run reads, before anything is built
        check_resume(cfg)  # ckpt_path of this stage and these weight shapes
        result = run(cfg)
    except TrainingStopped as stop:  # SIGTERM / Ctrl-C: checkpoint saved, resumable
        if stop.result is not None and stop.result.global_rank == 0:
            print(stop.result.summary())
        sys.exit(stop.exit_code)  # 128 + signal, as the shell reports a signalled job
    except Exception as err:
        if not isinstance(err, user_error_types()):
            raise  # a bug: keep its traceback
        hydra_cfg = HydraConfig.get()
        job = ""
        if hydra_cfg.mode == RunMode.MULTIRUN:  # name the job: the sweep stops at it
            job = f"job {hydra_cfg.job.num} ({' '.join(hydra_cfg.overrides.task)}): "
        print(f"error: {job}{one_line(err)}", file=sys.stderr)
        sys.exit(2)
    if result.global_rank == 0:
        print(result.summary())
    return result.val_bpb  # the objective a sweeper can minimise


if __name__ == "__main__":
    try:
        main()
    except UnknownOverride as err:  # `foo=1`: raised while Hydra composes (config.overrides)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
