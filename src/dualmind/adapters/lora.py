"""LoRA on the hyper-core through PEFT: inject, save, load, merge.

The adapters are injected in place (``peft.inject_adapter_in_model``), so the core stays a
:class:`~dualmind.model.core.HyperCore` — its forward, ``generate`` and KV cache work unchanged —
and only the targeted ``nn.Linear`` layers become ``peft`` LoRA layers around the frozen weight.

An adapter folder is PEFT's own format plus one file of ours:

    adapter_config.json         peft.LoraConfig.save_pretrained
    adapter_model.safetensors   the LoRA tensors, keyed as PeftModel.save_pretrained keys them
                                ("base_model.model.<module>.lora_A.weight"), so
                                ``PeftModel.from_pretrained(HyperCore(cfg), folder)`` reads it too
    dualmind.json               core_fingerprint (weights_fingerprint of the base core it was
                                trained on), lexicon_fingerprint, the core's shape, training facts
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from dualmind.adapters.settings import LoraSettings

ADAPTER_META = "dualmind.json"
ADAPTER_FORMAT = "dualmind-lora"
ADAPTER_FORMAT_VERSION = 1
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."  # PeftModel's key prefix in adapter_model.safetensors


class AdapterError(ValueError):
    """An adapter folder that cannot be used with this core; the message says why."""


def lora_config(settings: LoraSettings):
    from peft import LoraConfig

    extra = {}
    if settings.layers is not None:  # only these blocks of `layers` (the core's ModuleList)
        extra = {"layers_to_transform": list(settings.layers), "layers_pattern": "layers"}
    return LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=list(settings.targets), bias="none", **extra)


def lora_layers(core: nn.Module) -> list[nn.Module]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in core.modules() if isinstance(m, BaseTunerLayer)]


def apply_lora(core: nn.Module, config) -> nn.Module:
    """Inject LoRA layers into ``core`` in place; afterwards only LoRA parameters require grad."""
    from peft import inject_adapter_in_model

    if lora_layers(core):
        raise AdapterError("this core already carries LoRA adapters; merge() them or start "
                           "from a plain core")
    inject_adapter_in_model(config, core)
    for name, p in core.named_parameters():
        p.requires_grad_("lora_" in name)  # belt and braces: PEFT freezes the base already
    return core


def base_state_dict(core: nn.Module) -> dict[str, torch.Tensor]:
    """The plain HyperCore state dict of a core with or without LoRA: what it was before the
    adapters (their tensors dropped, ``.base_layer`` unwrapped). Fingerprints are taken of it."""
    return {k.replace(".base_layer.", "."): v for k, v in core.state_dict().items()
            if "lora_" not in k}


def core_fingerprint(core: nn.Module) -> str:
    from dualmind.model.fingerprint import weights_fingerprint

    return weights_fingerprint(base_state_dict(core))


@contextlib.contextmanager
def adapters_disabled(core: nn.Module) -> Iterator[nn.Module]:
    """Run the frozen base core (the KL guard's reference) without copying it."""
    layers = lora_layers(core)
    for m in layers:
        m.enable_adapters(False)
    try:
        yield core
    finally:
        for m in layers:
            m.enable_adapters(True)


def lora_state_dict(core: nn.Module) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(core)
    if not state:
        raise AdapterError("this core carries no LoRA adapters to save")
    # An FSDP2-sharded core holds DTensors: gathered whole (a collective: every rank calls this).
    return {PEFT_PREFIX + k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach()
            .to("cpu").contiguous() for k, v in state.items()}


def save_adapter(core: nn.Module, out: str | Path, *, lexicon_fingerprint: str | None,
                 core_fingerprint: str, extra: dict | None = None,
                 state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``core``'s LoRA adapters to ``out`` (PEFT format + dualmind.json). ``state``: the
    adapters' :func:`lora_state_dict`, when the caller gathered it already (sharded cores)."""
    from safetensors.torch import save_file

    import dualmind

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = core.peft_config["default"]
    config.save_pretrained(str(out))
    save_file(lora_state_dict(core) if state is None else state, str(out / PEFT_WEIGHTS),
              metadata={"format": "pt"})
    meta = {
        "format": ADAPTER_FORMAT,
        "format_version": ADAPTER_FORMAT_VERSION,
        "dualmind_version": dualmind.__version__,
        "core_fingerprint": core_fingerprint,
        "lexicon_fingerprint": lexicon_fingerprint,
        "model": core.cfg.to_dict(),
        **(extra or {}),
    }
    (out / ADAPTER_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return out


def read_adapter_meta(adapter_dir: str | Path) -> dict:
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise AdapterError(f"{adapter_dir}: no such adapter folder")
    for name in (ADAPTER_META, PEFT_CONFIG, PEFT_WEIGHTS):
        if not (adapter_dir / name).is_file():
            raise AdapterError(f"{adapter_dir}: {name} is missing (an adapter folder holds "
                               f"{PEFT_CONFIG}, {PEFT_WEIGHTS} and {ADAPTER_META})")
    meta = json.loads((adapter_dir / ADAPTER_META).read_text(encoding="utf-8"))
    if meta.get("format") != ADAPTER_FORMAT:
        raise AdapterError(f"{adapter_dir / ADAPTER_META}: format {meta.get('format')!r}, "
                           f"expected {ADAPTER_FORMAT!r}")
    if meta.get("format_version", 0) > ADAPTER_FORMAT_VERSION:
        raise AdapterError(f"{adapter_dir / ADAPTER_META}: format_version "
                           f"{meta['format_version']} is newer than this dualmind reads "
                           f"({ADAPTER_FORMAT_VERSION}); upgrade dualmind")
    return meta


def load_adapter(core: nn.Module, adapter_dir: str | Path,
                 expect_lexicon: str | None = None) -> nn.Module:
    """Apply the adapters of ``adapter_dir`` to ``core`` (in place) and return it, in eval mode.

    Refused with AdapterError when the core is not the one the adapters were trained on (its
    weights fingerprint differs; both are named) or, given ``expect_lexicon``, when the adapters
    were trained with another lexicon.
    """
    from peft import LoraConfig, set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    meta = read_adapter_meta(adapter_dir)
    if lora_layers(core):
        raise AdapterError(f"{adapter_dir}: the core already carries LoRA adapters; load onto "
                           "a plain core")
    have = core_fingerprint(core)
    want = meta.get("core_fingerprint")
    if want != have:
        raise AdapterError(
            f"{adapter_dir}: adapter was trained on core {want}, but this core is {have}; "
            f"an adapter only fits the exact weights it was trained on — load the core it was "
            f"trained on (its checkpoint: {meta.get('core_checkpoint', 'see dualmind.json')})")
    lex = meta.get("lexicon_fingerprint")
    if expect_lexicon is not None and lex is not None and lex != expect_lexicon:
        raise AdapterError(f"{adapter_dir}: adapter was trained with lexicon {lex}, but "
                           f"lexicon {expect_lexicon} is in use")
    config = LoraConfig.from_pretrained(str(adapter_dir))
    config.inference_mode = True
    state = load_file(str(adapter_dir / PEFT_WEIGHTS))
    state = {k[len(PEFT_PREFIX):] if k.startswith(PEFT_PREFIX) else k: v
             for k, v in state.items()}
    apply_lora(core, config)
    result = set_peft_model_state_dict(core, state)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        raise AdapterError(f"{adapter_dir / PEFT_WEIGHTS} does not match its "
                           f"{PEFT_CONFIG}: missing {missing[:3]}, unexpected "
                           f"{list(result.unexpected_keys)[:3]}")
    core.requires_grad_(False)
    return core.eval()


def merge(core: nn.Module) -> nn.Module:
    """Fold the LoRA deltas into the base weights and drop the adapter layers: a plain HyperCore
    again (same forward up to float rounding), ready for `dualmind export`-style saving."""
    layers = lora_layers(core)
    if not layers:
        raise AdapterError("this core carries no LoRA adapters to merge")
    parents = {id(m): (parent, name) for parent in core.modules()
               for name, m in parent.named_children()}
    with torch.no_grad():
        for layer in layers:
            layer.merge()
            parent, name = parents[id(layer)]
            setattr(parent, name, layer.get_base_layer())
    for attr in ("peft_config", "_hf_peft_config_loaded"):
        if attr in core.__dict__:
            delattr(core, attr)
    return core
