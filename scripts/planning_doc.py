"""Regenerate docs/planning.md from the planner: its prose is scripts/planning_doc.md, whose
``{{name}}`` fields are filled with figures of `dualmind plan` runs (the 70B and 200B recipes on
1 TB and 256 H100s, and the variants the tables compare), and whose ``{{table:...}}`` fields are
the planner's own tables as `dualmind plan` prints them.

    python scripts/planning_doc.py            # print the doc
    python scripts/planning_doc.py --write    # write docs/planning.md
    python scripts/planning_doc.py --write --png   # also docs/planning_core_{70b,200b}.png

tests/test_planning_doc.py checks that docs/planning.md is what this prints, so a change to the
planner, a recipe or the benchmark figures it cites (benchmarks/RESULTS.md) shows up as a stale
doc. The PNGs are regenerated only with --png (matplotlib output is not byte-stable across
versions, so no test compares them).
"""
from __future__ import annotations

import argparse
import io
import re
import sys
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "scripts" / "planning_doc.md"
DOC = REPO / "docs" / "planning.md"
FIELD = re.compile(r"\{\{([\w:.-]+)\}\}")
COMMON = {"corpus": "1TB", "gpu": "h100", "gpus": 256}
RECIPES = {"70": "core_70b", "200": "core_200b"}


@cache
def _plan(recipe: str, **options) -> dict:
    from dualmind.plan.planner import plan
    from dualmind.plan.request import PlanRequest

    request = dict(COMMON, recipe=recipe)
    request.update(options)
    return plan(PlanRequest(**request)).to_dict()


def plan_of(size: str, **options) -> dict:
    """The plan of the 70B or 200B recipe on 1 TB and 256 H100s, with ``options`` changed."""
    return _plan(RECIPES[size], **dict(sorted(options.items())))


def table(size: str) -> str:
    """`dualmind plan recipe=core_<size>b --corpus 1TB --gpu h100 --gpus 256` as it prints."""
    from rich.console import Console

    from dualmind.plan.report import print_table

    out = io.StringIO()
    print_table(plan_of(size), console=Console(file=out, width=170, color_system=None))
    return "\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").splitlines())


# ---- formats: the doc's own ----------------------------------------------------------------

def gib(x: float) -> str:
    return f"{x / 2**30:.1f}"


def money_m(x: float) -> str:
    return f"${x / 1e6:.2f}M"


def sci(x: float) -> str:
    mantissa, exp = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exp)}"


def thousands(x: float) -> str:
    return f"{x / 1e3:.0f}k"


def days(x: float) -> str:
    return f"{x:.1f}"


def capped(p: dict) -> dict:
    """Days, GPU-hours and cost at the MFU the FSDP traffic allows (the network's cap)."""
    c, co = p["compute"], p["communication"]
    scale = p["inputs"]["mfu"]["value"] / co["mfu_ceiling"]
    return {"gpu_hours": co["gpu_hours_at_ceiling"], "days": c["wall_days"] * scale,
            "cost": c["cost"] * scale}


