"""The one LightningModule of dualmind: `stage` decides what trains.

stage=core   next-symbol prediction on packed hyperphrase sequences (this module, issue 3).
stage=lm     the BPE baseline: the same model class over the decoder's text tokens, no core.
stage=align  the language decoder against a frozen core (issue 4, :mod:`dualmind.train.align`): the
             core is loaded from `core.checkpoint` and frozen, only the decoder trains, and
             "symbols" below are text tokens, bpb the decoder's bits per byte of the text. The
             metrics, optimizer, schedule, checkpoint metadata and NaN guard are shared.

Metrics (per step, then per validation run from summed counts, never a mean of ratios):
    loss              mean NLL per predicted symbol, nats
    bits_per_symbol   loss / ln 2
    bpb               bits per byte of the underlying text: sum NLL / (ln 2 * text bytes of the
                      predicted units) — the honest yardstick, comparable with a BPE model's bpb
    symbols_per_s, bytes_per_s, lr, flops_per_step (CoreConfig.flops_per_token), flops_total
                      (all of the global batch: every data-parallel rank's batch, once)
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import torch
from torchmetrics import SumMetric

from dualmind.checkpoint.frozen_core import check_core_pairing
from dualmind.checkpoint.meta import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KEY,
    check_lexicon,
    checkpoint_metadata,
    row_context,
)
from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.loss import next_symbol_nll
from dualmind.model.step_flops import align_step_flops, lm_step_flops
from dualmind.train.step_counts import StepCounts, global_batch
from dualmind.train.unit_pieces_setup import adopt_unit_pieces, fill_unit_pieces

LN2 = math.log(2.0)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; training stops before that update is applied."""


