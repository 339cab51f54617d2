"""From a ``PlanRequest`` to what the arithmetic needs: the checked request, the model and
run settings (a recipe composed with Hydra, or a conf/model shape), the decoder and where
the benchmark results live."""

from __future__ import annotations

import math
from pathlib import Path

from dualmind.config.precision import AUTO, for_planned_gpu

from . import memory
from .request import PlanError, PlanRequest
from .shape import ModelShape, from_core_config

# Recipe trainer.precision -> memory policy (see memory.PRECISIONS); the dry run reads it too.
# 32-true with strategy.param_dtype=bfloat16 is fp32-master (the large recipes); the mixed
# settings keep fp32 parameters and autocast; bf16-true casts the model, AdamW state included.
PRECISION_OF_TRAINER = {
    "bf16-true": "bf16-true",
    "bf16-mixed": "fp32-master",
    "16-mixed": "fp32-master",
    "32-true": "fp32-master",
    "32": "fp32-master",
}
# auto (the CPU-sized recipes) resolves on the machine that trains; a plan is for GPUs, where it
# is bf16-mixed (dualmind.config.precision.for_planned_gpu).
PRECISION_OF_TRAINER[AUTO] = PRECISION_OF_TRAINER[for_planned_gpu(AUTO)]



def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def resolve_run(req: PlanRequest) -> tuple[ModelShape, object, dict]:
    """(shape, CoreConfig, run settings) from a recipe (composed with Hydra) or a model name."""
    from dualmind.model.config import ConfigError as ModelConfigError
    from dualmind.model.config import CoreConfig, available_shapes

    if req.recipe:
        from dualmind.config.schema import ConfigError, compose, list_recipes

        known = list_recipes()
        if req.recipe not in known:
            raise PlanError(
                "recipe", f"no recipe named {req.recipe!r}; available: {', '.join(known)}"
            )
        try:
            cfg = compose([f"recipe={req.recipe}", *req.overrides])
        except ConfigError as err:
            raise PlanError("recipe", str(err)) from err
        from omegaconf import OmegaConf

        core = CoreConfig.from_dict(
            OmegaConf.to_container(cfg.model, resolve=True), source=f"recipe {req.recipe}"
        )
        devices = cfg.trainer.devices if isinstance(cfg.trainer.devices, int) else None
        trainer_precision = for_planned_gpu(cfg.trainer.precision)  # auto: bf16-mixed on GPUs
        run = {
            "source": f"recipe={req.recipe}" + "".join(f" {o}" for o in req.overrides),
            "seq_len": int(cfg.data.seq_len),
            "micro_batch": int(cfg.data.batch_size),
            "checkpointing": str(cfg.strategy.get("activation_checkpointing", "none")),
            "precision": PRECISION_OF_TRAINER.get(trainer_precision, "fp32-master"),
            "trainer_precision": trainer_precision,
            "recipe_gpus": None if devices is None else devices * int(cfg.trainer.num_nodes),
            "accumulate_grad_batches": int(cfg.trainer.get("accumulate_grad_batches", 1)),
            "max_steps": int(cfg.trainer.max_steps),
            "param_dtype": str(cfg.strategy.get("param_dtype", "bfloat16")),
            "reduce_dtype": str(cfg.strategy.get("reduce_dtype", "float32")),
            # strategy.loss_chunk, as the training step and the dry run read it; None: full logits
            "loss_chunk": int(cfg.strategy.get("loss_chunk", 0) or 0) or None,
        }
        name = req.recipe
    elif req.model:
        try:
            core = CoreConfig.from_name(req.model)
        except ModelConfigError as err:
            raise PlanError(
                "--model", f"{err} (available: {', '.join(available_shapes())})"
            ) from err
        run = {
            "source": f"conf/model/{req.model}.yaml (no recipe: micro-batch 1, full checkpointing)",
            "seq_len": int(core.max_seq_len),
            "micro_batch": 1,
            "checkpointing": "full",
            "precision": "fp32-master",
            "trainer_precision": None,
            "recipe_gpus": None,
            "accumulate_grad_batches": 1,
            "max_steps": None,
            "param_dtype": "bfloat16",
            "reduce_dtype": "float32",
            "loss_chunk": None,
        }
        name = req.model
    else:
        raise PlanError("recipe", "give a recipe (recipe=core_70b) or --model NAME")
    for key in ("seq_len", "micro_batch", "checkpointing", "precision", "loss_chunk"):
        value = getattr(req, key)
        if value is not None:
            run[key] = (value or None) if key == "loss_chunk" else value  # --loss-chunk 0: full
            run["source"] += f", {key}={value} (command line)"
    return from_core_config(core, name), core, run


def _positive(argument: str, value, allow_none: bool = True):
    if value is None and allow_none:
        return
    if value is None or not (value > 0) or (isinstance(value, float) and not math.isfinite(value)):
        raise PlanError(argument, f"must be a positive number, got {value}")


def check_request(req: PlanRequest) -> None:
    for argument, value in (
        ("--gpus", req.gpus),
        ("--bytes-per-symbol", req.bytes_per_symbol),
        ("--bpe-bytes-per-token", req.bpe_bytes_per_token),
        ("--price", req.price),
        ("--epochs", req.epochs),
        ("--seq-len", req.seq_len),
        ("--micro-batch", req.micro_batch),
        ("--cores", req.cores),
        ("--codec-throughput", req.codec_bytes_per_s),
        ("--llm-tokens-per-s", req.llm_tokens_per_s),
    ):
        _positive(argument, value)
    if req.loss_chunk is not None and req.loss_chunk < 0:
        raise PlanError("--loss-chunk", f"must be >= 0 positions (0: full logits), got "
                        f"{req.loss_chunk}")
    if not (0.0 < req.mfu <= 1.0):
        raise PlanError("--mfu", f"must be in (0, 1] (a fraction of peak), got {req.mfu}")
    if req.corpus_kind not in ("raw", "hyperphrase"):
        raise PlanError("--corpus-kind", f"must be raw or hyperphrase, got {req.corpus_kind!r}")
    if req.checkpointing is not None and req.checkpointing not in memory.CHECKPOINTING:
        raise PlanError("--checkpointing", f"must be one of {', '.join(memory.CHECKPOINTING)}")
    if req.precision is not None and req.precision not in memory.PRECISIONS:
        raise PlanError("--precision", f"must be one of {', '.join(memory.PRECISIONS)}")
    if req.lexicon and not req.sample:
        raise PlanError("--lexicon", "needs --sample FILE to measure bytes per symbol on")


def resolve_decoder(name: str, core_dim: int):
    """conf/decoder/NAME.yaml; a decoder made for another core width reads this one's states."""
    import dataclasses

    from dualmind.model.decoder_config import DecoderConfig

    try:
        decoder = DecoderConfig.from_name(name)
    except ValueError as err:
        raise PlanError("--decoder", str(err)) from err
    if decoder.core_dim == core_dim:
        return decoder, ""
    note = f"; core_dim {decoder.core_dim} -> {core_dim} to read this core"
    return dataclasses.replace(decoder, core_dim=core_dim), note


def results_paths(req: PlanRequest) -> tuple[Path, str]:
    """benchmarks/RESULTS.md (or --results), and how the report names it."""
    path = Path(req.results) if req.results else repo_root() / "benchmarks" / "RESULTS.md"
    try:  # relative to the repository when it lies inside it
        return path, str(path.resolve().relative_to(repo_root()))
    except ValueError:
        return path, str(path)
