"""The GPU checks of benchmarks/gpu_check.sh, on one CUDA GPU (run the .sh: it installs first).

    .venv/bin/python benchmarks/gpu_check.py                 # all checks, figures -> RESULTS.md
    .venv/bin/python benchmarks/gpu_check.py --no-write      # print only

1. attention: flash-attn and xformers against SDPA on packed rows (document masks), bf16, output
   and gradients, and SDPA against an fp32 reference;
2. throughput: bf16 training steps of the core_1b shape (or the largest batch that fits) with
   each installed backend: tokens/s, MFU against the GPU's dense bf16 peak, peak memory;
3. cross-attention: which CUDA kernels the decoder's masked cross-attention runs (profiler), and
   its time under each SDPA kernel that accepts it;
4. fsdp2: a 2-step `train.py recipe=core_mini strategy=fsdp2` run on this GPU (meta init,
   rank-local CUDA init, the chunked loss), exit status and time.

Each check that fails is reported as failed (with its error) and the script exits 1; the figures
of the others are still written. Without a CUDA GPU it prints one line and exits 2. Results go
to benchmarks/RESULTS.md between <!-- gpu:start --> and <!-- gpu:end -->.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NO_GPU_EXIT = 2
# Tolerances of the attention parity, bf16 inputs: the backends sum in different orders, so
# outputs differ by a few bf16 ulps (values are O(1), bf16 spacing 2^-8 near 1).
ATOL = {"out": 2e-2, "grad": 5e-2}
TARGET_MFU = 0.45  # issue 16's target for core_1b with flash-attn, bf16


class NoGPU(RuntimeError):
    """No CUDA GPU here: the message is the one line the script prints."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu_check.py", description=__doc__.split("\n")[0])
    p.add_argument("--shape", default="1b", help="conf/model shape for the throughput (1b)")
    p.add_argument("--seq-len", type=_positive, default=4096, help="positions per row (4096)")
    p.add_argument("--batch", type=_positive, default=8,
                   help="rows per step to start from; halved until a step fits (8)")
    p.add_argument("--steps", type=_positive, default=10, help="timed steps per backend (10)")
    p.add_argument("--warmup", type=_nonnegative, default=3, help="untimed steps first (3)")
    p.add_argument("--budget-s", type=_positive, default=360,
                   help="seconds for all checks; none starts after it (360)")
    p.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _positive(text: str) -> int:
    value = _nonnegative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _nonnegative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def require_gpu() -> str:
    """The GPU's name, or NoGPU with the reason."""
    import torch

    if not torch.cuda.is_available():
        why = ("this torch has no CUDA" if torch.version.cuda is None
               else "torch sees no CUDA device (driver, CUDA_VISIBLE_DEVICES)")
        raise NoGPU(f"gpu_check: no CUDA GPU: {why}; these checks measure GPU kernels and "
                    "need one")
    return torch.cuda.get_device_name(0)


def peak_bf16_flops(gpu_name: str) -> tuple[float | None, str]:
    """The dense bf16 peak of a GPU the planner knows (dualmind.plan.hardware), by name."""
    from dualmind.plan.hardware import GPUS

    upper = gpu_name.upper()
    for key, spec in GPUS.items():
        if key.upper() in upper:
            return spec.peak_bf16_flops, spec.source
    return None, f"no datasheet peak for {gpu_name!r} in dualmind.plan.hardware: MFU not given"


