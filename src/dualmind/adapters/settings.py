"""The config groups of the adaptation stages, checked with their dotted names.

    adapt:     the task both stages train on (QA and pairs in hyperphrase space) and the guard
    lora:      stage=lora — rank, scale, dropout and which projections get adapters
    unfreeze:  stage=unfreeze — how many of the core's top layers train

`dualmind.config.schema.validate` only knows these groups exist; their keys are checked here, when
the module is built, so a misspelt `lora.rank` stops the run naming `lora.rank`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dualmind.config.schema import ConfigError

ATTENTION_TARGETS = ("wq", "wk", "wv", "wo")
MLP_TARGETS = ("w1", "w2", "w3")


class AdapterConfigError(ConfigError):
    """A bad value in the adapt/lora/unfreeze groups; the message names the key."""


@dataclass
class AdaptSettings:
    # Share of the QA/pair records held out for the task loss, chosen by a hash of the question,
    # so every answer to one question lands on the same side (no question is seen in training
    # and then scored).
    heldout_fraction: float = 0.1
    # Teach the core to stop: the answer is followed by the lexicon's EOS and its prediction is
    # part of the task loss (the bridge can then stop generating at EOS).
    answer_eos: bool = True
    # The guard: weight of KL(frozen core || adapted core) over every position of the batch
    # (0 = plain task loss). LoRA reads the frozen core by switching its adapters off; unfreeze
    # keeps a frozen copy.
    kl_weight: float = 0.0


@dataclass
class LoraSettings:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    # Names of the core's Linear layers to adapt: attention wq/wk/wv/wo, MLP w1/w2/w3.
    targets: list = field(default_factory=lambda: list(ATTENTION_TARGETS))
    # null = every block; or a list of block indices (e.g. the top two: [4, 5])
    layers: Any = None


@dataclass
class UnfreezeSettings:
    top_k: int = 2


def _parse(schema: type, values: Any, group: str):
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise AdapterConfigError(f"unknown config key '{group}.{unknown[0]}' "
                                 f"(known keys of {group}: {', '.join(sorted(known))})")
    return schema(**values)


def adapt_settings(cfg: dict) -> AdaptSettings:
    s = _parse(AdaptSettings, cfg.get("adapt"), "adapt")
    if not 0.0 < s.heldout_fraction < 1.0:
        raise AdapterConfigError(f"adapt.heldout_fraction={s.heldout_fraction} must be in (0, 1)")
    if s.kl_weight < 0:
        raise AdapterConfigError(f"adapt.kl_weight={s.kl_weight} must be >= 0")
    return s


def lora_settings(cfg: dict, n_layers: int) -> LoraSettings:
    s = _parse(LoraSettings, cfg.get("lora"), "lora")
    if s.r < 1:
        raise AdapterConfigError(f"lora.r={s.r} must be >= 1")
    if not 0.0 <= s.dropout < 1.0:
        raise AdapterConfigError(f"lora.dropout={s.dropout} must be in [0, 1)")
    s.targets = list(s.targets)
    bad = [t for t in s.targets if t not in ATTENTION_TARGETS + MLP_TARGETS]
    if not s.targets or bad:
        raise AdapterConfigError(
            f"lora.targets={s.targets}: choose from attention {list(ATTENTION_TARGETS)} and "
            f"MLP {list(MLP_TARGETS)}")
    if s.layers is not None:
        s.layers = sorted({int(i) for i in s.layers})
        if not s.layers or s.layers[0] < 0 or s.layers[-1] >= n_layers:
            raise AdapterConfigError(f"lora.layers={s.layers}: block indices in "
                                     f"[0, {n_layers}) (model.n_layers={n_layers}), or null")
    return s


def unfreeze_settings(cfg: dict, n_layers: int) -> UnfreezeSettings:
    s = _parse(UnfreezeSettings, cfg.get("unfreeze"), "unfreeze")
    if not 1 <= s.top_k <= n_layers:
        raise AdapterConfigError(f"unfreeze.top_k={s.top_k} must be in [1, {n_layers}] "
                                 f"(model.n_layers={n_layers})")
    return s
