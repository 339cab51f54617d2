"""The dualmind part of every training checkpoint: ``checkpoint["dualmind"]`` (stage, lexicon
fingerprint, model and decoder shapes, core fingerprint, RNG streams, ...), the lexicon check
every reader of a checkpoint makes, the resume check of the settings that order the data, and
the rows a run trained on (``meta["context"]``, which evaluation reuses)."""

from __future__ import annotations

from pathlib import Path

CHECKPOINT_KEY = "dualmind"
CHECKPOINT_FORMAT = 1


class LexiconMismatchError(ValueError):
    """A checkpoint trained with one lexicon loaded against shards of another."""


def checkpoint_metadata(checkpoint: dict) -> dict:
    meta = checkpoint.get(CHECKPOINT_KEY)
    if not isinstance(meta, dict):
        raise ValueError(
            "not a dualmind checkpoint (no 'dualmind' metadata: lexicon fingerprint, stage)"
        )
    return meta


def check_lexicon(meta: dict, expected: str | None, where: str = "checkpoint") -> None:
    found = meta.get("lexicon_fingerprint")
    if expected is not None and found is not None and found != expected:
        raise LexiconMismatchError(
            f"{where} was trained with lexicon {found}, but the data uses lexicon {expected}; "
            f"a core only understands the symbols of its own lexicon — use shards built with "
            f"lexicon {found}, or start a fresh run"
        )


# Settings that decide which samples a step reads (and, for stage align, which QA pairs are mixed
# in): a resume that changes one continues the weights and optimizer, not the saved run's order.
# Rank r of dp reads batch j*dp + r, so what must stay is the product batch x dp x accumulation,
# the samples per optimizer step, not each factor (2 ranks x 2 rows resume as 1 rank x 4 rows).
DATA_ORDER_KEYS = ("data.seed", "data.seq_len", "align.qa", "adapt.heldout_fraction")
STEP_FACTORS = ("data.batch_size", "trainer.accumulate_grad_batches")


def _get(d, dotted: str, missing):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return missing
        d = d[part]
    return d


def changed_data_settings(saved_cfg: dict | None, cfg: dict, saved_dp: int = 1,
                          dp: int = 1) -> list[str]:
    """``["data.seed: 0 -> 1", ...]`` for what a resumed run changed of what orders its data;
    keys one of the two configs lacks are not compared (an older checkpoint, another stage)."""
    missing = object()
    changed = []
    for key in DATA_ORDER_KEYS:
        old, new = _get(saved_cfg or {}, key, missing), _get(cfg, key, missing)
        if old is not missing and new is not missing and old != new:
            changed.append(f"{key}: {old} -> {new}")
    old = [_get(saved_cfg or {}, k, missing) for k in STEP_FACTORS]
    new = [_get(cfg, k, missing) for k in STEP_FACTORS]
    if missing not in old + new and old[0] * saved_dp * old[1] != new[0] * dp * new[1]:
        changed.append(f"samples per step (data.batch_size x data-parallel ranks x "
                       f"trainer.accumulate_grad_batches): {old[0]}x{saved_dp}x{old[1]} -> "
                       f"{new[0]}x{dp}x{new[1]}")
    return changed


def warn_on_resume(checkpoint: dict, cfg: dict, dp: int) -> None:
    """What a resumed run should be told (warnings, not refusals: continuing with another batch
    size can be deliberate): the order-deciding settings it changed, and a FLOPs count of another
    kind. The saved run's data-parallel size is the number of data-parallel ranks whose random
    streams it holds."""
    from lightning.pytorch.utilities import rank_zero_warn

    saved = (checkpoint.get("hyper_parameters") or {}).get("cfg")
    meta = checkpoint.get(CHECKPOINT_KEY) or {}
    streams = meta.get("rng") or []
    saved_dp = len({int(st["rank"]) for st in streams}) or 1
    if changed := changed_data_settings(saved, cfg, saved_dp, dp):
        rank_zero_warn(f"ckpt_path: resumed with other data settings ({'; '.join(changed)}): "
                       "weights and optimizer continue, the saved run's batch order does not")
    if meta.get("flops_scope") != "global" and len(streams) > 1:
        rank_zero_warn("ckpt_path: this checkpoint's flops_total counts rank 0's batches only "
                       "(written before dualmind counted the global batch); train/flops_total "
                       "continues from it and so undercounts the steps before the resume")


def row_context(cfg: dict) -> dict[str, int | None]:
    """The row a run trained on, which evaluation reuses: core units and text positions per row
    (stage core: units only; stage lm: text only). Recorded in checkpoints as meta["context"]."""
    stage, seq_len = cfg.get("stage"), int(cfg["data"]["seq_len"])
    if stage == "lm":
        return {"core": None, "text": seq_len}
    if stage == "align":
        return {"core": seq_len, "text": int(cfg["decoder"]["max_seq_len"])}
    return {"core": seq_len, "text": None}


def context_of(meta: dict, checkpoint: dict) -> dict[str, int | None] | None:
    """meta["context"]; for a checkpoint from before it was recorded, derived from the run's
    config when the checkpoint holds one (hand-made checkpoints may hold a partial config)."""
    if meta.get("context"):
        return meta["context"]
    cfg = (checkpoint.get("hyper_parameters") or {}).get("cfg") or {}
    return row_context(cfg) if "seq_len" in (cfg.get("data") or {}) else None


def recorded_corpus_dir(source: str | Path, meta: dict) -> str | None:
    """The training run's corpus folder (data.dir), where the decoder's tokenizer lives, as a .ckpt
    records it (for a `dualmind export` folder, the checkpoint it was exported from, its
    ``source_checkpoint``); None when neither file is at hand (a sharded folder)."""
    ckpt = Path(source)
    if not ckpt.is_file():
        ckpt = Path(meta.get("source_checkpoint") or "")
    if not ckpt.is_file():
        return None
    import torch

    saved = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    cfg = (saved.get("hyper_parameters") or {}).get("cfg") or {}
    return (cfg.get("data") or {}).get("dir")