def mfu(tokens_per_s: float, flops_per_token: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved model FLOP/s over the dense peak."""
    return None if not peak else tokens_per_s * flops_per_token / peak


# ---- 1. attention parity --------------------------------------------------------------------

def _packed_doc_ids(batch: int, seq_len: int, generator) -> object:
    """Rows of 1-9 documents of random lengths, as packing makes them."""
    import torch

    rows = []
    for _ in range(batch):
        n = int(torch.randint(1, 10, (1,), generator=generator))
        cuts = torch.sort(torch.randperm(seq_len - 1, generator=generator)[: n - 1] + 1).values
        row = torch.zeros(seq_len, dtype=torch.long)
        for i, c in enumerate(cuts.tolist()):
            row[c:] = i + 1
        rows.append(row)
    return torch.stack(rows)


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def check_attention(device: str = "cuda", seq_len: int = 2048) -> dict:
    """(device/seq_len: the CPU smoke test runs this with sdpa alone.)"""
    import torch

    from dualmind.model import attention as attn

    g = torch.Generator().manual_seed(0)
    B, T, H, KV, D = 2, seq_len, 16, 4, 64
    dev = torch.device(device)
    doc = _packed_doc_ids(B, T, g).to(dev)
    q, k, v = (torch.randn(B, T, h, D, generator=g).to(dev, torch.bfloat16)
               for h in (H, KV, KV))
    gout = torch.randn(B, T, H, D, generator=g).to(dev, torch.bfloat16)

    def run(backend):
        qq, kk, vv = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
        layout = attn.layout_for(backend, doc, B, T, dev)
        out = attn.attend(qq, kk, vv, layout)
        out.backward(gout)
        return out.detach().float(), [t.grad.float() for t in (qq, kk, vv)]

    ref_out, ref_grads = run("sdpa")
    fp32 = attn.reference_attention(q.float(), k.float(), v.float(), doc)
    rows = {"sdpa": {"vs": "fp32 reference", "max_abs_out": float((ref_out - fp32).abs().max()),
                     "ok": bool((ref_out - fp32).abs().max() <= ATOL["out"])}}
    for backend in ("flash", "xformers"):
        why = attn.unusable_reason(backend, dev, torch.bfloat16)
        if why:
            rows[backend] = {"skipped": why}
            continue
        out, grads = run(backend)
        d_out = float((out - ref_out).abs().max())
        d_grad = max(float((a - b).abs().max()) for a, b in zip(grads, ref_grads, strict=True))
        rows[backend] = {"vs": "sdpa", "max_abs_out": d_out, "max_abs_grad": d_grad,
                         "ok": d_out <= ATOL["out"] and d_grad <= ATOL["grad"]}
    return {"shape": f"B{B} T{T} heads {H}/{KV} kv, dim {D}, bf16, "
                     f"{int(doc.max(1).values.sum()) + B} packed documents", "rows": rows}


# ---- 2. training throughput -----------------------------------------------------------------

def _train_steps(cfg, batch: int, seq_len: int, steps: int, warmup: int,
                 device: str = "cuda") -> dict:
    import torch

    from dualmind.model.core import HyperCore
    from dualmind.model.loss import next_symbol_nll

    dev = torch.device(device)
    torch.manual_seed(0)
    core = HyperCore(cfg).to(dev)
    opt = torch.optim.AdamW(core.parameters(), lr=1e-4, fused=True)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq_len), generator=g).to(dev)
    doc = _packed_doc_ids(batch, seq_len, g).to(dev)
    targets = ids.roll(-1, 1)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for i in range(warmup + steps):
        _sync(dev)
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            nll = next_symbol_nll(core, ids, targets, doc_ids=doc, chunk=4096)
        (nll / targets.numel()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(dev)
        losses.append(float(nll.detach()) / targets.numel())
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
    return {"batch": batch, "median_s": median, "tokens_per_s": batch * seq_len / median,
            "peak_gib": peak, "first_loss": losses[0], "last_loss": losses[-1]}


def check_throughput(a: argparse.Namespace, gpu_name: str, device: str = "cuda") -> dict:
    import dataclasses

    import torch

    from dualmind.model import attention as attn
    from dualmind.model.config import CoreConfig

    base = CoreConfig.from_name(a.shape)
    peak, peak_source = peak_bf16_flops(gpu_name)
    flops_per_token = base.flops_per_token(a.seq_len)
    rows = {}
    batch = a.batch
    for backend in ("flash", "xformers", "sdpa"):
        why = attn.unusable_reason(backend, torch.device(device), torch.bfloat16)
        if why:
            rows[backend] = {"skipped": why}
            continue
        cfg = dataclasses.replace(base, attn_backend=backend, max_seq_len=max(base.max_seq_len,
                                                                               a.seq_len))
        while True:  # the largest batch that fits, found once, then kept for every backend
            try:
                r = _train_steps(cfg, batch, a.seq_len, a.steps, a.warmup, device)
                break
            except torch.cuda.OutOfMemoryError:
                pass
            # Outside the except block: its traceback no longer holds the failed step's tensors.
            gc.collect()
            torch.cuda.empty_cache()
            if batch == 1:
                r = {"skipped": f"one row of {a.seq_len} positions does not fit"}
                break
            batch //= 2
        if "tokens_per_s" in r:
            r["mfu"] = mfu(r["tokens_per_s"], flops_per_token, peak)
        rows[backend] = r
        torch.cuda.empty_cache()
    return {"shape": a.shape, "params": base.num_params(), "seq_len": a.seq_len,
            "flops_per_token": flops_per_token, "peak": peak, "peak_source": peak_source,
            "rows": rows}


# ---- 3. cross-attention kernel --------------------------------------------------------------

def check_cross_attention() -> dict:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from dualmind.model.cross_attention import CrossAttention, with_null
    from dualmind.model.decoder_config import DecoderConfig

    cfg = DecoderConfig.from_name("8b")
    torch.manual_seed(0)
    layer = CrossAttention(cfg).cuda().to(torch.bfloat16)
    B, T, S = 1, 4096, 2048
    x = torch.randn(B, T, cfg.dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    states = torch.randn(B, S, cfg.memory_dim, device="cuda", dtype=torch.bfloat16)
    visible = torch.rand(B, T, S, device="cuda") < 0.1  # an arbitrary (not causal) mask
    mask = with_null(visible, B, T, S, x.device)
    # each token's pointer unit, monotone along the text as alignment makes it (cross_rope)
    pointer = (torch.arange(T, device="cuda") * S // T)[None].expand(B, T)

    def step():
        out = layer(x, layer.keys_values(states), mask, pointer)
        out.float().sum().backward()

    def timed() -> float:
        for _ in range(2):
            step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(5):
            step()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) / 5

    result = {"shape": f"decoder 8b cross-attention, {T} text tokens x {S} core states, bf16"}
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    events = sorted(prof.key_averages(), key=lambda e: -e.device_time_total)
    total = sum(e.device_time_total for e in events) or 1.0
    result["kernels"] = [(e.key[:90], e.device_time_total / total) for e in events[:6]]
    result["default_s"] = timed()
    for name in ("EFFICIENT_ATTENTION", "FLASH_ATTENTION", "CUDNN_ATTENTION", "MATH"):
        try:
            with sdpa_kernel([getattr(SDPBackend, name)]):
                result[name] = timed()
        except RuntimeError as err:
            result[name] = f"not usable: {str(err).splitlines()[0][:120]}"
    return result


# ---- 4. a 2-step fsdp2 run ------------------------------------------------------------------

def _tiny_corpus(root: Path) -> Path:
    from dualmind.data.build.corpus import build_corpus
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.sources.demo import load_demo_documents

    docs = load_demo_documents(limit=25)
    src = root / "docs.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d.text, "lang": d.lang}, ensure_ascii=False) + "\n")
    Lexicon.build([d.text for d in docs], level="lossless", vocab_size=1024).save(root / "lex")
    build_corpus([src], root / "lex", root / "corpus", workers=1, progress=False, num_shards=1,
                 text_vocab_size=512, val_fraction=0.2)
    return root / "corpus"


def check_fsdp2() -> dict:
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        corpus = _tiny_corpus(Path(tmp))
        cmd = [sys.executable, str(REPO / "train.py"), "recipe=core_mini", f"data.dir={corpus}",
               f"run_dir={tmp}/run", "strategy=fsdp2", "trainer.accelerator=gpu",
               "trainer.devices=1", "trainer.max_steps=2", "trainer.val_check_interval=1000",
               "trainer.checkpoint_every_n_steps=0", "trainer.loggers=[]",
               "trainer.enable_progress_bar=false", "strategy.loss_chunk=256"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
        shown = ["python train.py", cmd[2], "data.dir=<25 demo documents>", *cmd[5:]]
        return {"command": " ".join(shown),
                "exit": proc.returncode, "seconds": time.perf_counter() - t0,
                "ok": proc.returncode == 0, "tail": tail}


# ---- report ---------------------------------------------------------------------------------

def _fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def render(env: dict, results: dict) -> str:
    """RESULTS.md's GPU section from the checks' results (pure: tested on CPU)."""
    lines = ["## GPU", "", f"`benchmarks/gpu_check.sh`, {env['when']}: {env['gpu']}, "
             f"torch {env['torch']} (CUDA {env['cuda']}), flash-attn {env['flash_attn']}, "
             f"xformers {env['xformers']}; checks took {env['seconds']:.0f} s.", ""]
    a = results.get("attention")
    if a:
        lines += [f"**Attention parity** ({a.get('shape', '')}; tolerance {ATOL['out']} on "
                  f"outputs, {ATOL['grad']} on gradients, absolute):", "",
                  "| backend | against | max abs out | max abs grad | within |",
                  "|---|---|---|---|---|"]
        for name, r in a.get("rows", {}).items():
            if "skipped" in r:
                lines.append(f"| {name} | - | - | - | skipped: {r['skipped']} |")
            else:
                lines.append(f"| {name} | {r['vs']} | {_fmt(r['max_abs_out'])} | "
                             f"{_fmt(r.get('max_abs_grad'))} | {'yes' if r['ok'] else '**no**'} |")
        lines.append("")
    t = results.get("throughput")
    if t:
        lines += [f"**bf16 training throughput**, core_{t['shape']} shape ({t['params']:,} "
                  f"parameters, {t['seq_len']} positions per packed row, fused AdamW, chunked "
                  f"loss, no activation checkpointing; {t['flops_per_token']:.3g} model FLOPs per "
                  f"position; peak: {t['peak_source']}; target MFU >= {TARGET_MFU:.0%} with "
                  "flash-attn):", "",
                  "| backend | rows | s/step (median) | tokens/s | MFU | peak GiB |",
                  "|---|---|---|---|---|---|"]
        for name, r in t.get("rows", {}).items():
            if "skipped" in r:
                lines.append(f"| {name} | - | - | - | - | skipped: {r['skipped']} |")
            else:
                m = "-" if r.get("mfu") is None else f"{r['mfu']:.1%}"
                lines.append(f"| {name} | {r['batch']} | {r['median_s']:.3f} | "
                             f"{r['tokens_per_s']:,.0f} | {m} | {_fmt(r['peak_gib'], '.1f')} |")
        lines.append("")
    c = results.get("cross_attention")
    if c:
        kernels = "; ".join(f"{k} {share:.0%}" for k, share in c.get("kernels", []))
        lines += [f"**Decoder cross-attention** ({c.get('shape', '')}): default SDPA "
                  f"{_fmt(c.get('default_s'))} s per forward+backward; top CUDA kernels: "
                  f"{kernels}.", ""]
        for name in ("EFFICIENT_ATTENTION", "FLASH_ATTENTION", "CUDNN_ATTENTION", "MATH"):
            v = c.get(name)
            if v is not None:
                lines.append(f"- only {name}: " + (f"{v:.4f} s" if isinstance(v, float) else v))
        lines.append("")
    f = results.get("fsdp2")
    if f:
        losses = [line for line in f.get("tail", []) if line.startswith("train loss")]
        lines += [f"**fsdp2, 2 steps on this GPU**: `{f['command']}`: exit {f['exit']} in "
                  f"{f['seconds']:.0f} s" + (f" ({losses[0]})." if losses else "."), ""]
    for name, err in results.get("failed", {}).items():
        lines.append(f"- check {name} FAILED: {err}")
    for name in results.get("skipped_for_time", []):
        lines.append(f"- check {name} skipped: the --budget-s ran out")
    return "\n".join(lines).rstrip() + "\n"


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        gpu = require_gpu()
    except NoGPU as err:
        print(err, file=sys.stderr)
        return NO_GPU_EXIT
    import torch

    sys.path.insert(0, str(HERE))
    from results_md import write_section

    start = time.perf_counter()
    checks = [("attention", check_attention), ("throughput", lambda: check_throughput(a, gpu)),
              ("cross_attention", check_cross_attention), ("fsdp2", check_fsdp2)]
    results: dict = {"failed": {}, "skipped_for_time": []}
    for name, fn in checks:
        if time.perf_counter() - start > a.budget_s:
            results["skipped_for_time"].append(name)
            continue
        print(f"[gpu_check] {name} ...", flush=True)
        try:
            results[name] = fn()
        except Exception as err:  # noqa: BLE001 - reported, the other checks still run
            traceback.print_exc()
            results["failed"][name] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    env = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "gpu": gpu,
           "torch": torch.__version__, "cuda": torch.version.cuda, "machine": platform.node(),
           "flash_attn": _version("flash_attn"), "xformers": _version("xformers"),
           "seconds": time.perf_counter() - start}
    text = render(env, results)
    print(text)
    if not a.no_write:
        write_section("gpu", text, a.results)
    bad = [r for k in ("attention",) for r in results.get(k, {}).get("rows", {}).values()
           if r.get("ok") is False]
    failed = results["failed"] or bad or not results.get("fsdp2", {}).get("ok", False)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
