"""Adapting a trained hyper-core without trampling it (issue 7): LoRA through PEFT
(stage=lora, recipe=bridge_lora) and a partial unfreeze of the top blocks (stage=unfreeze,
recipe=core_unfreeze), trained on QA and pairs in hyperphrase space. See docs/adapters.md.

    from dualmind.adapters import load_adapter, merge
    core = load_adapter(core, "runs/bridge_lora/adapter")   # refuses an adapter of another core
    plain = merge(core)                                      # LoRA folded into the weights

PEFT itself is imported only when adapters are injected, saved or loaded.
"""

from __future__ import annotations

from dualmind.adapters.lora import (
    AdapterError,
    core_fingerprint,
    load_adapter,
    merge,
    read_adapter_meta,
    save_adapter,
)

__all__ = ["AdapterError", "core_fingerprint", "load_adapter", "merge", "read_adapter_meta",
           "save_adapter"]