def figures() -> dict[str, str]:
    f: dict[str, str] = {}
    for size in RECIPES:
        p = plan_of(size)
        c, m, ch, co = p["compute"], p["memory"], p["chinchilla"], p["communication"]
        f[f"{size}.positions"] = f"{p['corpus']['trained_positions'] / 1e9:.0f}B"
        f[f"{size}.flops_6nd"] = sci(c["flops_6nd"])
        f[f"{size}.flops"] = sci(c["flops"])
        f[f"{size}.gpu_hours"] = f"{c['gpu_hours']:,.0f}"
        f[f"{size}.gpu_hours_k"] = thousands(c["gpu_hours"])
        f[f"{size}.days"] = days(c["wall_days"])
        f[f"{size}.cost"] = money_m(c["cost"])
        f[f"{size}.optimal_positions"] = f"{ch['optimal_tokens'] / 1e12:.2f}T"
        f[f"{size}.chinchilla_ratio"] = f"{ch['ratio']:.2f}"
        f[f"{size}.chinchilla_pct"] = f"{ch['ratio'] * 100:.0f}%"
        f[f"{size}.optimal_text"] = f"{ch['text_bytes_for_optimal'] / 1e12:.1f} TB"
        f[f"{size}.optimal_params"] = f"{ch['optimal_params_for_compute'] / 1e9:.0f}B"
        f[f"{size}.mem"] = gib(m["per_gpu"])
        f[f"{size}.min_gpus"] = f"{m['min_gpus']}"
        bf16 = plan_of(size, precision="bf16-true")["memory"]
        f[f"{size}.mem_bf16"] = gib(bf16["per_gpu"])
        f[f"{size}.min_gpus_bf16"] = f"{bf16['min_gpus']}"
        traffic = co["bytes_per_gpu_per_microbatch"]
        f[f"{size}.traffic"] = (f"{traffic / 1e9:.0f} GB" if traffic < 1e12
                                else f"{traffic / 1e12:.2f} TB")
        f[f"{size}.comm_s"] = f"{co['comm_seconds']:.1f}"
        f[f"{size}.compute_s"] = f"{co['compute_seconds']:.1f}"
        f[f"{size}.mfu_cap"] = f"{co['mfu_ceiling']:.2f}"
        cap = capped(p)
        f[f"{size}.capped_gpu_hours_k"] = thousands(cap["gpu_hours"])
        f[f"{size}.capped_days"] = days(cap["days"])
        f[f"{size}.capped_cost"] = money_m(cap["cost"])
        mb2 = plan_of(size, micro_batch=2)
        f[f"{size}.mem_mb2"] = gib(mb2["memory"]["per_gpu"])
        a = p["alignment"]
        f[f"{size}.align_flops"] = sci(a["flops"])
        f[f"{size}.align_gpu_hours"] = f"{a['gpu_hours']:,.0f}"
        f[f"{size}.align_days"] = days(a["wall_days"])
        f[f"{size}.align_cost"] = money_m(a["cost"])
        f[f"{size}.align_pct"] = f"{a['flops'] / c['flops'] * 100:.0f}%"
        e4 = plan_of(size, epochs=4.0)
        f[f"{size}.e4"] = (f"{thousands(e4['compute']['gpu_hours'])} · "
                           f"{days(e4['compute']['wall_days'])} · {money_m(e4['compute']['cost'])}")
        f[f"{size}.e4_ratio"] = f"{e4['chinchilla']['ratio']:.2f}"
        inf = p["inference"]
        f[f"{size}.inf_core"] = f"{inf['core_flops_per_byte']:.2e}"
        f[f"{size}.inf_dual"] = f"{inf['dual_flops_per_byte']:.2e}"
        f[f"{size}.inf_bpe"] = f"{inf['bpe_same_size_flops_per_byte']:.2e}"
        ratio = inf["dual_flops_per_byte"] / inf["bpe_same_size_flops_per_byte"]
        f[f"{size}.inf_ratio"] = f"{ratio:.2f}"
        f[f"{size}.inf_decoder"] = f"{inf['decoder_flops_per_byte']:.2e}"
        eq = p["equivalence"]
        f[f"{size}.bpe_equal"] = f"{eq['bpe_params_same_train_flops_per_byte'] / 1e9:.0f}B"
        for name, opts in SENSITIVITY.items():
            s = plan_of(size, **opts)
            f[f"{size}.sens.{name}"] = (f"{thousands(s['compute']['gpu_hours'])} · "
                                        f"{days(s['compute']['wall_days'])} · "
                                        f"{money_m(s['compute']['cost'])}")
            f[f"sens.{name}.k"] = f"{s['equivalence']['compression']:.2f}"
    p70, p200 = plan_of("70"), plan_of("200")
    own = plan_of("200", gpus=None)  # the recipe's own 1,024 GPUs
    f["200.own_gpus"] = f"{own['gpu']['count']:,}"
    f["200.own_mem"] = gib(own["memory"]["per_gpu"])
    f["200.own_days"] = days(own["compute"]["wall_days"])
    f["200.own_capped_days"] = days(capped(own)["days"])
    f["200.own_capped_gpu_hours_k"] = thousands(capped(own)["gpu_hours"])
    f["200.own_max_steps"] = f"{own['run']['max_steps']:,}"
    f["200.steps_256"] = f"{p200['run']['steps_for_corpus']:,.0f}"
    f["200.batch_256"] = f"{p200['run']['global_batch_positions'] / 1e6:.1f}M"
    f["70.batch"] = f"{p70['run']['global_batch_positions'] / 1e6:.1f}M"
    f["70.steps"] = f"{p70['run']['steps_for_corpus']:,.0f}"
    f["70.max_steps"] = f"{p70['run']['max_steps']:,}"
    f["usable_gib"] = gib(p70["memory"]["usable_hbm"])
    for gpu in ("h200", "b200"):
        f[f"200.min_gpus_{gpu}"] = f"{plan_of('200', gpu=gpu)['memory']['min_gpus']}"
    for size in RECIPES:  # the full [positions, vocabulary] logits at once (no loss chunks)
        full = plan_of(size, loss_chunk=0)["memory"]
        f[f"{size}.min_gpus_full"] = f"{full['min_gpus']}"
        f[f"{size}.mem_full"] = gib(full["per_gpu"])
    h200 = plan_of("200", micro_batch=2, gpu="h200")
    f["200.mb2_h200_min_gpus"] = f"{h200['memory']['min_gpus']}"
    f["200.mb2_h200_days"] = days(h200["compute"]["wall_days"])
    f["200.mb2_h200_cost"] = money_m(h200["compute"]["cost"])
    for size in RECIPES:
        b200 = plan_of(size, gpu="b200")
        f[f"{size}.b200_mfu_cap"] = f"{b200['communication']['mfu_ceiling']:.2f}"
        f[f"{size}.b200_capped_days"] = days(capped(b200)["days"])
        f[f"{size}.b200_capped_cost"] = money_m(capped(b200)["cost"])
    prod = p70["production"]
    f["codec_core_hours"] = f"{prod['codec_core_hours']:.0f}"
    f["codec_seconds"] = f"{prod['codec_hours'] * 3600:.0f}"
    f["cores"] = f"{prod['cores']:,}"
    f["llm_gpu_hours"] = f"{prod['llm_gpu_hours']:,.0f}"
    f["llm_cost_k"] = f"${prod['llm_cost'] / 1e3:.0f}k"
    f["codec_mb_s"] = f"{prod['codec_bytes_per_s_per_core'] / 1e6:.1f}"
    f["codec_provenance"] = p70["inputs"]["bytes_per_symbol"]["provenance"]
    inputs = {}
    for level in ("lossless", "semantic"):
        for lang in ("en", "ru"):
            q = plan_of("70", level=level, lang=lang)["inputs"]
            inputs[level, lang] = q
            f[f"bps.{level}.{lang}"] = f"{q['bytes_per_symbol']['value']:.2f}"
            f[f"bpt.{lang}"] = f"{q['bpe_bytes_per_token']['value']:.2f}"
    eq = p70["equivalence"]
    f["k"] = f"{eq['compression']:.2f}"
    f["k_sq"] = f"{1 / eq['compression'] ** 2:.2f}"
    f["k_sem"] = f["sens.semantic_en.k"]
    f["k_sem_sq"] = f"{1 / float(f['sens.semantic_en.k']) ** 2:.2f}"
    f["core_for_bpe_70"] = f"{eq['core_params_for_same_budget_as_bpe'] / 1e9:.0f}B"
    semantic = plan_of("70", level="semantic")
    f["core_for_bpe_70_sem"] = (
        f"{semantic['equivalence']['core_params_for_same_budget_as_bpe'] / 1e9:.0f}B")
    inf = p70["inference"]
    f["context_core"] = f"{inf['core_context_bytes'] / 1e3:.1f} KB"
    f["context_bpe"] = f"{inf['bpe_context_bytes'] / 1e3:.1f} KB"
    f["context_sem"] = f"{semantic['inference']['core_context_bytes'] / 1e3:.0f} KB"
    lo, hi = eq["compression_needed_for_claim"]
    f["claim_k"] = f"{lo:.1f}–{hi:.1f}"
    ks = [float(f[f"sens.{n}.k"]) for n in ("default", "ru", "semantic_en", "semantic_ru")]
    f["k_lossless_range"] = f"{min(ks[:2]):.2f}–{max(ks[:2]):.2f}"
    f["k_lossy_range"] = f"{min(ks[2:]):.2f}–{max(ks[2:]):.2f}"
    f["claim_short"] = f"{lo / max(ks):.1f}–{hi / min(ks):.0f}"
    f.update(measured(p70))
    f.update(scaling_figures({"70": p70, "200": p200}))
    return f


