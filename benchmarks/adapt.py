"""Adapting the demo core to QA without trampling it: no adaptation vs LoRA vs unfreeze-k.

    python benchmarks/adapt.py --core runs/demo/core_mini/checkpoints/last.ckpt \
        --corpus runs/demo/corpus [--steps 80] [--variants none,lora,unfreeze-1,unfreeze-2]

Every variant starts from the same trained core and trains the same number of steps on the same
QA/pair examples (stage lora / unfreeze through train.py's loop, recipes bridge_lora and
core_unfreeze); then, for each, in float32 on the same rows:

    task loss     mean NLL (nats) per answer symbol on the held-out QA questions (the answers'
                  symbols and the EOS after them; questions are context), as in val/loss
    trampling     the core's own bits per symbol on the corpus's held-out documents (val split)
                  after adaptation, minus before: what the adaptation cost the pretrained skill
    trainable     parameters the optimizer saw; wall: seconds of training

Writes the table into benchmarks/RESULTS.md (section adapt) and everything as JSON in --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from results_md import RESULTS, write_section  # noqa: E402  (benchmarks/ is on sys.path)

LN2 = math.log(2.0)


def qa_rows(corpus: Path, seq_len: int):
    from dualmind.train.qa_data import collate, heldout_rows, load_examples

    ex = load_examples(corpus, 0.1, True, seq_len)  # the recipes' held-out split
    rows = heldout_rows(ex.heldout, seq_len)
    return [collate(rows[i:i + 8]) for i in range(0, len(rows), 8)], ex


def core_rows(corpus: Path, seq_len: int, n_seq: int):
    from dualmind.train.datamodule import CoreDataModule, ValSequences, _stack

    dm = CoreDataModule(str(corpus), seq_len, 8).prepare()
    val = ValSequences(dm.val_stream, seq_len, n_seq)
    items = [val[i] for i in range(len(val))]
    return [_stack(items[i:i + 8]) for i in range(0, len(items), 8)]


def measure(core, qa, scenes) -> dict:
    """Task loss on held-out QA and the core's own bits per symbol on held-out text."""
    import torch
    import torch.nn.functional as F

    from dualmind.train.qa_data import IGNORE

    core.eval()
    nll = n = 0.0
    s_nll = s_n = s_bytes = 0.0
    with torch.no_grad():
        for b in qa:
            logits = core(b["ids"], doc_ids=b["doc_ids"]).logits.float()
            nll += F.cross_entropy(logits.flatten(0, 1), b["targets"].flatten(),
                                   ignore_index=IGNORE, reduction="sum").item()
            n += int((b["targets"] != IGNORE).sum())
        for b in scenes:
            logits = core(b["ids"], doc_ids=b["doc_ids"]).logits.float()
            s_nll += F.cross_entropy(logits.flatten(0, 1), b["targets"].flatten(),
                                     reduction="sum").item()
            s_n += b["targets"].numel()
            s_bytes += int(b["target_bytes"].sum())
    return {"qa_loss": nll / n, "qa_symbols": int(n), "core_bits_per_symbol": s_nll / s_n / LN2,
            "core_bpb": s_nll / s_bytes / LN2, "core_symbols": int(s_n)}


def adapted_core(variant: str, run_dir: Path, core_path: Path):
    from dualmind.adapters.lora import load_adapter
    from dualmind.adapters.merged_export import load_base_core
    from dualmind.checkpoint.frozen_core import core_state_from

    core, _ = load_base_core(core_path)
    if variant == "none":
        return core
    if variant.startswith("lora"):
        return load_adapter(core, run_dir / "adapter")
    state, _ = core_state_from(run_dir / "checkpoints" / "last.ckpt")
    core.load_state_dict(state, strict=True)
    return core


VARIANTS = {  # name -> (recipe, extra overrides)
    "lora": ("bridge_lora", []),
    "lora-mlp": ("bridge_lora", ["lora.targets=[wq,wk,wv,wo,w1,w2,w3]"]),
    "unfreeze-1": ("core_unfreeze", ["unfreeze.top_k=1"]),
    "unfreeze-2": ("core_unfreeze", ["unfreeze.top_k=2"]),
    "unfreeze-3": ("core_unfreeze", ["unfreeze.top_k=3"]),
    "unfreeze-2-kl": ("core_unfreeze", ["unfreeze.top_k=2", "adapt.kl_weight=1.0"]),
}


