"""val/qa_bpb of stage=align: the held-out QA pairs scored apart from the held-out scenes.

val/bpb stays the scenes' (comparable with runs from before QA pairs joined alignment); this
callback scores the held-out QA pairs (AlignDataModule.qa_val_dataloader: the questions the
adapters' benchmark holds out) at the end of every validation, with the module's own step, in
the validation precision, and logs their bits per answer byte. Nothing is logged when the corpus
has no held-out QA pairs or align.qa is off.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device


class QAValidation(L.Callback):
    def __init__(self, datamodule: Any):
        self.datamodule = datamodule
        self.last_bpb: float | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        loader = self.datamodule.qa_val_dataloader()
        if loader is None:
            return
        nll = text_bytes = 0.0
        with torch.no_grad(), trainer.precision_plugin.val_step_context():
            for batch in loader:  # every rank scores all of them: the same value everywhere
                counts = module._step(move_data_to_device(batch, module.device))
                nll += float(counts.nll_sum)
                text_bytes += float(counts.text_bytes)
        if text_bytes > 0:
            self.last_bpb = nll / (math.log(2) * text_bytes)
            module.log("val/qa_bpb", self.last_bpb)