SENSITIVITY = {
    "default": {},
    "ru": {"lang": "ru"},
    "semantic_en": {"level": "semantic"},
    "semantic_ru": {"level": "semantic", "lang": "ru"},
    "mfu30": {"mfu": 0.30},
    "hyperphrase": {"corpus_kind": "hyperphrase"},
    "b200": {"gpu": "b200"},
    "a100": {"gpu": "a100"},
}


def measured(p: dict) -> dict[str, str]:
    """The equal-compute study the planner cites (benchmarks/RESULTS.md)."""
    m = p["equivalence"]["measured"]
    if m.get("status") != "measured":
        raise SystemExit("benchmarks/RESULTS.md has no equal-compute section: the doc cites it")
    rows = {r["system"].split(",")[-1].strip().split(" ")[0]: r for r in m["rows"]}
    bpb = {k: r["**held-out bpb**"].strip("*") for k, r in rows.items()}
    when = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d UTC)", m["text"])
    budget = re.search(r"--budget (\S+)", m["text"])
    return {
        "eq.when": when.group(1) if when else "(undated)",
        "eq.budget": budget.group(1).replace("e+", "e") if budget else "?",
        "eq.bpb_baseline": f"{float(bpb['BPE']):.3f}",
        "eq.bpb_semantic": f"{float(bpb['semantic']):.3f}",
        "eq.bpb_lossless": f"{float(bpb['lossless']):.3f}",
        "eq.x_semantic": rows["semantic"]["x baseline"],
        "eq.x_lossless": rows["lossless"]["x baseline"],
    }


