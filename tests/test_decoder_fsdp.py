"""The decoder under FSDP2 mixed precision, sharded per block and at the root as the training code
does (bf16 parameters, one CPU process with gloo), fed fp32 core states: it runs, matches the fp32
model to bf16 precision, and every parameter gets a gradient. Run in a subprocess so the process
group never touches the test session."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import os, sys, torch, torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    torch.set_num_threads(1)
    # A file store, not a TCP port: a port picked free can be taken before gloo binds it.
    store = os.path.join(sys.argv[1], "store")  # the test's tmp_path: pytest removes it
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    torch.manual_seed(0)
    cfg = DecoderConfig(vocab_size=61, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, ffn_dim=48,
                        core_dim=24, cross_every=2, gated=True)
    model, reference = LanguageDecoder(cfg), LanguageDecoder(cfg)
    reference.load_state_dict(model.state_dict())
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    mesh = init_device_mesh("cpu", (1,))
    for block in model.layers:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    ids, core = torch.randint(0, 61, (2, 9)), torch.randn(2, 7, 24)
    mask = torch.rand(2, 9, 7) > 0.3
    out = model(ids, core, mask)
    assert out.dtype == torch.bfloat16, out.dtype
    error = (out.float() - reference(ids, core, mask)).abs().max().item()
    assert error < 0.05, error
    out.float().logsumexp(-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    dist.destroy_process_group()
    print("ok", error, flush=True)
    os._exit(0)  # no interpreter finalisation: see tests/test_parallel_support.leave_rank
""")


def test_fsdp2_bf16_decoder_reads_fp32_core_states(tmp_path):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                            text=True, timeout=180)
    if result.returncode != 0:
        pytest.fail(f"FSDP2 run failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    assert result.stdout.startswith("ok")