class DualMindModule(L.LightningModule):
    def __init__(self, cfg: dict, lexicon_fingerprint: str | None = None):
        """cfg: the run's resolved config as a plain dict (stage, model, data, optim, trainer)."""
        super().__init__()
        adopt_unit_pieces(cfg)  # before the hyperparameters are saved: the checkpoint says them
        self.save_hyperparameters()
        self.cfg = cfg
        self.stage = cfg["stage"]
        self.lexicon_fingerprint = lexicon_fingerprint
        self.core_config = CoreConfig.from_dict(cfg["model"], source="cfg.model")
        self.strategy_cfg = cfg.get("strategy", {})
        self.sharded = self.strategy_cfg.get("name") == "fsdp2"
        # Positions per chunk of the core's loss (dualmind.model.loss); 0: full logits at once.
        self.loss_chunk = int(self.strategy_cfg.get("loss_chunk", 0) or 0)
        if self.sharded and self.stage not in self.SHARDED_STAGES:
            raise NotImplementedError(
                f"strategy=fsdp2 trains stages {self.SHARDED_STAGES}, not stage={self.stage!r}; "
                f"use strategy=single or strategy=ddp"
            )
        # fsdp2: built on meta, sharded and materialised rank-locally in configure_model, so a
        # 70B core never exists whole in one process.
        with torch.device("meta") if self.sharded else torch.device("cpu"):
            self.core = HyperCore(self.core_config)
        if self.core_config.unit_pieces:
            fill_unit_pieces(self.core, cfg, self.stage, self.sharded)
        self.decoder = None
        if self.stage == "align":
            self._build_align(cfg)
        if self.stage not in self.STAGE_STEPS:
            raise NotImplementedError(
                f"stage={self.stage!r} is not implemented yet "
                f"(available: {sorted(self.STAGE_STEPS)})"
            )
        seq_len = cfg["data"]["seq_len"]
        self.symbols_per_batch = cfg["data"]["batch_size"] * seq_len
        self.flops_per_symbol = self.core_config.flops_per_token(seq_len)
        self.val_nll, self.val_symbols, self.val_bytes = SumMetric(), SumMetric(), SumMetric()
        self.history: dict[str, list] = {"train": [], "val": []}
        self._t_batch: float | None = None
        self._flops_total = 0.0
        self._step_flops = 0.0
        self._grad_norm: torch.Tensor | None = None
        # dualmind.train.rng_state.TrainingRNG, made once the rank is known
        self._training_rng = None

    def configure_model(self) -> None:
        """fsdp2 only: shard the plain core (and in align the decoder) over Lightning's device
        mesh (dualmind.distributed.parallel), then allocate each rank's shards: initialised for
        what trains, read from core.checkpoint for align's frozen core. Other strategies keep eager
        models."""
        if not self.sharded or not any(p.is_meta for p in self.parameters()):
            return
        from dualmind.distributed.parallel import (
            materialize_core,
            materialize_frozen_core,
            parallelize_align,
            parallelize_core,
        )

        options = self.parallel_options()
        device = self.trainer.strategy.root_device
        if self.stage == "align":
            parallelize_align(self.core, self.decoder, self.device_mesh, **options)
            materialize_frozen_core(self.core, device, self._core_checkpoint)
            # Recorded in checkpoints. From an export folder: its recorded fingerprint, after
            # checking every tensor's shape and re-hashing a sample
            # (dualmind.checkpoint.core_verify).
            from dualmind.checkpoint.core_verify import verified_fingerprint

            self.core_fingerprint, how = verified_fingerprint(
                self.core, self._core_checkpoint,
                (self.cfg.get("core") or {}).get("verify_tensors"))
            if self.trainer.global_rank == 0:
                print(f"core fingerprint {self.core_fingerprint}: {how}", flush=True)
            materialize_core(self.decoder, device)
            if self.decoder_config.copy_slots:  # a buffer, not a weight: init leaves it empty
                self.decoder.memory.set_surfaces(self._surfaces.to(device))
            return
        parallelize_core(self.core, self.device_mesh, **options)
        materialize_core(self.core, device)

    def parallel_options(self) -> dict:
        """strategy.* as dualmind.distributed.parallel.parallelize_core takes them."""
        s = self.strategy_cfg
        return dict(
            activation_checkpointing=s.get("activation_checkpointing", "none"),
            compile=bool(s.get("compile", False)),
            param_dtype=s.get("param_dtype"),
            reduce_dtype=s.get("reduce_dtype"),
        )

    # ---- stages ---------------------------------------------------------------------------------

    STAGE_STEPS = {"core": "_core_step", "align": "_align_step", "lm": "_lm_step"}
    # Stages strategy=fsdp2 can shard (configure_model); a subclass adding a stage extends it.
    SHARDED_STAGES = ("core", "lm", "align")

    def _step(self, batch: dict[str, torch.Tensor]) -> StepCounts:
        return getattr(self, self.STAGE_STEPS[self.stage])(batch)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """What the optimizer sees: in align only the decoder's parameters, never the core's."""
        if self.stage == "align":
            return list(self.decoder.parameters())
        return [p for p in self.parameters() if p.requires_grad]

    def _build_align(self, cfg: dict) -> None:
        from dualmind.checkpoint.sharded_load import core_checkpoint_meta, load_frozen_core_any
        from dualmind.model.decoder import LanguageDecoder

        if not cfg.get("decoder"):
            raise ValueError("stage=align needs a decoder config (decoder=mini, or "
                             "recipe=decoder_align)")
        checkpoint = (cfg.get("core") or {}).get("checkpoint")
        if not checkpoint:
            raise ValueError("stage=align needs core.checkpoint=<a stage-core .ckpt, sharded "
                             "checkpoint folder or `dualmind export` folder>: the decoder reads "
                             "a trained core")
        from dualmind.model.decoder_config import DecoderConfig

        self.decoder_config = DecoderConfig.for_core(cfg["decoder"], self.core_config)
        if self.sharded:
            # Both built on meta: configure_model shards them, fills the core's shards from the
            # checkpoint rank-locally and initialises the decoder's. Only metadata is read here.
            with torch.device("meta"):
                self.decoder = LanguageDecoder(self.decoder_config)
            meta = core_checkpoint_meta(checkpoint, self.lexicon_fingerprint)
            self.core.requires_grad_(False)
            self._core_checkpoint = checkpoint
        else:  # a .ckpt, an export folder, or an fsdp2 run's sharded folder, read whole
            self.decoder = LanguageDecoder(self.decoder_config)
            meta = load_frozen_core_any(self.core, checkpoint, self.lexicon_fingerprint)
        if self.decoder_config.copy_slots:
            from dualmind.train.surfaces import surface_table_for_run

            self._surfaces = surface_table_for_run(cfg, self.decoder_config)
            if not self.sharded:
                self.decoder.memory.set_surfaces(self._surfaces)
        self.core_fingerprint = meta.get("core_fingerprint")  # issue 4; fsdp2: configure_model
        if self.lexicon_fingerprint is None:
            self.lexicon_fingerprint = meta.get("lexicon_fingerprint")

    def train(self, mode: bool = True):
        super().train(mode)
        if self.stage == "align":
            self.core.eval()  # frozen: Lightning's model.train() must not flip it back
        return self

    def _align_step(self, batch: dict) -> StepCounts:
        from dualmind.train.align import core_states, decoder_nll

        states = core_states(self.core, batch, self.decoder_config.core_read)
        if self.sharded:  # an FSDP2 root keeps its gathered params after forward (its blocks
            self.core.reshard()  # reshard themselves), waiting for a backward that never comes
        nll, tokens, _ = decoder_nll(self.decoder, states, batch)
        return StepCounts(nll, tokens, batch["text_bytes"].sum())

    def _lm_step(self, batch: dict) -> StepCounts:
        """stage=lm, the BPE baseline (recipe=baseline_bpe_mini): the same model class as the core,
        read over the decoder's text tokens of the aligned rows, no core states anywhere."""
        from dualmind.model.loss import IGNORE
        from dualmind.train.align import core_doc_ids

        targets = batch["targets"]
        nll = next_symbol_nll(self.core, batch["text_ids"], targets, chunk=self.loss_chunk,
                              doc_ids=core_doc_ids(batch["alignment"].text_doc),
                              ignore_index=IGNORE)
        return StepCounts(nll, (targets != IGNORE).sum(), batch["text_bytes"].sum())

    def _core_step(self, batch: dict[str, torch.Tensor]) -> StepCounts:
        targets = batch["targets"]
        nll = next_symbol_nll(self.core, batch["ids"], targets, doc_ids=batch["doc_ids"],
                              chunk=self.loss_chunk)
        return StepCounts(
            nll, torch.tensor(targets.numel(), device=nll.device), batch["target_bytes"].sum()
        )

    # ---- training -------------------------------------------------------------------------------

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._t_batch = time.perf_counter()

    def data_parallel(self) -> tuple[int, int]:
        """(rank, size) in the data-parallel dimension: tensor-parallel peers share both."""
        from dualmind.train.datamodule import data_parallel_position

        return data_parallel_position(self._trainer)

    def batch_flops(self, batch: dict) -> float:
        """Training FLOPs of this rank's batch, as one process would spend them, counted as
        benchmarks/equal_compute_flops.py counts them (trainer.max_flops stops on this count)."""
        if self.stage == "align":  # the decoder's training + the frozen core's forward
            return align_step_flops(self.core_config, self.decoder.cfg, batch)
        if self.stage == "lm":  # text rows differ in length: attention at the batch's own
            return lm_step_flops(self.core_config, batch)
        from dualmind.model.loss import IGNORE

        # core: full packed rows, every target real; the adapter stages pad with IGNORE
        return self.flops_per_symbol * float((batch["targets"] != IGNORE).sum())

    @property
    def flops_total(self) -> float:
        """Training FLOPs spent so far (global batches; restored on resume)."""
        return self._flops_total

    def _rng_states(self) -> list[dict] | None:
        from dualmind.train.rng_state import gather_states

        if self._trainer is None:
            return None
        return gather_states(self.training_rng(), self.trainer.world_size)

    def training_rng(self):
        """This rank's stream of training-step randomness (saved in checkpoints, resumed)."""
        if self._training_rng is None:
            from dualmind.train.rng_state import TrainingRNG

            # Seeded by the data-parallel rank: the ranks of one tensor-parallel group draw the
            # same numbers, as they must, since a step's randomness (LoRA dropout, noise) shapes
            # activations the group holds replicated (each rank computes a share of one block).
            self._training_rng = TrainingRNG(int(self.cfg.get("seed", 0)), self.data_parallel()[0])
        return self._training_rng

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        with self.training_rng().active():  # a resumed run makes the same draws
            counts = self._step(batch)
        dp = self.data_parallel()[1]  # once per step: each call slices the device mesh
        total, self._step_flops = global_batch(counts, self.batch_flops(batch),
                                               self.trainer.world_size, dp)
        # Each rank's NLL over the *global* number of predicted symbols, times the data-parallel
        # size: the gradients DDP/FSDP2 average over data-parallel ranks are those of the global
        # mean however symbols split between ranks (align rows differ in length). TP peers compute
        # this same loss from the same batch; tensor parallelism's collectives give each share of
        # the split weights its gradient of that one loss, so a group counts its batch once.
        loss = counts.nll_sum * (dp / float(total.symbols.clamp(min=1)))
        # Judged on the all-rank sum, which every rank holds: all ranks stop together, none is
        # left waiting in a collective for a rank that raised.
        if not (torch.isfinite(total.nll_sum) and torch.isfinite(loss)):
            ckpt = (
                getattr(self.trainer.checkpoint_callback, "last_model_path", "")
                or "none written yet"
            )
            raise NonFiniteLossError(
                # numbered as the progress line numbers it (step 1 is the first update)
                f"training loss is {float(total.loss.detach())} at step {self.global_step + 1} "
                f"(batch {batch_idx}); stopped before applying this update, after "
                f"{self.global_step} good ones. Last good checkpoint: {ckpt}. "
                "Lower optim.lr, "
                f"check the data, or resume with ckpt_path=last"
            )
        self._last_total = total
        # Counted here, not in on_train_batch_end: Lightning runs the callbacks' hooks (the
        # checkpoint's save) before the module's, so a checkpoint would miss its own last step.
        self._flops_total += self._step_flops
        self._lr = self.trainer.optimizers[0].param_groups[0]["lr"]  # the lr this update uses
        return loss

    @property
    def last_counts(self) -> StepCounts | None:
        """The global batch of the newest training step: callbacks, which Lightning calls before
        this module's on_train_batch_end, read it (dualmind.train.progress)."""
        return getattr(self, "_last_total", None)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Everything of one batch is logged here, after its optimizer step, so that one CSV row
        # (keyed by global_step) holds the loss, rate and lr of the same step.
        dt = time.perf_counter() - (self._t_batch or time.perf_counter())
        total, step_flops = self._last_total, self._step_flops
        # All of the global batch (every data-parallel rank's, each once): loss, bpb, rates and
        # FLOPs, so flops_total is the run's compute whatever the number of ranks and layout.
        loss = total.loss.detach().float()
        bpb = (total.nll_sum.detach() / (LN2 * total.text_bytes.clamp(min=1))).float()
        symbols, text_bytes = float(total.symbols), float(total.text_bytes)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/bits_per_symbol", loss / LN2)
        self.log("train/bpb", bpb, prog_bar=True)
        if dt > 0:
            self.log("train/symbols_per_s", symbols / dt)
            self.log("train/bytes_per_s", text_bytes / dt)
        self.log("train/lr", self._lr)
        self.log("train/flops_per_step", step_flops)
        self.log("train/flops_total", self._flops_total)
        if self._grad_norm is not None:
            self.log("train/grad_norm", self._grad_norm)
        self.history["train"].append(
            {"step": self.global_step, "loss": float(loss), "bpb": float(bpb), "seconds": dt}
        )

    # ---- validation -----------------------------------------------------------------------------

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        counts = self._step(batch)
        self.val_nll.update(counts.nll_sum.float())
        self.val_symbols.update(counts.symbols.float())
        self.val_bytes.update(counts.text_bytes.float())

    def on_validation_epoch_end(self) -> None:
        nll, symbols, text_bytes = (
            self.val_nll.compute(),
            self.val_symbols.compute(),
            self.val_bytes.compute(),
        )
        for metric in (self.val_nll, self.val_symbols, self.val_bytes):
            metric.reset()
        if symbols <= 0:
            return
        loss = nll / symbols
        bpb = nll / (LN2 * text_bytes.clamp(min=1))
        # Already summed over ranks by the metrics; sync_dist only keeps Lightning content.
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        self.log("val/bits_per_symbol", loss / LN2, sync_dist=True)
        self.log("val/bpb", bpb, prog_bar=True, sync_dist=True)
        if not self.trainer.sanity_checking:
            self.history["val"].append(
                {"step": self.global_step, "loss": float(loss), "bpb": float(bpb)}
            )

    # ---- optimizer ------------------------------------------------------------------------------

    def configure_optimizers(self):
        from dualmind.train.optim import adamw, warmup_cosine

        o = self.cfg["optim"]
        optimizer = adamw(self.trainable_parameters(), o)
        total = (
            self.trainer.max_steps
            if self.trainer.max_steps and self.trainer.max_steps > 0
            else int(self.trainer.estimated_stepping_batches)
        )
        schedule = warmup_cosine(o["warmup_steps"], max(total, 1), o["min_lr_ratio"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ):
        """Clip here rather than in Lightning's AMP plugin, which refuses fused optimizers even
        under bf16 where no loss scaler exists to unscale, and under fp16 takes one norm over
        all gradients, which fails when tensor parallelism puts them on several meshes; also
        logs the gradient norm."""
        if not gradient_clip_val:
            return
        from dualmind.train.grad_clip import clip_gradients, unscale_before_clipping

        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is not None:  # fp16: the norm of the true gradients, not the scaled ones
            unscale_before_clipping(scaler, optimizer)

        params = [p for group in optimizer.param_groups for p in group["params"]]
        norm = clip_gradients(params, gradient_clip_val, gradient_clip_algorithm)
        if norm is not None:
            self._grad_norm = norm

    # ---- checkpoints ----------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        import dualmind

        checkpoint[CHECKPOINT_KEY] = {
            "format": CHECKPOINT_FORMAT,
            "dualmind_version": dualmind.__version__,
            "stage": self.stage,
            "lexicon_fingerprint": self.lexicon_fingerprint,
            "model": self.core_config.to_dict(),
            "decoder": self.decoder_config.to_dict() if self.decoder is not None else None,
            "core_checkpoint": (self.cfg.get("core") or {}).get("checkpoint"),
            "core_fingerprint": getattr(self, "core_fingerprint", None),  # dualmind.train.align
            "context": row_context(self.cfg),  # the rows trained on: `dualmind eval` reuses them
            "flops_total": self._flops_total,
            "flops_scope": "global",  # every rank's batch, once (older: rank 0's)
            "rng": self._rng_states(),  # every rank's (a collective: all ranks save together)
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint_metadata(checkpoint)
        check_lexicon(meta, self.lexicon_fingerprint)
        if self.stage == "align":  # a decoder resumed beside another core than its own: refuse
            check_core_pairing(meta.get("core_fingerprint"), getattr(self, "core_fingerprint",
                               None), where="ckpt_path", core=self.cfg["core"]["checkpoint"])
        if self.lexicon_fingerprint is None:
            self.lexicon_fingerprint = meta.get("lexicon_fingerprint")
        self._flops_total = float(meta.get("flops_total", 0.0))
        if self._trainer is not None:  # read outside training: no random stream to continue
            from dualmind.checkpoint.meta import warn_on_resume
            from dualmind.train.rng_state import resume

            warn_on_resume(checkpoint, self.cfg, self.data_parallel()[1])

            resume(self.training_rng(), meta.get("rng"), int(checkpoint.get("global_step", 0)),
                   *self.data_parallel())