def scaling_figures(plans: dict[str, dict]) -> dict[str, str]:
    """The scaling study's prediction the planner prints (src/dualmind/plan/scaling_law.json,
    written by benchmarks/scaling_report.py), at each planned run's training FLOPs."""
    from dualmind.plan import scaling_law

    law = scaling_law.load()
    if law is None:
        raise SystemExit("src/dualmind/plan/scaling_law.json is missing: the doc cites the "
                         "scaling study (benchmarks/scaling_grid.py writes it)")
    lo, hi = law["fitted_flops"]
    f = {"sc.when": f"{law['date']}, commit {law['commit']}", "sc.machine": law["machine"],
         "sc.range": f"{lo:.2g}–{hi:.2g}".replace("e+", "e"),
         "sc.share.lossless": f"{law['core_share']['lossless']:g}",
         "sc.share.semantic": f"{law['core_share']['semantic']:g}"}
    for name, crossing in law.get("crossing", {}).items():
        f[f"sc.cross.{name}"] = ("never, up to 1e30 FLOPs" if crossing is None
                                 else f"from {crossing:.2g} FLOPs on".replace("e+", "e"))
    floor = float(law["systems"]["baseline"]["E"])
    slopes = ", ".join(f"{name} {law['systems'][name]['alpha']:.3f}"
                       for name in ("baseline", "lossless", "semantic"))
    f["sc.floor_note"] = (
        f"The laws share one floor (every system codes the same bytes, and none can beat the "
        f"text's own entropy); it is fitted at {floor:.3f} bits per byte: "
        + ("over the measured range no system bends towards a floor yet, so the laws are "
           f"nearly pure power laws and the ratios follow their slopes α alone ({slopes})."
           if floor < 0.05 else
           f"far beyond the measured range every law approaches it and the ratios drift "
           f"towards 1 (slopes α: {slopes})."))
    for size, p in plans.items():
        pred = p["scaling"]
        f[f"sc.{size}.flops"] = f"{pred['flops']:.2g}".replace("e+", "e")
        f[f"sc.{size}.decades"] = f"{pred['decades_beyond']:.0f}"
        for name, sys_pred in pred["systems"].items():
            lo_r, hi_r = sys_pred["ratio_interval"]
            f[f"sc.{size}.{name}"] = f"{sys_pred['ratio']:.2f}× [{lo_r:.2f}, {hi_r:.2f}]"
            low, high = sys_pred.get("leave_one_out", (float("nan"), float("nan")))
            f[f"sc.{size}.{name}_loo"] = f"{low:.2f}–{high:.2f}×"
    return f


def render(template: str | None = None) -> str:
    text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
    values = figures()

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key.startswith("table:"):
            return table(key.split(":", 1)[1])
        if key not in values:
            raise KeyError(f"{TEMPLATE}: no figure named {{{{{key}}}}}")
        return values[key]

    return FIELD.sub(fill, text)


def write_pngs() -> None:
    from dualmind.plan.report_plot import save_plot

    for size in RECIPES:
        save_plot(plan_of(size), REPO / "docs" / f"planning_core_{size}b.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {DOC.relative_to(REPO)}")
    parser.add_argument("--png", action="store_true", help="also regenerate the two plots")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOC.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if args.png:
        write_pngs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
