"""Hydra configuration of training: compose `conf/config.yaml` + `recipes/`, and check it.

`compose(["recipe=core_70b"])` is what tests, the planner and the demo use; `train.py`
reaches the same config through `@hydra.main`. Both end in `validate(cfg)`, which checks every
group against a schema so a misspelt key stops the run with its dotted name instead of being
silently carried along.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from dualmind.config import overrides as overrides_module

RECIPES_ENV = "DUALMIND_RECIPES_DIR"
CONF_ENV = "DUALMIND_CONF_DIR"


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the offending key."""


def repo_root() -> Path:
    """The source checkout holding conf/ and recipes/ (three folders above
    src/dualmind/config/schema.py)."""
    return Path(__file__).resolve().parents[3]


def repo_conf_dir() -> Path:
    """Absolute path of the primary config folder (override with $DUALMIND_CONF_DIR)."""
    path = Path(os.environ.get(CONF_ENV) or repo_root() / "conf").resolve()
    if not (path / "config.yaml").is_file():
        raise ConfigError(
            f"no config.yaml in {path}: dualmind's configs live in the source checkout's conf/ "
            f"folder; set ${CONF_ENV} to point at it"
        )
    return path


def recipes_dir() -> Path:
    """Absolute path of the recipes folder (holding recipe/*.yaml)."""
    return Path(os.environ.get(RECIPES_ENV) or repo_root() / "recipes").resolve()


# The primary config reaches recipes/ through hydra.searchpath = file://${oc.env:DUALMIND_RECIPES_DIR}.
# Set it here, from the package location, unless the user pointed it elsewhere: train.py and
# compose() both import this module before Hydra reads the searchpath.
os.environ.setdefault(RECIPES_ENV, str(recipes_dir()))


def _run_dir(run_dir: str | None, runs_dir: str, name: str) -> str:
    return run_dir or f"{runs_dir}/{name}"


# hydra.run.dir = ${dm_run_dir:${run_dir},${runs_dir},${name}}: an explicit run_dir is where
# Hydra writes its log too, so checkpoints, metrics and train.log of one run share one folder.
OmegaConf.register_new_resolver("dm_run_dir", _run_dir, replace=True)

# A bare override of an unknown key gets the project's message (dualmind.config.overrides), in
# train.py and compose() alike: installed here, before either composes a config.
overrides_module.install()


# ---------------------------------------------------------------------------------------------
# Schemas of the groups this package owns. The model group is checked against CoreConfig.


@dataclass
class DataConfig:
    dir: str = MISSING
    seq_len: int = 256
    batch_size: int = 16
    seed: int = 1234
    num_workers: int = 0
    val_max_batches: int | None = 16
    lexicon: str | None = None


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    precision: str = "auto"
    max_steps: int = 1000
    val_check_interval: int = 100
    num_sanity_val_steps: int = 0
    limit_val_batches: Any = None
    log_every_n_steps: int = 1
    gradient_clip_val: float | None = 1.0
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = 1
    deterministic: bool = False
    fast_dev_run: Any = False
    enable_progress_bar: bool = True
    progress_every_n_steps: int = 100
    progress_every_s: float = 30.0
    checkpoint_every_n_steps: int = 100
    loggers: list = field(default_factory=lambda: ["csv", "tensorboard"])
    num_threads: int | None = None
    time_budget_s: float | None = None
    max_flops: float | None = None
    dry_run: bool = False


@dataclass
class StrategyConfig:
    name: str = "single"
    activation_checkpointing: str = "none"
    compile: bool = False
    data_parallel_size: Any = "auto"
    tensor_parallel_size: int = 1
    param_dtype: str = "bfloat16"
    reduce_dtype: str = "float32"
    device_memory_gib: float | None = None
    loss_chunk: int = 0


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 1e-3
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.1
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    fused: Any = "auto"


GROUP_SCHEMAS = {
    "data": DataConfig,
    "trainer": TrainerConfig,
    "strategy": StrategyConfig,
    "optim": OptimConfig,
}
# `decoder` (conf/decoder/*.yaml, DecoderConfig) is optional: stage=align selects it.
TOP_LEVEL_KEYS = {
    "stage",
    "name",
    "seed",
    "runs_dir",
    "run_dir",
    "ckpt_path",
    "model",
    "decoder",
    "core",
    "align",
    "adapt",  # stage=lora|unfreeze: the adaptation task (dualmind.adapters.settings)
    "lora",
    "unfreeze",
    *GROUP_SCHEMAS,
}
STAGES = ("core", "align", "lm", "lora", "unfreeze")
ACTIVATION_CHECKPOINTING = ("none", "full", "selective")
STRATEGIES = ("single", "ddp", "fsdp2")


