"""`dualmind export --format hf` at a real shape: memory while exporting, and transformers' logits.

    nice -n 5 .venv/bin/python benchmarks/export_hf.py                 # conf/model/125m.yaml
    .venv/bin/python benchmarks/export_hf.py --shape mini --no-write

A randomly initialised core of --shape (values do not change memory or layout) is saved twice,
as a sharded (DCP) folder the way an fsdp2 run writes it and as a .ckpt file, then each is
exported with --max-shard-size. A thread samples /proc/self/status every 5 ms during each
export: the rise of anonymous memory (RssAnon: what the process allocated) and of file-backed
pages (RssFile: the .ckpt's memory map, clean pages the kernel can drop), above the process after
its imports. Then the two exports' shard files are compared byte for byte, dualmind loads the
export back (bit for bit?), and, if transformers is installed, LlamaForCausalLM's logits on --len
random symbols are compared with the core's (SDPA, fp32). Linux only (/proc).

Results go to benchmarks/RESULTS.md between <!-- export_hf:start --> and <!-- export_hf:end -->.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch
from results_md import write_section  # benchmarks/ is on sys.path when run as a script

FACTS = ["The night is full of stars and quiet rivers.", "Where does the zebra sleep at night?",
         "Zebras sleep standing up in the open grassland."]


def rss_kb() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("RssAnon", "RssFile"):
                out[key] = int(line.split()[1])
    return out


def measure(fn) -> tuple[float, dict[str, int]]:
    """(seconds, peak rise of RssAnon/RssFile in kB above the start) of fn()."""
    start, peak, done = rss_kb(), rss_kb(), threading.Event()

    def poll():
        while not done.is_set():
            for k, v in rss_kb().items():
                peak[k] = max(peak[k], v)
            time.sleep(0.005)

    thread = threading.Thread(target=poll)
    thread.start()
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        seconds = time.perf_counter() - t0
        done.set()
        thread.join()
    return seconds, {k: peak[k] - start[k] for k in start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="125m", help="conf/model/<shape>.yaml")
    parser.add_argument("--max-shard-size", default="200MB")
    parser.add_argument("--len", type=int, default=256, help="symbols for the logits check")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    import torch.distributed.checkpoint as dcp

    from dualmind.checkpoint.export_hf import export_hf, parse_size
    from dualmind.checkpoint.export_hf_load import load_hf_core
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    torch.manual_seed(0)
    cfg = CoreConfig.from_name(args.shape)
    core = HyperCore(cfg).eval()
    params = sum(p.numel() for p in core.parameters())
    largest = max(p.numel() * p.element_size() for p in core.parameters())
    work = Path(tempfile.mkdtemp(prefix="export_hf_"))
    lexicon = Lexicon.build(FACTS, level="lossless", vocab_size=300)
    lexicon.save(work / "lexicon")
    meta = {"stage": "core", "model": cfg.to_dict(), "lexicon_fingerprint": lexicon.fingerprint}
    state = {f"core.{k}": v for k, v in core.state_dict().items()}
    with warnings.catch_warnings():  # "no process group: saving in a single process" - intended
        warnings.simplefilter("ignore", UserWarning)
        dcp.save({"state_dict": state}, checkpoint_id=str(work / "dcp.ckpt"), no_dist=True)
    torch.save({"global_step": 1, "dualmind": meta}, work / "dcp.ckpt" / "meta.pt")
    torch.save({"global_step": 1, "dualmind": meta, "state_dict": state}, work / "last.ckpt")
    del state
    limit = parse_size(args.max_shard_size)
    rows = []
    sources = (("sharded (DCP) folder", work / "dcp.ckpt"), (".ckpt file", work / "last.ckpt"))
    for name, src in sources:
        seconds, rise = measure(lambda src=src: export_hf(src, work / src.stem, work / "lexicon",
                                                          max_shard_bytes=limit))
        rows.append((name, seconds, rise))
    shards = sorted(p.name for p in (work / "dcp").glob("model*.safetensors"))
    same = shards == sorted(p.name for p in (work / "last").glob("model*.safetensors")) and all(
        (work / "dcp" / s).read_bytes() == (work / "last" / s).read_bytes() for s in shards)
    back, _ = load_hf_core(work / "dcp")
    identical = all(torch.equal(back.state_dict()[k], v) for k, v in core.state_dict().items())
    diff = None
    try:
        import transformers
    except ImportError:
        transformers = None
    if transformers is not None:
        hf = transformers.LlamaForCausalLM.from_pretrained(work / "dcp", attn_implementation="sdpa")
        ids = torch.randint(4, len(lexicon), (1, args.len),
                            generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            want = core(ids).logits
            diff = ((hf.eval()(ids).logits - want).abs().max().item(), want.abs().max().item())

    mb = 1e6
    lines = [
        f"Core shape `{args.shape}`: {params / 1e6:.1f}M parameters, fp32, "
        f"{'tied' if cfg.tie_embeddings else 'untied'} head; largest tensor "
        f"{largest / mb:.1f} MB; --max-shard-size {args.max_shard_size} -> {len(shards)} weight "
        f"file(s). {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}.",
        "",
        "| source | export wall time | anonymous memory rise | file-backed pages rise |",
        "|---|---|---|---|",
        *[f"| {name} | {s:.1f} s | {r['RssAnon'] / 1e3:.0f} MB | {r['RssFile'] / 1e3:.0f} MB |"
          for name, s, r in rows],
        "",
        "Both sources were written just before, so they are read from the page cache: the wall "
        "times leave out reading a checkpoint from disk. The anonymous rise of the DCP export is "
        f"{rows[0][2]['RssAnon'] * 1e3 / largest:.1f}x the largest tensor (DCP's reader loads a "
        "tensor's bytes as a tensor of its own, then copies them into the one being filled); "
        "the .ckpt export's pages are its memory map, clean pages the kernel can drop.",
        "",
        f"Shard files of the two exports byte-identical: {same}. dualmind reads the export back "
        f"bit for bit: {identical}. "
        + (f"transformers LlamaForCausalLM (SDPA, fp32) on {args.len} symbols: max |logit "
           f"difference| {diff[0]:.3g} (logits up to {diff[1]:.2f})." if diff is not None
           else "transformers not installed: logits not compared."),
        "",
        f"Command: `.venv/bin/python benchmarks/export_hf.py --shape {args.shape} "
        f"--max-shard-size {args.max_shard_size}`",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("export_hf", "## Hugging Face export (`benchmarks/export_hf.py`, issue 16)"
                      "\n\n" + text)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0 if same and identical else 1


if __name__ == "__main__":
    sys.exit(main())