def train_variant(name: str, core_path: Path, corpus: Path, out: Path, steps: int) -> dict:
    import torch

    from dualmind.train.loop import train

    recipe, extra = VARIANTS[name]
    result = train([f"recipe={recipe}", f"data.dir={corpus}", f"core.checkpoint={core_path}",
                    f"run_dir={out / name}", f"trainer.max_steps={steps}",
                    "trainer.val_check_interval=100000",
                    f"trainer.checkpoint_every_n_steps={steps}",
                    "trainer.enable_progress_bar=false", "trainer.loggers=[csv]", *extra])
    meta = torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)["dualmind"]
    return {"trainable": meta["adapt"]["trainable_parameters"], "wall_s": result.wall_s,
            "steps": result.steps, "train_loss_first": result.first_loss,
            "train_loss_last": result.last_loss, "recipe": recipe, "overrides": extra}


def _precision_used() -> str:
    """The precision the recipes' trainer.precision resolved to on this machine."""
    from dualmind.config.precision import resolve
    from dualmind.config.schema import compose

    cfg = compose(["recipe=bridge_lora"])
    return resolve(cfg.trainer.precision, cfg.trainer.accelerator).value


def table(rows: dict, base: dict, args, n_heldout: int, total_params: int) -> str:
    lines = [
        "## Adapters: no adaptation vs LoRA vs unfreeze-k (`benchmarks/adapt.py`)",
        "",
        f"The demo's core_mini (`{args.core}`) adapted to the demo corpus's QA pairs in "
        f"hyperphrase space, {args.steps} steps of batch 8 x {args.seq_len} symbols per variant "
        f"(recipes bridge_lora / core_unfreeze, {_precision_used()}, CPU). Task loss: nats per "
        f"answer symbol (answer symbols + EOS) on {n_heldout} held-out QA examples whose "
        f"questions were never trained on. Trampling: the core's own bits per symbol on "
        f"{base['core_symbols']:,} symbols of the corpus's held-out documents, after minus "
        f"before. The core has {total_params:,} parameters.",
        "",
        "| variant | trainable params | train wall (s) | held-out QA loss (nats/sym) | Δ QA loss "
        "| core held-out bits/sym | Δ bits/sym (trampling) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r.get('trainable', 0):,} | {r.get('wall_s', 0):.0f} | "
            f"{r['qa_loss']:.3f} | {r['qa_loss'] - base['qa_loss']:+.3f} | "
            f"{r['core_bits_per_symbol']:.3f} | "
            f"{r['core_bits_per_symbol'] - base['core_bits_per_symbol']:+.4f} |")
    lines += ["", f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
              f"{os.cpu_count()} CPU cores shared with other jobs (wall times are indicative). "
              f"Reproduce: `python benchmarks/adapt.py --core {args.core} --corpus {args.corpus} "
              f"--steps {args.steps}`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", default="runs/demo/core_mini/checkpoints/last.ckpt")
    parser.add_argument("--corpus", default="runs/demo/corpus")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--scene-seqs", type=int, default=48,
                        help="held-out corpus sequences for the core's bits per symbol")
    parser.add_argument("--variants", default="none,lora,unfreeze-1,unfreeze-2")
    parser.add_argument("--out", default="runs/bench_adapt")
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--extra-overrides", default="", help="comma-separated, for tests")
    args = parser.parse_args(argv)
    core_path, corpus, out = Path(args.core), Path(args.corpus), Path(args.out)
    if not core_path.exists() or not (corpus / "manifest.json").exists():
        print(f"error: need a trained core ({core_path}) and its corpus ({corpus}); run "
              "`make demo` (or scripts/demo.py --out DIR) first", file=sys.stderr)
        return 2
    if args.extra_overrides:
        for v in VARIANTS.values():
            v[1].extend(args.extra_overrides.split(","))
    from dualmind.adapters.merged_export import load_base_core

    qa, examples = qa_rows(corpus, args.seq_len)
    scenes = core_rows(corpus, args.seq_len, args.scene_seqs)
    base_core, _ = load_base_core(core_path)
    total = base_core.num_params()
    rows: dict[str, dict] = {}
    for name in args.variants.split(","):
        t0 = time.perf_counter()
        info = {"trainable": 0, "wall_s": 0.0} if name == "none" else \
            train_variant(name, core_path, corpus, out, args.steps)
        info.update(measure(adapted_core(name, out / name, core_path), qa, scenes))
        rows[name] = info
        print(f"[adapt] {name}: {json.dumps(info)} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    base = rows.get("none") or measure(base_core, qa, scenes)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapt.json").write_text(json.dumps({"base": base, "variants": rows}, indent=2))
    text = table(rows, base, args, len(examples.heldout), total)
    write_section("adapt", text, Path(args.results))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
