"""stage=lora and stage=unfreeze: adapt a trained core to the QA task, and nothing else moves.

    python train.py recipe=bridge_lora   data.dir=CORPUS core.checkpoint=CORE.ckpt
    python train.py recipe=core_unfreeze data.dir=CORPUS core.checkpoint=CORE.ckpt

Both load the core from `core.checkpoint` (a stage-core .ckpt or a `dualmind export` folder),
freeze all of it, and then open exactly one door:

    lora      PEFT LoRA layers on `lora.targets` (attention by default); only their A/B matrices
              train, the base weights stay bit-identical. At the end of training the adapters
              are written to <run_dir>/adapter (dualmind.adapters.lora's folder format).
    unfreeze  the top `unfreeze.top_k` blocks of the core train; embeddings, the lower blocks,
              the final norm and the (tied) output head stay bit-identical. The checkpoint holds
              the whole adapted core (`dualmind export` reads it).

Objective: the core's own next-symbol loss on the answers of the QA/pair examples
(:mod:`dualmind.train.qa_data`), plus, with adapt.kl_weight > 0, the guard
KL(frozen core || adapted core) averaged over every real position of the batch. Validation
reports the task loss on the held-out examples (val/loss, nats per answer symbol).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from dualmind.adapters import lora as lora_lib
from dualmind.adapters.settings import adapt_settings, lora_settings, unfreeze_settings
from dualmind.checkpoint.meta import CHECKPOINT_KEY
from dualmind.train.module import DualMindModule
from dualmind.train.qa_data import IGNORE
from dualmind.train.step_counts import StepCounts

ADAPTER_STAGES = ("lora", "unfreeze")
ADAPTER_DIR = "adapter"  # <run_dir>/adapter: the LoRA adapters of a finished stage-lora run


def unfreeze_top(core: torch.nn.Module, top_k: int) -> list[int]:
    """Freeze the whole core, then let only its top ``top_k`` blocks train; their indices."""
    core.requires_grad_(False)
    n = len(core.layers)
    for block in core.layers[n - top_k:]:
        block.requires_grad_(True)
    return list(range(n - top_k, n))


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor,
                    real: torch.Tensor) -> torch.Tensor:
    """Mean over the ``real`` positions of KL(reference || adapted), in nats, float32."""
    logp = F.log_softmax(logits.float(), dim=-1)
    ref_logp = F.log_softmax(ref_logits.float(), dim=-1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (kl * real).sum() / real.sum().clamp(min=1)


class AdapterModule(DualMindModule):
    STAGE_STEPS = {**DualMindModule.STAGE_STEPS, "lora": "_adapt_step",
                   "unfreeze": "_adapt_step"}
    # fsdp2: the core is loaded whole on each rank, adapted, then sharded in configure_model
    # (dualmind.distributed.adapter_sharding); tests/test_adapters_fsdp.py holds 2 ranks to one
    # process.
    SHARDED_STAGES = (*DualMindModule.SHARDED_STAGES, *ADAPTER_STAGES)

    def __init__(self, cfg: dict, lexicon_fingerprint: str | None = None):
        super().__init__(cfg, lexicon_fingerprint)
        if self.stage not in ADAPTER_STAGES:
            raise ValueError(f"AdapterModule trains stage lora or unfreeze, not {self.stage!r}")
        from dualmind.checkpoint.frozen_core import load_frozen_core

        if self.sharded:
            from dualmind.distributed.adapter_sharding import unsharded_core_to_adapt

            self.core = unsharded_core_to_adapt(self.core_config, self.strategy_cfg, self.stage)

        checkpoint = (cfg.get("core") or {}).get("checkpoint")
        if not checkpoint:
            raise ValueError(f"stage={self.stage} needs core.checkpoint=<a stage-core .ckpt or "
                             "a `dualmind export` folder>: it adapts a trained core")
        self.adapt = adapt_settings(cfg)
        n_layers = self.core_config.n_layers
        self.lora_cfg = lora_settings(cfg, n_layers) if self.stage == "lora" else None
        self.unfreeze_cfg = unfreeze_settings(cfg, n_layers) if self.stage == "unfreeze" else None
        meta = load_frozen_core(self.core, checkpoint, self.lexicon_fingerprint)
        if self.lexicon_fingerprint is None:
            self.lexicon_fingerprint = meta.get("lexicon_fingerprint")
        self.core_checkpoint = str(checkpoint)
        self.base_core_fingerprint = lora_lib.core_fingerprint(self.core)
        # The guard's frozen reference, outside the module tree: never saved, never trained.
        self._reference: list[torch.nn.Module] = []
        if self.stage == "lora":
            lora_lib.apply_lora(self.core, lora_lib.lora_config(self.lora_cfg))
        else:
            if self.adapt.kl_weight > 0:
                self._reference.append(copy.deepcopy(self.core).eval())
            self.unfrozen_layers = unfreeze_top(self.core, self.unfreeze_cfg.top_k)
        # load_frozen_core left the core in eval mode; the adapted core trains (LoRA dropout).
        self.core.train()
        self._kl: torch.Tensor | None = None

    def configure_model(self) -> None:
        """fsdp2: shard the adapted core (and the guard's frozen reference) over the mesh."""
        if self.sharded:
            from dualmind.distributed.adapter_sharding import shard_adapted

            shard_adapted(self.core, self._reference, self.device_mesh, self.parallel_options())

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    # ---- the step ------------------------------------------------------------------------------

    def _reference_logits(self, ids: torch.Tensor, doc_ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.stage == "lora":
                with lora_lib.adapters_disabled(self.core):
                    return self.core(ids, doc_ids=doc_ids).logits
            ref = self._reference[0]
            if ref.tok_embeddings.weight.device != ids.device:
                ref.to(ids.device)
            logits = ref(ids, doc_ids=doc_ids).logits
            if hasattr(ref, "reshard"):  # an FSDP2 root keeps its gathered params after a
                ref.reshard()  # forward, waiting for a backward that never comes
            return logits

    def _adapt_step(self, batch: dict[str, torch.Tensor]) -> StepCounts:
        ids, doc_ids, targets = batch["ids"], batch["doc_ids"], batch["targets"]
        guard = self.training and self.adapt.kl_weight > 0
        # The frozen forward first: switching LoRA off and on again resets requires_grad of
        # the adapters, which must not happen between the adapted forward and its backward.
        ref_logits = self._reference_logits(ids, doc_ids) if guard else None
        logits = self.core(ids, doc_ids=doc_ids).logits
        nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                              ignore_index=IGNORE, reduction="sum")
        self._kl = kl_to_reference(logits, ref_logits, batch["real"]) if guard else None
        return StepCounts(nll, (targets != IGNORE).sum(), batch["answer_bytes"].sum())

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)  # task loss, NaN guard, bookkeeping
        if self._kl is not None:
            self.log("train/kl_to_frozen", self._kl.detach())
            loss = loss + self.adapt.kl_weight * self._kl
        return loss

    # ---- what the run leaves behind ------------------------------------------------------------

    def settings_record(self) -> dict:
        return {
            "stage": self.stage,
            "adapt": dataclasses.asdict(self.adapt),
            "lora": dataclasses.asdict(self.lora_cfg) if self.lora_cfg else None,
            "unfreeze": dataclasses.asdict(self.unfreeze_cfg) if self.unfreeze_cfg else None,
            "trainable_parameters": self.num_trainable(),
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        meta = checkpoint[CHECKPOINT_KEY]
        meta["base_core_fingerprint"] = self.base_core_fingerprint
        meta["adapt"] = self.settings_record()

    def on_train_end(self) -> None:
        if self.stage != "lora":
            return
        # Sharded adapters are gathered by every rank (a collective); rank 0 writes them.
        state = lora_lib.lora_state_dict(self.core) if self.sharded else None
        if not self.trainer.is_global_zero:
            return
        out = Path(self.trainer.default_root_dir) / ADAPTER_DIR
        self.save_adapter(out, state)
        print(f"adapter: {out} (core {self.base_core_fingerprint}, "
              f"{self.num_trainable():,} trained parameters)")

    def save_adapter(self, out: str | Path, state: dict | None = None) -> Path:
        extra = {"core_checkpoint": self.core_checkpoint, "global_step": self.global_step,
                 **self.settings_record()}
        return lora_lib.save_adapter(self.core, out, lexicon_fingerprint=self.lexicon_fingerprint,
                                     core_fingerprint=self.base_core_fingerprint, extra=extra,
                                     state=state)