def _check_group(cfg: DictConfig, group: str, schema: type) -> None:
    node = cfg.get(group)
    if node is None:
        raise ConfigError(f"config group '{group}' is missing")
    try:
        OmegaConf.merge(OmegaConf.structured(schema), node)
    except ConfigKeyError as err:
        key = getattr(err, "key", None) or str(err)
        known = ", ".join(f.name for f in dataclasses.fields(schema))
        raise ConfigError(
            f"unknown config key '{group}.{key}' (known keys of {group}: {known})"
        ) from err
    except ValidationError as err:
        raise ConfigError(f"bad value for '{group}.{getattr(err, 'key', '?')}': {err.msg}") from err


def check_model_config(model_cfg: Any) -> Any:
    """Build CoreConfig from cfg.model; unknown keys are named as `model.<key>`."""
    from dualmind.model.config import CoreConfig

    values = (
        OmegaConf.to_container(model_cfg, resolve=True)
        if isinstance(model_cfg, DictConfig)
        else dict(model_cfg)
    )
    known = {f.name for f in dataclasses.fields(CoreConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key 'model.{unknown[0]}' "
            f"(CoreConfig fields: {', '.join(sorted(known))})"
        )
    try:
        return CoreConfig.from_dict(values, source="cfg.model")
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid model config: {err}") from err


# Numbers out of range. Without these, Lightning or torch refused most of them with a traceback
# from deep inside the run (trainer.max_steps=-3, optim.lr=-1, trainer.val_check_interval=-1),
# and some ran silently (optim.warmup_steps=-5): (key, allowed?, what is allowed).
RANGES = (
    ("trainer.max_steps", lambda v: v >= 1 or v == -1, ">= 1 (or -1: no limit)"),
    ("trainer.val_check_interval", lambda v: v >= 1, ">= 1"),
    ("trainer.checkpoint_every_n_steps", lambda v: v >= 0, ">= 0 (0: at the end only)"),
    ("trainer.accumulate_grad_batches", lambda v: v >= 1, ">= 1"),
    ("trainer.num_sanity_val_steps", lambda v: v >= -1, ">= 0 (or -1: all)"),
    ("trainer.progress_every_n_steps", lambda v: v >= 0, ">= 0 (0: off)"),
    ("trainer.progress_every_s", lambda v: v >= 0, ">= 0 (0: off)"),
    ("trainer.num_nodes", lambda v: v >= 1, ">= 1"),
    ("trainer.num_threads", lambda v: v is None or v >= 1, ">= 1 (or null: torch's default)"),
    ("trainer.time_budget_s", lambda v: v is None or v > 0, "> 0 seconds (or null: no limit)"),
    ("trainer.max_flops", lambda v: v is None or v > 0, "> 0 training FLOPs (or null: no budget)"),
    ("strategy.loss_chunk", lambda v: v is None or v >= 0,  # None: absent, as in single.yaml
     ">= 0 positions (0: the full logits at once)"),
    ("trainer.gradient_clip_val", lambda v: v is None or v >= 0, ">= 0 (or null: no clipping)"),
    ("data.val_max_batches", lambda v: v is None or v >= 1, ">= 1 (or null: the whole split)"),
    ("data.num_workers", lambda v: v >= 0, ">= 0"),
    ("optim.lr", lambda v: v > 0, "> 0"),
    ("optim.eps", lambda v: v > 0, "> 0"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.warmup_steps", lambda v: v >= 0, ">= 0"),
    ("optim.min_lr_ratio", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("optim.betas", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
)


def _check_ranges(cfg: DictConfig) -> None:
    for key, allowed, rule in RANGES:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not allowed(value):
            shown = list(value) if OmegaConf.is_list(value) else value
            raise ConfigError(f"{key}={shown} must be {rule}")


def validate(cfg: DictConfig, check_model: bool = True) -> DictConfig:
    """Raise ConfigError naming the key for anything misspelt or out of range; return cfg."""
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS - {"hydra"})
    if unknown:
        raise ConfigError(
            f"unknown config key '{unknown[0]}' "
            f"(top-level keys: {', '.join(sorted(TOP_LEVEL_KEYS))})"
        )
    for group, schema in GROUP_SCHEMAS.items():
        _check_group(cfg, group, schema)
    if cfg.stage not in STAGES:
        raise ConfigError(f"stage={cfg.stage!r}: expected one of {STAGES}")
    if cfg.stage == "align" and cfg.get("align") is not None:
        if "mask_mode" in cfg.align:
            raise ConfigError("align.mask_mode has moved to decoder.mask_mode: which core states "
                              "a token reads is part of the decoder, so evaluation and the "
                              "bridge read it the way it was trained (decoder.mask_mode="
                              f"{cfg.align.mask_mode})")
        if not isinstance(cfg.align.get("qa", False), bool):
            raise ConfigError(f"align.qa={cfg.align.qa!r}: expected true or false")
    verify = (cfg.get("core") or {}).get("verify_tensors")  # checkpoint.core_verify reads it
    if verify is not None and str(verify) != "all" and (
            isinstance(verify, bool) or not isinstance(verify, int) or verify < 0):
        raise ConfigError(f"core.verify_tensors={verify!r}: expected a count of tensors >= 0 or "
                          "'all'")
    if cfg.strategy.name not in STRATEGIES:
        raise ConfigError(f"strategy.name={cfg.strategy.name!r}: expected one of {STRATEGIES}")
    if cfg.strategy.activation_checkpointing not in ACTIVATION_CHECKPOINTING:
        raise ConfigError(
            f"strategy.activation_checkpointing={cfg.strategy.activation_checkpointing!r}: "
            f"expected one of {ACTIVATION_CHECKPOINTING}"
        )
    for key in ("seq_len", "batch_size"):
        if cfg.data[key] < 1:
            raise ConfigError(f"data.{key}={cfg.data[key]} must be >= 1")
    _check_ranges(cfg)
    if check_model and cfg.get("decoder") is not None:
        from dualmind.model.decoder_config import DecoderConfig

        values = OmegaConf.to_container(cfg.decoder, resolve=True)
        try:
            DecoderConfig.from_dict(values, source="cfg.decoder")
        except (TypeError, ValueError) as err:
            raise ConfigError(f"invalid decoder config: {err}") from err
    if check_model:
        core = check_model_config(cfg.model)
        ctx = _context_length(core)
        if ctx is not None and cfg.data.seq_len > ctx:
            raise ConfigError(
                f"data.seq_len={cfg.data.seq_len} is longer than the model's context "
                f"(model.{_context_field(core)}={ctx}); shorten data.seq_len or raise the "
                "model's context"
            )
    return cfg


CONTEXT_FIELDS = ("max_seq_len", "block_size", "context_length", "max_position_embeddings")


def _context_field(core_cfg: Any) -> str | None:
    for name in CONTEXT_FIELDS:
        if hasattr(core_cfg, name):
            return name
    return None


def _context_length(core_cfg: Any) -> int | None:
    name = _context_field(core_cfg)
    return None if name is None else int(getattr(core_cfg, name))


def compose(
    overrides: Sequence[str] = (), config_name: str = "config", validate_cfg: bool = True
) -> DictConfig:
    """Compose the training config as `train.py` would, without running anything.

    The result is in struct mode: reading or setting a key that does not exist raises.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    rdir = recipes_dir()
    if not (rdir / "recipe").is_dir():
        raise ConfigError(f"recipes folder {rdir}/recipe does not exist (set ${RECIPES_ENV})")
    from hydra.errors import ConfigCompositionException

    overrides = list(overrides)
    try:
        if GlobalHydra.instance().is_initialized():
            # Called from inside a Hydra app (e.g. a planner called by train.py): reuse it.
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        else:
            with initialize_config_dir(
                version_base="1.3", config_dir=str(repo_conf_dir()), job_name="dualmind"
            ):
                cfg = hydra_compose(config_name=config_name, overrides=overrides)
    except overrides_module.UnknownOverride as err:  # names the key and the nearest ones
        raise ConfigError(str(err)) from None
    except ConfigCompositionException as err:
        # Hydra's other composition errors (an unknown recipe, a malformed override): keep its
        # words but raise one error type for every bad config.
        raise ConfigError(f"{err}".strip() + f"\n(overrides: {' '.join(overrides)})") from err
    OmegaConf.set_struct(cfg, True)
    if validate_cfg:
        validate(cfg)
    return cfg


def list_recipes() -> list[str]:
    """Names of all recipes (recipes/recipe/*.yaml)."""
    return sorted(p.stem for p in (recipes_dir() / "recipe").glob("*.yaml"))
