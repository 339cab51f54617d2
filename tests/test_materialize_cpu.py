"""Fresh weights of a model sharded on a CPU mesh: dualmind.distributed.parallel.materialize_core
must give what one process draws, in every layout.

DTensor's rank-local RNG only serves CUDA-like devices; on a CPU mesh every rank used to draw its
shard from the same seeded generator, so the shards came out equal (both halves of
tok_embeddings the same rows, the TP halves of wq equal) and a multi-rank CPU run of
strategy=fsdp2 from fresh weights trained a degenerate model. The parity tests load fixed
starting weights, so they could not see it. Two gloo ranks; the full tensors are gathered and
compared, bit for bit, with the unsharded model built from the same seed.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch

from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.decoder import LanguageDecoder
from dualmind.model.decoder_config import DecoderConfig
from dualmind.model.fingerprint import weights_fingerprint
from test_parallel_support import FSDP2_TWO_CPU_RANKS, spawn_ranks
from test_train_support import tiny_corpus, tiny_overrides

pytestmark = pytest.mark.multiprocess

SEED = 7


def _core_cfg(tie: bool) -> CoreConfig:
    return CoreConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=48,
                      max_seq_len=64, tie_embeddings=tie)


def _decoder_cfg() -> DecoderConfig:
    return DecoderConfig(vocab_size=64, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, ffn_dim=48,
                         core_dim=24, cross_every=2, gated=True)


def _sharded(build, mesh, seed: int):
    """Built on meta, sharded as training shards it, materialised on the CPU from ``seed``;
    returns it and the warnings of DTensor random ops on a CPU mesh it caused (the broken path
    drew through them)."""
    from dualmind.distributed.parallel import materialize_core, parallelize_core

    with torch.device("meta"):
        model = build()
    parallelize_core(model, mesh, param_dtype="float32", reduce_dtype="float32")
    torch.manual_seed(seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        materialize_core(model, "cpu")
    return model, [str(w.message) for w in caught if "DTensor random" in str(w.message)]


def _assert_one_process_init(model, build, where: str) -> dict[str, torch.Tensor]:
    """Every gathered parameter equals the one-process model drawn from SEED; returns them."""
    from torch.distributed.tensor import DTensor

    torch.manual_seed(SEED)
    reference = dict(build().named_parameters())
    full = {}
    for name, param in model.named_parameters():
        full[name] = param.full_tensor() if isinstance(param, DTensor) else param.detach()
        assert torch.equal(full[name], reference[name]), f"{where}: {name} differs from one process"
    assert full.keys() == reference.keys(), f"{where}: {sorted(full)} vs {sorted(reference)}"
    return full


def _halves_differ(weight: torch.Tensor, name: str) -> None:
    half = weight.shape[0] // 2
    assert not torch.equal(weight[:half], weight[half:]), f"{name}: both shards hold the same rows"


def _rank_main(rank: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    torch.set_num_threads(1)
    names = ("data_parallel", "tensor_parallel")

    # FSDP2, dp=2: every parameter sharded by rows over the two ranks; tied head.
    dp = init_device_mesh("cpu", (2, 1), mesh_dim_names=names)
    core, warned = _sharded(lambda: HyperCore(_core_cfg(tie=True)), dp, SEED)
    assert core.output.weight is core.tok_embeddings.weight  # the tie survives materialising
    full = _assert_one_process_init(core, lambda: HyperCore(_core_cfg(tie=True)), "fsdp2 core")
    _halves_differ(full["tok_embeddings.weight"], "tok_embeddings")
    _halves_differ(full["layers.0.attention.wq.weight"], "layers.0.attention.wq")
    assert not warned, warned[:1]

    # Tensor parallelism, tp=2: wq split by output rows between the ranks, the embedding and
    # norms replicated. The ranks start from different generator states here: replicated
    # parameters must still come out alike (rank 0's state is the one drawn from).
    tp = init_device_mesh("cpu", (1, 2), mesh_dim_names=names)
    core, warned = _sharded(lambda: HyperCore(_core_cfg(tie=False)), tp, SEED + 1000 * rank)
    full = _assert_one_process_init(core, lambda: HyperCore(_core_cfg(tie=False)), "tp core")
    _halves_differ(full["layers.0.attention.wq.weight"], "layers.0.attention.wq")
    _halves_differ(full["layers.1.feed_forward.w1.weight"], "layers.1.feed_forward.w1")
    assert not warned, warned[:1]

    # stage align's decoder (parallelize_align shards it like the core), dp=2.
    decoder, warned = _sharded(lambda: LanguageDecoder(_decoder_cfg()), dp, SEED)
    full = _assert_one_process_init(decoder, lambda: LanguageDecoder(_decoder_cfg()), "decoder")
    _halves_differ(full["tok_embeddings.weight"], "decoder tok_embeddings")
    assert not warned, warned[:1]


def test_cpu_mesh_materialises_the_one_process_init():
    spawn_ranks(_rank_main, 2, timeout_s=120)


# ---- end to end: what `train.py strategy=fsdp2 trainer.devices=2 trainer.accelerator=cpu` starts
# from (Lightning's seed_everything, configure_model) is what strategy=single starts from.

ONE_STEP = ["trainer.max_steps=1", "trainer.val_check_interval=1000",
            "trainer.checkpoint_every_n_steps=0", "trainer.precision=32-true",
            "trainer.num_threads=1"]


class RecordStart(L.Callback):
    """Writes the fingerprint of the core's full starting weights, and whether the two halves of
    tok_embeddings are equal, as rank 0 sees them."""

    def __init__(self, out: str):
        self.out = out

    def on_fit_start(self, trainer, module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = (get_model_state_dict(module.core, options=StateDictOptions(
                     full_state_dict=True, cpu_offload=True))  # whole on rank 0 only
                 if module.sharded else module.core.state_dict())
        if trainer.global_rank == 0:
            rows = state["tok_embeddings.weight"]
            half = rows.shape[0] // 2
            Path(self.out).write_text(json.dumps(
                [weights_fingerprint(state), torch.equal(rows[:half], rows[half:2 * half])]))


def _train_rank(rank: int, overrides: list[str], out: str) -> None:
    from dualmind.config.schema import compose
    from dualmind.train.loop import run

    run(compose(overrides), callbacks=[RecordStart(out)])


def test_fsdp2_cpu_run_starts_from_the_single_process_weights(tmp_path):
    from dualmind.config.schema import compose
    from dualmind.train.loop import run

    tiny_corpus()  # built here once, not in each rank
    single = tiny_overrides(tmp_path / "single", *ONE_STEP, "data.batch_size=4")
    run(compose(single), callbacks=[RecordStart(str(tmp_path / "single.json"))])
    sharded = tiny_overrides(tmp_path / "fsdp2", *ONE_STEP, "data.batch_size=2",
                             *FSDP2_TWO_CPU_RANKS)
    spawn_ranks(_train_rank, 2, sharded, str(tmp_path / "fsdp2.json"), timeout_s=180)

    want_fingerprint, want_halves_equal = json.loads((tmp_path / "single.json").read_text())
    got_fingerprint, halves_equal = json.loads((tmp_path / "fsdp2.json").read_text())
    assert not halves_equal, "the two ranks' shards of tok_embeddings hold the same rows"
    assert not want_halves_equal
    assert got_fingerprint == want_fingerprint, "fsdp2 starts from other weights than single"
