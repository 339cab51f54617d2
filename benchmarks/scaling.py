"""The scaling study (issue 14), one point per Hydra job: a system trained on a FLOP budget with
one shape, scored per held-out document, its result in <work>/points/.../result.json.

    .venv/bin/python benchmarks/scaling.py system=lossless shape=xs budget=1e12 core_share=0.8
    .venv/bin/python benchmarks/scaling.py -m system=baseline,lossless,semantic shape=xs \
        budget=1e12,2.37e12,5.62e12 core_share=best
    .venv/bin/python benchmarks/scaling_grid.py      # the standard grid, then the report

A point whose result.json exists is skipped, so a rerun of any sweep only trains what is missing
(a killed job leaves no result.json; its half-written run folder is trained again from scratch).
The systems are those of benchmarks/equal_compute.py, trained and counted the same way:
baseline (recipe baseline_bpe_mini on the BPE tokens), lossless and semantic (core_mini
pretrained on `core_share` of the budget, then decoder_align with the core frozen on the rest).
Every point scores each held-out document on its own, so the report can bootstrap over documents.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
from omegaconf import DictConfig

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import dualmind.config.schema  # noqa: E402,F401 - sets the recipes folder before Hydra runs

SYSTEMS = ("baseline", "lossless", "semantic")
LN2 = math.log(2)
RESULT = "result.json"


def machine() -> str:
    """The CPU (and GPU) the report runs on, and whether bf16 is native: timings depend on it."""
    import platform

    name, flags = platform.processor() or platform.machine(), ""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        name = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                    if line.startswith("model name"))
        flags = next(line for line in info.splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    bf16 = "native bf16 (avx512_bf16)" if "avx512_bf16" in flags else "no native bf16"
    text = f"{os.cpu_count()} cores of {name}, {bf16}"
    try:
        import torch

        if torch.cuda.is_available():
            text += f"; GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def point_dir(work: Path, system: str, shape: str, budget: float,
              share: float | None = None) -> Path:
    where = work / "points" / system / shape
    if share is not None:
        where = where / f"share{share:g}"
    return where / f"b{budget:.3e}"


def shape_overrides(shape: dict, part: str) -> list[str]:
    """Overrides that give a run the shape: part core (pretraining), lm (the BPE baseline) or
    align (the core's shape, to load it, and the decoder's, which reads the core's width)."""
    model = [f"model.dim={shape['dim']}", f"model.n_layers={shape['n_layers']}",
             f"model.ffn_dim={shape['ffn_dim']}"]
    if part == "align":
        return [*model, f"decoder.dim={shape['dim']}", f"decoder.core_dim={shape['dim']}",
                f"decoder.ffn_dim={shape['ffn_dim']}",
                f"decoder.n_layers={shape['decoder_layers']}",
                f"data.batch_size={shape['text_batch']}"]
    return [*model, f"data.batch_size={shape['core_batch' if part == 'core' else 'text_batch']}"]


@contextmanager
def outside_hydra() -> Iterator[None]:
    """Training composes the project's own config with Hydra's compose API, which would reuse
    this app's (benchmarks/conf) search path: hide the running app for that, then restore it."""
    from hydra.core.global_hydra import GlobalHydra

    instance = GlobalHydra.instance()
    saved, instance.hydra = instance.hydra, None
    try:
        yield
    finally:
        instance.hydra = saved


def corpora(work: Path, train, heldout) -> dict[str, tuple[Path, Path]]:
    """{level: (lexicon, corpus)}, built once per work folder (equal_compute.build_corpora)."""
    from equal_compute import build_corpora
    from equal_compute_report import LEVELS

    ready = work / "corpora.done"
    if ready.is_file():
        from equal_compute import check_same_inputs

        check_same_inputs(work, train, heldout)
        return {lv: (work / f"lexicon-{lv}", work / f"corpus-{lv}") for lv in LEVELS}
    out = build_corpora(work, train, heldout)
    ready.write_text("built by benchmarks/scaling.py\n", encoding="utf-8")
    return out


def best_share(work: Path, system: str) -> float:
    """The core share with the lowest mean bits per byte over the split points: the budgets and
    shape at which every share that could be trained finished (a share too small to afford its
    steps, recorded as unaffordable, is out of the running)."""
    by_share: dict[float, dict[tuple, float]] = {}
    for path in (work / "points" / system).glob(f"*/share*/b*/{RESULT}"):
        r = json.loads(path.read_text(encoding="utf-8"))
        if "bpb" in r:
            by_share.setdefault(r["core_share"], {})[(r["shape"], r["budget"])] = r["bpb"]
    if not by_share:
        raise SystemExit(f"core_share=best: no finished points under {work / 'points' / system}; "
                         f"run the split sweep first (benchmarks/scaling_grid.py runs it before "
                         f"the grid)")
    common = set.intersection(*(set(v) for v in by_share.values()))
    if not common:
        raise SystemExit(f"core_share=best: the shares under {work / 'points' / system} share no "
                         f"(shape, budget) point to compare on")
    return min(by_share, key=lambda s: sum(by_share[s][k] for k in common) / len(common))


def document_scores(checkpoint: Path, corpus: Path) -> list[dict]:
    """Code lengths of each held-out document, scored alone (all its records), per language."""
    import numpy as np

    from dualmind.data.open_corpus import open_shards
    from dualmind.evaluate.load import load_models
    from dualmind.evaluate.score import context_lengths, score_split
    from dualmind.train.align_datamodule import records_of_language

    model, decoder, meta = load_models(checkpoint)
    context = context_lengths(model, decoder, meta)
    expect = meta.get("lexicon_fingerprint") if decoder is not None else None
    val = open_shards(corpus, "val")
    docs = np.concatenate([np.asarray(f.arrays["rec_doc"]) for f in val.files])
    rows = []
    for lang in sorted(val.languages()):
        chosen = records_of_language(val, lang)
        for doc in dict.fromkeys(docs[chosen].tolist()):
            bits = score_split(model, decoder, corpus, "val", batch_size=4, context=context,
                               expect_lexicon=expect, records=chosen[docs[chosen] == doc])
            rows.append({"lang": lang, "doc": int(doc), "bytes": bits.text_bytes,
                         "split_bytes": bits.split_bytes, "core_bits": bits.core_nll / LN2,
                         "decoder_bits": bits.decoder_nll / LN2,
                         "shuffled_bits": None if bits.shuffled_nll is None
                         else bits.shuffled_nll / LN2})
    return rows


def train_point(cfg: DictConfig, work: Path, levels: dict, share: float | None,
                where: Path) -> dict:
    from equal_compute import train_baseline, train_two_headed

    shape = dict(cfg.shapes[cfg.shape])
    if cfg.system == "baseline":
        run = train_baseline(levels["semantic"][1], where, float(cfg.budget),
                             shape_overrides(shape, "lm"))
        return {"corpus": levels["semantic"][1], "checkpoint": run["run"]["checkpoint"],
                "flops": run["flops"], "wall_s": run["wall_s"],
                "steps": {"lm": run["schedule"].steps}}
    run = train_two_headed(cfg.system, levels[cfg.system][1], work, float(cfg.budget), share,
                           shape_overrides(shape, "align"),
                           core_extra=shape_overrides(shape, "core"), runs=where)
    return {"corpus": levels[cfg.system][1], "checkpoint": run["align"]["checkpoint"],
            "flops": run["flops"], "wall_s": run["wall_s"],
            "steps": {"core": run["core_schedule"].steps, "align": run["align_schedule"].steps}}


def planned_steps(cfg: DictConfig, levels: dict, share: float | None) -> dict[str, int]:
    """The steps each stage would get, without training: a point below min_steps is recorded
    as unaffordable instead of trained (its learning-rate schedule would be all warm-up)."""
    from equal_compute import align_schedule, core_schedule

    shape = dict(cfg.shapes[cfg.shape])
    budget = float(cfg.budget)
    if cfg.system == "baseline":
        over = ["recipe=baseline_bpe_mini", f"data.dir={levels['semantic'][1]}",
                *shape_overrides(shape, "lm")]
        return {"lm": align_schedule(over, budget).steps}
    corpus = levels[cfg.system][1]
    core = core_schedule(["recipe=core_mini", f"data.dir={corpus}",
                          *shape_overrides(shape, "core")], budget, share)
    # the align schedule needs a core checkpoint only to train, not to count: the shape decides
    over = ["recipe=decoder_align", f"data.dir={corpus}", *shape_overrides(shape, "align")]
    return {"core": core.steps, "align": align_schedule(over, budget - core.flops).steps}


def write_json(path: Path, record: dict) -> None:
    """Atomically: a killed job never leaves a half-written result that a rerun would trust."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_point(cfg: DictConfig) -> dict:
    if cfg.system not in SYSTEMS:
        raise SystemExit(f"system={cfg.system!r}: expected one of {', '.join(SYSTEMS)}")
    if cfg.shape not in cfg.shapes:
        raise SystemExit(f"shape={cfg.shape!r}: expected one of {', '.join(cfg.shapes)}")
    if (cfg.train is None) != (cfg.heldout is None):
        raise SystemExit("train and heldout go together (neither: the embedded demo corpus)")
    work = Path(cfg.work).resolve()
    share = None
    if cfg.system != "baseline":
        share = best_share(work, cfg.system) if cfg.core_share == "best" else float(cfg.core_share)
    where = point_dir(work, cfg.system, cfg.shape, float(cfg.budget), share)
    if (where / RESULT).is_file():
        print(f"[scaling] {where} finished earlier: skipped", flush=True)
        return json.loads((where / RESULT).read_text(encoding="utf-8"))
    record = {"system": cfg.system, "shape": cfg.shape, "shape_spec": dict(cfg.shapes[cfg.shape]),
              "budget": float(cfg.budget), "core_share": share,
              "core_share_asked": str(cfg.core_share), "machine": machine()}
    levels = corpora(work, cfg.train, cfg.heldout)  # {level: (lexicon, corpus)}, built once
    steps = planned_steps(cfg, levels, share)
    if min(steps.values()) < int(cfg.min_steps):
        record.update(steps=steps, unaffordable=f"fewer than min_steps={cfg.min_steps} steps")
        print(f"[scaling] {where}: {steps} steps, below min_steps={cfg.min_steps}: recorded as "
              f"unaffordable", flush=True)
    else:
        if where.exists():  # a killed run's leftovers: start clean (no resume across schedules)
            shutil.rmtree(where)
        where.mkdir(parents=True)
        t = time.perf_counter()
        trained = train_point(cfg, work, levels, share, where)
        docs = document_scores(Path(trained["checkpoint"]), Path(trained["corpus"]))
        total_bits = sum(d["core_bits"] + d["decoder_bits"] for d in docs)
        record.update(flops=trained["flops"], steps=trained["steps"], wall_s=trained["wall_s"],
                      point_s=time.perf_counter() - t, documents=docs,
                      bpb=total_bits / sum(d["bytes"] for d in docs))
        if not cfg.keep_checkpoints:
            for ckpts in where.glob("*/checkpoints"):
                shutil.rmtree(ckpts)
        print(f"[scaling] {where}: {record['bpb']:.4f} bits/byte held out, "
              f"{record['flops']:.3g} FLOPs, {record['point_s']:.0f} s", flush=True)
    where.mkdir(parents=True, exist_ok=True)
    write_json(where / RESULT, record)
    return record


@hydra.main(version_base="1.3", config_path="conf", config_name="scaling")
def main(cfg: DictConfig) -> float | None:
    with outside_hydra():
        record = run_point(cfg)
    return record.get("bpb")


if __name__ == "__main__":
    main()
