"""The dualmind part of every training checkpoint: ``checkpoint["dualmind"]`` (stage, lexicon
fingerprint, model and decoder shapes, core fingerprint, RNG streams, ...), the lexicon check
every reader of a checkpoint makes, and the resume check of the settings that order the data.
Re-exported by dualmind.lit, where it was first defined."""

from __future__ import annotations

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


# Settings that decide which batch a step reads (and, for stage align, which QA pairs are mixed
# in): a resume that changes one continues the weights and optimizer, not the saved run's order.
DATA_ORDER_KEYS = ("data.seed", "data.batch_size", "data.seq_len",
                   "trainer.accumulate_grad_batches", "align.qa", "adapt.heldout_fraction")


def changed_data_settings(saved_cfg: dict | None, cfg: dict) -> list[str]:
    """``["data.batch_size: 4 -> 8", ...]`` for the DATA_ORDER_KEYS a resumed run changed; keys
    one of the two configs lacks are not compared (an older checkpoint, another stage)."""
    missing = object()

    def get(d, dotted: str):
        for part in dotted.split("."):
            if not isinstance(d, dict) or part not in d:
                return missing
            d = d[part]
        return d

    changed = []
    for key in DATA_ORDER_KEYS:
        old, new = get(saved_cfg or {}, key), get(cfg, key)
        if old is not missing and new is not missing and old != new:
            changed.append(f"{key}: {old} -> {new}")
    return changed


def warn_if_data_settings_changed(checkpoint: dict, cfg: dict) -> None:
    """On resume: say which order-deciding settings differ from the saved run's (a warning, not
    a refusal: continuing with another batch size can be deliberate)."""
    from lightning.pytorch.utilities import rank_zero_warn

    saved = (checkpoint.get("hyper_parameters") or {}).get("cfg")
    if changed := changed_data_settings(saved, cfg):
        rank_zero_warn(f"ckpt_path: resumed with other data settings ({'; '.join(changed)}): "
                       "weights and optimizer continue, the saved run's batch order does not")
