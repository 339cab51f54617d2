"""ckpt_path names a checkpoint this run can continue: the same stage and the same weight shapes.

Otherwise Lightning gets as far as `load_state_dict` and fails with a page of missing and
unexpected keys (a stage-core checkpoint given to the BPE baseline, a core_mini checkpoint to a
125m run). Only the checkpoint's `dualmind` metadata is read, through a memory map, so the check
costs milliseconds even for a large file. Settings that do not shape a weight (dropout, the
attention backend, the learning rate) may change on resume and are not compared.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dualmind.train.run_paths import CORE_STAGES, RunPathError

# CoreConfig / DecoderConfig fields that decide the shape of some weight (the decoder's reading:
# the layer mix, the copy channel, the pointer feed and copy logits add weights of their own)
SHAPE_FIELDS = ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "ffn_dim",
                "core_dim", "cross_every", "gated", "tie_embeddings", "core_read", "copy_slots",
                "pointer_feed", "copy_logits", "pointer_window", "boundary_head", "max_advance",
                "unit_lengths")


def saved_metadata(path: Path) -> dict | None:
    """The checkpoint's `dualmind` entry, or None when it cannot be read (left to the run, whose
    own reader reports it)."""
    from dualmind.checkpoint.resume import ResumeError, read_metadata

    try:
        return read_metadata(path)
    except ResumeError:  # not this check's to report
        return None


def shape_differences(saved: dict | None, wanted: dict | None, part: str) -> list[str]:
    if not saved or not wanted:
        return []
    return [f"{part}.{k}={saved[k]} (this run: {wanted[k]})" for k in SHAPE_FIELDS
            if k in saved and k in wanted and saved[k] != wanted[k]]


def check_resume(cfg: DictConfig) -> None:
    """Raise RunPathError (kind ``wrong_checkpoint``) when ckpt_path is of another stage or
    another model shape. ``last`` is the run's own checkpoint and is not checked here."""
    if not cfg.ckpt_path or cfg.ckpt_path == "last":
        return
    meta = saved_metadata(Path(cfg.ckpt_path))
    if meta is None:
        return
    if meta.get("stage") not in (None, cfg.stage):
        hint = ("resume a checkpoint of the same recipe, or start a fresh run"
                if not (meta["stage"] == "core" and cfg.stage in CORE_STAGES) else
                "a trained core to read is passed as core.checkpoint, not ckpt_path")
        raise RunPathError("ckpt_path", cfg.ckpt_path, "wrong_checkpoint",
                           f"a checkpoint of stage {meta['stage']}, but this run trains stage "
                           f"{cfg.stage}; {hint}")
    diffs = shape_differences(meta.get("model"), _core_dict(cfg), "model")
    diffs += shape_differences(meta.get("decoder"), _decoder_dict(cfg), "decoder")
    if diffs:
        raise RunPathError("ckpt_path", cfg.ckpt_path, "wrong_checkpoint",
                           "its weights have another shape: " + ", ".join(diffs)
                           + "; resume it with the model it was trained with, or start a fresh "
                           "run")


def _core_dict(cfg: DictConfig) -> dict:
    """This run's core config with its derived fields (head_dim...), as the checkpoint saved it."""
    from dualmind.config.schema import check_model_config

    return check_model_config(cfg.model).to_dict()


def _decoder_dict(cfg: DictConfig) -> dict | None:
    if cfg.get("decoder") is None:
        return None
    from dualmind.model.decoder_config import DecoderConfig

    values = OmegaConf.to_container(cfg.decoder, resolve=True)
    return DecoderConfig.from_dict(values, source="cfg.decoder").to_dict()
