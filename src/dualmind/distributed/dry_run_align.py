"""`train.py recipe=decoder_align_70b trainer.dry_run=true`: plan what a stage-align run holds.

Stage align trains a language decoder that reads a frozen core, so the plan is not the core's
training plan: the core is held as parameter shards only (no gradients, no optimizer state; its
forward runs under no_grad one block at a time), the decoder as a trained model under the
precision policy, and the core states of the rows wait beside the decoder for its cross-attention.
Both models are built on ``meta`` and sharded with the real
dualmind.distributed.parallel.parallelize_align over a fake process group of the configured world
size (dualmind.distributed.dry_run_world.fake_mesh), so parameter counts and shard sizes are read
off the sharded modules; the memory split is dualmind.plan.align_memory's, the FLOPs per step
dualmind.model.step_flops.align_step_flops (what training logs). Refuses (exit 2, from
dualmind.distributed.dry_run.main) a plan that does not fit, saying by how much.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from dualmind.distributed.dry_run_world import (
    DryRunError,
    fake_mesh,
    local_params,
    policy_of,
    shortfall_message,
    world_of,
)
from dualmind.plan.align_memory import AlignMemory, align_memory
from dualmind.plan.memory import PRECISIONS
from dualmind.plan.units import human_count, human_gib


@dataclass
class AlignDryRun:
    name: str
    world_size: int
    core_params: int
    core_shard_params: int  # rank 0's shard: the largest (FSDP2 pads the last ranks)
    decoder_params: int
    decoder_shard_params: int
    n_cross: int
    memory: AlignMemory
    hbm_bytes: float
    core_symbols_per_step: int
    text_tokens_per_step: int
    flops_per_step: float
    build_s: float

    @property
    def min_gpus(self) -> int | None:
        return self.memory.min_gpus(self.world_size)

    def report(self) -> str:
        m, g = self.memory, human_gib
        weight_b, state_b = PRECISIONS[m.precision][0], sum(PRECISIONS[m.precision])
        lines = [
            f"dry run: {self.name} (stage align) on {self.world_size} GPUs (data parallel "
            f"{self.world_size}), core and decoder built on meta and sharded with "
            f"parallelize_align in {self.build_s:.2f} s, nothing allocated",
            f"  frozen core           {self.core_params:,} parameters "
            f"({human_count(self.core_params)}), per-rank shard {self.core_shard_params:,}",
            f"  decoder (trained)     {self.decoder_params:,} parameters "
            f"({human_count(self.decoder_params)}), per-rank shard {self.decoder_shard_params:,}",
            f"  precision policy      {m.precision}: core {weight_b} B/param (weights only), "
            f"decoder {state_b} B/param (weights + grads + AdamW), compute bf16",
            "  per GPU  held throughout:",
            f"             core shard   {g(m.core_shard)}  (parameters only: no grads, "
            "no optimizer state)",
            f"             decoder      {g(m.decoder_state)}  (params + grads + AdamW, sharded)",
            f"           core forward   {g(m.core_phase)}  (no_grad, freed before the decoder "
            "runs):",
            f"             working set  {g(m.core_working)}  (root + 2 gathered blocks, bf16)",
            f"             activations  {g(m.core_activations)}  (one block at a time, "
            f"{m.rows} x {m.core_len} symbols)",
            f"           decoder step   {g(m.decoder_phase)}  (forward + backward):",
            f"             cross inputs {g(m.cross_inputs)}  (the rows' core states, bf16, "
            "and cross mask)",
            f"             working set  {g(m.decoder_working)}  (gathered blocks, their grads, "
            "root)",
            f"             activations  {g(m.decoder_activations)}  "
            f"(checkpointing={m.checkpointing}, {m.rows} x {m.text_len} text tokens, "
            f"{self.n_cross} cross-attention layers)",
            f"             logits       {g(m.decoder_logits)}  (text vocabulary)",
            f"           total        {g(m.per_gpu)} of {g(m.usable_hbm)} usable "
            f"({g(self.hbm_bytes)} HBM less headroom; peak in the {m.peak_phase})",
            f"  tokens per step       {self.core_symbols_per_step:,} core symbols, "
            f"{self.text_tokens_per_step:,} text tokens (full rows)",
            f"  FLOPs per step        {self.flops_per_step:.3e}  (decoder training + core "
            "forward, dualmind.model.step_flops.align_step_flops)",
        ]
        if self.min_gpus is not None:
            lines.append(f"  fits from             {8 * -(-self.min_gpus // 8)} GPUs (nodes of 8)")
        lines.append("  verdict               " + ("fits" if m.fits else "DOES NOT FIT"))
        return "\n".join(lines)

    def shortfall(self) -> str:
        return shortfall_message(self.name, self.memory, self.hbm_bytes, self.min_gpus,
                                 "data.batch_size / data.seq_len / decoder.max_seq_len")


def _block_and_root(module) -> tuple[int, int]:
    """(parameters of the largest block, parameters outside the blocks) of a core or decoder:
    what FSDP2 gathers per block and keeps gathered at the root."""
    blocks = [sum(p.numel() for p in b.parameters()) for b in module.layers]
    return max(blocks), sum(p.numel() for p in module.parameters()) - sum(blocks)


def _step_flops(core_cfg, decoder_cfg, rows: int, core_len: int, text_len: int) -> float:
    """align_step_flops of one micro-batch of full rows (every core unit and text token real);
    the batch is shape-only: expanded scalars and meta tensors, nothing the size of a row."""
    from types import SimpleNamespace

    import torch

    from dualmind.model.step_flops import align_step_flops

    batch = {"alignment": SimpleNamespace(core_doc=torch.zeros((), dtype=torch.long)
                                          .expand(rows, core_len)),
             "targets": torch.zeros((), dtype=torch.long).expand(rows, text_len),
             "core_ids": torch.empty(rows, core_len, dtype=torch.long, device="meta"),
             "text_ids": torch.empty(rows, text_len, dtype=torch.long, device="meta")}
    return align_step_flops(core_cfg, decoder_cfg, batch)


def dry_run_align(cfg: DictConfig) -> AlignDryRun:
    """Build both models on meta, shard them as training does, size one align step."""
    import torch

    from dualmind.checkpoint.meta import row_context
    from dualmind.distributed.parallel import parallelize_align
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig
    from dualmind.plan.shape import from_core_config

    s, t = cfg.strategy, cfg.trainer
    if s.name != "fsdp2":
        raise DryRunError(f"strategy={s.name}: the stage-align dry run plans strategy=fsdp2 "
                          "(the frozen core and the decoder sharded by parallelize_align)")
    if not cfg.get("decoder"):
        raise DryRunError("stage=align needs a decoder config (decoder=8b, or a decoder recipe)")
    world, tp, hbm = world_of(cfg)
    precision = policy_of(cfg)
    core_cfg = CoreConfig.from_dict(dict(cfg.model), source="cfg.model")
    decoder_cfg = DecoderConfig.from_dict(dict(cfg.decoder), source="cfg.decoder")
    context = row_context(OmegaConf.to_container(cfg, resolve=True))
    rows, core_len, text_len = int(cfg.data.batch_size), context["core"], context["text"]

    start = time.perf_counter()
    with torch.device("meta"):
        core, decoder = HyperCore(core_cfg), LanguageDecoder(decoder_cfg)
    core_params = sum(p.numel() for p in core.parameters())
    decoder_params = sum(p.numel() for p in decoder.parameters())
    core_block, core_root = _block_and_root(core)
    decoder_block, decoder_root = _block_and_root(decoder)
    with fake_mesh(world, tp) as mesh:  # parallelize_align refuses TP; dry_run.main reports it
        parallelize_align(core, decoder, mesh, activation_checkpointing=s.activation_checkpointing,
                          param_dtype=s.get("param_dtype"), reduce_dtype=s.get("reduce_dtype"))
        core_shard, decoder_shard = local_params(core), local_params(decoder)
    build_s = time.perf_counter() - start

    memory = align_memory(
        core=from_core_config(core_cfg, cfg.name), core_shard_params=core_shard,
        core_block_params=core_block, core_root_params=core_root,
        text_stack=from_core_config(decoder_cfg.text_stack(), f"{cfg.name}-decoder"),
        decoder_shard_params=decoder_shard, decoder_block_params=decoder_block,
        decoder_root_params=decoder_root, n_cross=decoder_cfg.n_cross,
        core_dim=decoder_cfg.core_dim, hbm_bytes=hbm, rows=rows, core_len=core_len,
        text_len=text_len, checkpointing=s.activation_checkpointing, precision=precision)
    micro_batches = world * int(t.accumulate_grad_batches)  # per optimizer step, all GPUs
    return AlignDryRun(
        name=cfg.name, world_size=world, core_params=core_params, core_shard_params=core_shard,
        decoder_params=decoder_params, decoder_shard_params=decoder_shard,
        n_cross=decoder_cfg.n_cross, memory=memory, hbm_bytes=hbm,
        core_symbols_per_step=rows * core_len * micro_batches,
        text_tokens_per_step=rows * text_len * micro_batches,
        flops_per_step=_step_flops(core_cfg, decoder_cfg, rows, core_len, text_len)
        * micro_batches,
        build_s=build_s)
