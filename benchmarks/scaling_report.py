"""The scaling study's report (issue 14): collect the points of benchmarks/scaling.py, fit
L(C) = E + A*C^-alpha per system on its compute frontier, bootstrap over held-out documents,
extrapolate to the planner's core_70b and core_200b budgets, and write everything down.

    .venv/bin/python benchmarks/scaling_report.py --work runs/bench/scaling

Writes (demo corpus): benchmarks/RESULTS.md section "scaling", benchmarks/scaling.png and the
fitted laws the planner reads, src/dualmind/plan/scaling_law.json (date, commit, machine);
with --own-data (or --quick) the same three go into --work instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scaling import RESULT, SYSTEMS, best_share, machine  # noqa: E402
from scaling_fit import crossing, fit, fit_shared_floor, interval, predict  # noqa: E402

LAW_JSON = HERE.parent / "src" / "dualmind" / "plan" / "scaling_law.json"
TARGETS = ("core_70b", "core_200b")  # the planner's recipes, each on 1 TB of text
TARGET_CORPUS = "1TB"
REPLICATES = 1000  # bootstrap draws of the held-out documents
KEPT_REPLICATES = 200  # of them, written to the JSON the planner reads
LABEL = {"baseline": "BPE baseline", "lossless": "two-headed, lossless",
         "semantic": "two-headed, semantic"}
COLOR = {"baseline": "black", "lossless": "tab:orange", "semantic": "tab:blue"}


def load_points(work: Path) -> tuple[list[dict], list[dict]]:
    """(scored points, unaffordable ones) under work/points."""
    scored, skipped = [], []
    for path in sorted((work / "points").glob(f"**/{RESULT}")):
        r = json.loads(path.read_text(encoding="utf-8"))
        (scored if "bpb" in r else skipped).append(r)
    if not scored:
        raise SystemExit(f"no finished points under {work / 'points'}: run "
                         f"benchmarks/scaling_grid.py first")
    return scored, skipped


def document_table(points: list[dict]) -> tuple[list[tuple], np.ndarray]:
    """The held-out documents every point scored, [(lang, doc)] and their bytes; a point that
    scored other documents or other bytes would make the comparison lie, so it stops the report."""
    keys = [(d["lang"], d["doc"]) for d in points[0]["documents"]]
    size = np.array([d["bytes"] for d in points[0]["documents"]], dtype=np.float64)
    for p in points:
        if [(d["lang"], d["doc"]) for d in p["documents"]] != keys or not np.array_equal(
                [d["bytes"] for d in p["documents"]], size):
            raise SystemExit(f"{p['system']} {p['shape']} {p['budget']:g}: scored other held-out "
                             f"documents or bytes than {points[0]['system']} "
                             f"{points[0]['shape']} {points[0]['budget']:g}")
    return keys, size


def bits(point: dict) -> np.ndarray:
    return np.array([d["core_bits"] + d["decoder_bits"] for d in point["documents"]])


def grid_points(points: list[dict], shares: dict[str, float]) -> dict[str, list[dict]]:
    """Per system, the points of the grid: the two-headed ones at their best core share."""
    out = {s: [] for s in SYSTEMS}
    for p in points:
        if p["system"] == "baseline" or p["core_share"] == shares.get(p["system"]):
            out[p["system"]].append(p)
    return out


def frontier(system_points: list[dict], weights: np.ndarray, size: np.ndarray):
    """(budgets [B], bpb [R, B]): at each budget the best of the shapes, per bootstrap replicate
    (weights [R, D]: how often each held-out document is drawn)."""
    budgets = sorted({p["budget"] for p in system_points})
    total = weights @ size
    best = np.full((len(weights), len(budgets)), np.inf)
    for j, b in enumerate(budgets):
        for p in (p for p in system_points if p["budget"] == b):
            best[:, j] = np.minimum(best[:, j], (weights @ bits(p)) / total)
    return np.array(budgets), best


def planner_budget(recipe: str) -> dict:
    """Training FLOPs of the planned run (core pretraining + alignment) on 1 TB, from the
    planner itself, with what it assumed."""
    from dualmind.plan.cli import add_arguments, request_from_args
    from dualmind.plan.planner import plan

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    result = plan(request_from_args(parser.parse_args([f"recipe={recipe}", "--corpus",
                                                       TARGET_CORPUS]))).to_dict()
    core, align = result["compute"]["flops"], result["alignment"]["flops"]
    return {"recipe": recipe, "corpus": TARGET_CORPUS, "flops": core + align,
            "core_flops": core, "align_flops": align, "core_share": core / (core + align)}


def analyse(work: Path, replicates: int = REPLICATES, seed: int = 0) -> dict:
    """Everything the report prints, from the points alone."""
    points, skipped = load_points(work)
    keys, size = document_table(points)
    shares = {}
    for s in SYSTEMS[1:]:
        try:
            shares[s] = best_share(work, s)
        except SystemExit:  # no split sweep: the one share that ran, if only one did
            ran = {p["core_share"] for p in points if p["system"] == s}
            if len(ran) == 1:
                shares[s] = ran.pop()
    grid = grid_points(points, shares)
    rng = np.random.default_rng(seed)
    weights = np.vstack([np.ones(len(keys)),  # replicate 0: the documents as they are
                         rng.multinomial(len(keys), np.full(len(keys), 1 / len(keys)),
                                         size=replicates)]).astype(np.float64)
    fronts = {s: frontier(grid[s], weights, size) for s in SYSTEMS if grid[s]}
    out = {"work": work, "points": points, "skipped": skipped, "keys": keys, "size": size,
           "shares": shares, "grid": grid, "fronts": fronts, "fits": {}, "own_floor": {}, "loo": {},
           "lang_fits": {},
           "replicates": replicates}
    if all(len(f[0]) >= 3 for f in fronts.values()) and len(fronts) == len(SYSTEMS):
        budgets = {s: f[0] for s, f in fronts.items()}
        # the laws share one floor (scaling_fit.fit_shared_floor says why); row 0 of each is the
        # fit to all documents, the others the bootstrap draws
        out["fits"] = fit_shared_floor(budgets, {s: f[1] for s, f in fronts.items()})
        # each system with its own floor (all documents): how much the shared floor decides
        out["own_floor"] = {s: fit(budgets[s], f[1][0]) for s, f in fronts.items()}
        # leave one budget out (all documents): how much the laws lean on any one point
        if len({len(b) for b in budgets.values()}) == 1 and len(budgets["baseline"]) > 3:
            drops = [fit_shared_floor({s: np.delete(b, j) for s, b in budgets.items()},
                                      {s: np.delete(f[1][:1], j, axis=1)
                                       for s, f in fronts.items()})
                     for j in range(len(budgets["baseline"]))]
            out["loo"] = {s: np.vstack([d[s] for d in drops]) for s in SYSTEMS}
        else:
            out["loo"] = dict.fromkeys(SYSTEMS)
        out["targets"] = [planner_budget(r) for r in TARGETS]
        # each language on its own (all its documents, no bootstrap): does the verdict hold in both?
        for lang in sorted({k[0] for k in keys}):
            only = np.array([[k[0] == lang for k in keys]], dtype=np.float64)
            front = {s: frontier(grid[s], only, size) for s in fronts}
            laws = fit_shared_floor({s: f[0] for s, f in front.items()},
                                    {s: f[1] for s, f in front.items()})
            out["lang_fits"][lang] = {s: law[0] for s, law in laws.items()}
    return out


def ratio_at(fits: dict, system: str, flops: float) -> tuple[float, tuple[float, float]]:
    """Predicted system / baseline bits per byte at `flops`: all documents, and the bootstrap
    interval (paired: both laws fitted to the same draw)."""
    r = predict(fits[system], flops) / predict(fits["baseline"], flops)
    return float(r[0]), interval(r[1:])


def _git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=HERE).stdout.strip()


def compact_json(obj) -> str:
    """JSON with one line per [E, A, alpha] replicate (indent 1 put every number on its own
    line: 3,000 lines for 1,000 replicates of three systems)."""
    text = json.dumps(obj, indent=1)
    # a list of numbers that indent broke over lines (never inside a string: it holds no \n)
    flat = re.compile(r"\[\n\s*([-+0-9.eE, \n]+?)\n\s*\]")
    return flat.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
                    text) + "\n"


def law_json(a: dict, command: str) -> dict:
    """What the planner reads: the fitted laws, bootstrap replicates and provenance."""
    budgets = [float(f[0][i]) for f in a["fronts"].values() for i in (0, -1)]
    keep = slice(1, 1 + KEPT_REPLICATES)
    return {
        "source": "benchmarks/RESULTS.md, Scaling",
        "command": command,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "commit": _git_commit(),
        "machine": machine(),
        "law": "bits per byte = E + A * (C / C0) ** -alpha, C training FLOPs",
        "C0": 1e12,
        "fitted_flops": [min(budgets), max(budgets)],
        "core_share": a["shares"],
        "leave_one_out": {s: None if a["loo"][s] is None else
                          [[float(f"{v:.6g}") for v in row] for row in a["loo"][s]]
                          for s in SYSTEMS},
        "crossing": {s: crossing(a["fits"][s][0], a["fits"]["baseline"][0], min(budgets))
                     for s in SYSTEMS[1:]},
        "systems": {s: {"E": float(f[0, 0]), "A": float(f[0, 1]), "alpha": float(f[0, 2]),
                        "replicates": [[float(f"{v:.6g}") for v in row] for row in f[keep]]}
                    for s, f in a["fits"].items()},
    }


def _fmt_ci(lo: float, hi: float, digits: int = 3) -> str:
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown(a: dict, command: str, corpus: str) -> str:
    points, size, keys = a["points"], a["size"], a["keys"]
    langs = sorted({k[0] for k in keys})
    wall = sum(p.get("point_s", 0.0) for p in points)
    machines = sorted({p["machine"] for p in points if p.get("machine")}) or [machine()]
    lines = ["## Scaling: bits per byte against training compute (issue 14)", "",
             f"`{command}`, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, commit "
             f"{_git_commit()}; trained and scored on {' and '.join(machines)}; {len(points)} "
             f"points, {wall / 60:.0f} min of training and scoring. {corpus}; held out: "
             + ", ".join(f"{lang} {int(size[[k[0] == lang for k in keys]].sum()):,} bytes in "
                         f"{sum(k[0] == lang for k in keys)} documents" for lang in langs)
             + ", the same bytes for every point (checked). FLOPs counted as "
             "benchmarks/equal_compute.py counts them (6N + attention per trained position; "
             "alignment also pays the frozen core's forward); each point's learning-rate "
             "schedule spans its own budget. Bits per byte of a two-headed point = (core code + "
             "decoder code) / bytes.", ""]
    lines += split_table(a) + [""] + point_table(a, langs) + [""]
    if a["skipped"]:
        lines.append("Recorded as unaffordable (too few optimizer steps for the budget): "
                     + "; ".join(f"{p['system']} {p['shape']} at {p['budget']:.3g} "
                                 f"({p['steps']})" for p in a["skipped"]) + ".")
        lines.append("")
    if not a["fits"]:
        lines.append("No law fitted: every system needs points at three budgets or more.")
        return "\n".join(lines)
    lines += fit_table(a) + [""] + extrapolation(a) + [""] + explanation(a)
    lines += ["", "![scaling](scaling.png)", ""]
    return "\n".join(lines)


def split_table(a: dict) -> list[str]:
    rows = [p for p in a["points"] if p["system"] != "baseline"]
    combos = sorted({(p["system"], p["shape"], p["budget"]) for p in rows})
    tried = {c for c in combos if len({p["core_share"] for p in rows
                                       if (p["system"], p["shape"], p["budget"]) == c}) > 1}
    if not tried:
        return ["Core/decoder split: one share per point, no split sweep in this work folder."]
    shares = sorted({p["core_share"] for p in rows})
    lines = ["Core/decoder split (share of the budget that pretrains the core), held-out bits "
             "per byte; the best share (lowest mean over these budgets) is used for every other "
             "point:", "", "| system | shape | budget | " + " | ".join(f"core {s:g}" for s in
                                                                      shares) + " |",
             "|" + "---|" * (3 + len(shares))]
    for system, shape, budget in sorted(tried):
        cells = []
        for s in shares:
            hit = [p["bpb"] for p in rows if (p["system"], p["shape"], p["budget"],
                                               p["core_share"]) == (system, shape, budget, s)]
            mark = "**" if s == a["shares"].get(system) else ""
            cells.append(f"{mark}{hit[0]:.4f}{mark}" if hit else "-")
        lines.append(f"| {system} | {shape} | {budget:.3g} | " + " | ".join(cells) + " |")
    return lines


def taken_from_core(docs: list[dict]) -> str:
    """Bits per byte the decoder takes from its own core (another row's core minus its own),
    over the documents with a control: one that fits a single row has no other row to read."""
    have = [d for d in docs if d["shuffled_bits"] is not None]
    if not have:
        return "-"
    taken = sum(d["shuffled_bits"] - d["decoder_bits"] for d in have) / sum(d["bytes"]
                                                                            for d in have)
    return f"{taken:.3f}" + ("" if len(have) == len(docs) else f" ({len(have)}/{len(docs)} docs)")


STAGE_RECIPE = {"core": "core_mini", "align": "decoder_align", "lm": "baseline_bpe_mini"}


@functools.cache
def row_length(recipe: str) -> int:
    from dualmind.config.schema import compose

    return int(compose([f"recipe={recipe}"], validate_cfg=False).data.seq_len)


def passes(p: dict, work: Path) -> dict[str, float]:
    """About how many times each stage went over the training split: positions trained (steps x
    rows x row length) / positions in the split (core units for the core and the align rows,
    whose rows are core units; BPE tokens for the baseline)."""
    train = train_split(work / f"corpus-{'semantic' if p['system'] == 'baseline' else p['system']}")
    out = {}
    for stage, steps in p["steps"].items():
        rows = p["shape_spec"]["core_batch" if stage == "core" else "text_batch"]
        positions = steps * rows * row_length(STAGE_RECIPE[stage])
        out[stage] = positions / train["tokens" if stage == "lm" else "units"]
    return out


@functools.cache
def train_split(corpus: Path) -> dict:
    """The corpus manifest's training split (sizes), read once per corpus."""
    return json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))["splits"]["train"]


def train_bytes(work: Path) -> int:
    """Bytes of text in the training split (the same documents under every lexicon level)."""
    return int(train_split(work / "corpus-semantic")["bytes"])


def explanation(a: dict) -> list[str]:
    """What the largest budget's frontier points saw: text per FLOP is what the systems trade."""
    top = max(a["fronts"]["baseline"][0])
    lines = [f"What explains it, at the largest budget ({top:.3g} FLOPs; training text "
             f"{train_bytes(a['work']) / 1e6:.1f} MB):"]
    for s in SYSTEMS:
        p = min((p for p in a["grid"][s] if p["budget"] == top), key=lambda p: p["bpb"])
        share = {"core": p["core_share"], "align": 1 - (p["core_share"] or 0), "lm": 1.0}
        seen = {k: v * train_bytes(a["work"]) for k, v in passes(p, a["work"]).items()}
        what = ", ".join(f"{stage} {b / 1e6:.1f} MB ({b / train_bytes(a['work']):.1f} passes, "
                         f"{share[stage] * p['flops'] / b:.2g} FLOPs per byte)"
                         for stage, b in seen.items())
        lines.append(f"- {LABEL[s]} (shape {p['shape']}): text seen by each stage: {what}; "
                     f"{p['bpb']:.3f} bits per byte.")
    return lines


def point_table(a: dict, langs: list[str]) -> list[str]:
    keys, size = a["keys"], a["size"]
    lines = ["Every point of the grid (bold: the best shape at its budget, on the frontier the "
             "law is fitted to):", "",
             "| system | shape | core share | budget | FLOPs | steps | ≈ passes over the training "
             "text | **bpb** | " + " | ".join(langs)
             + " | core part | bits taken from the core | x baseline |",
             "|" + "---|" * (11 + len(langs))]
    for system in SYSTEMS:
        budgets = sorted({p["budget"] for p in a["grid"][system]})
        for b in budgets:
            at = [p for p in a["grid"][system] if p["budget"] == b]
            best = min(at, key=lambda p: p["bpb"])
            base_best = min((p for p in a["grid"]["baseline"] if p["budget"] == b),
                            key=lambda p: p["bpb"], default=None)
            for p in sorted(at, key=lambda p: p["shape"]):
                docs = p["documents"]
                per_lang = []
                for lang in langs:
                    sel = [k[0] == lang for k in keys]
                    per_lang.append(f"{bits(p)[sel].sum() / size[sel].sum():.3f}")
                core = "-" if system == "baseline" else \
                    f"{sum(d['core_bits'] for d in docs) / size.sum():.3f}"
                taken = taken_from_core(docs)
                ratio = "-" if base_best is None else f"{p['bpb'] / base_best['bpb']:.3f}"
                bold = "**" if p is best else ""
                steps = " + ".join(f"{v} {k}" for k, v in p["steps"].items())
                share = "-" if p["core_share"] is None else f"{p['core_share']:g}"
                lines.append(f"| {LABEL[system]} | {p['shape']} | {share} | {b:.3g} | "
                             f"{p['flops']:.3g} | {steps} | "
                             f"{' / '.join(f'{v:.1f}' for v in passes(p, a['work']).values())} | "
                             f"{bold}{p['bpb']:.4f}{bold} | "
                             + " | ".join(per_lang) + f" | {core} | {taken} | {ratio} |")
    return lines


def fit_table(a: dict) -> list[str]:
    lines = [f"Fitted on each system's frontier (the best shape at each budget): bits per byte = "
             f"E + A·(C/1e12)^-α with one floor E for all three systems (they code the same "
             f"bytes, and none can go below the text's own entropy at unlimited compute), A and α "
             f"per system; 95% intervals from {a['replicates']} bootstrap draws of the held-out "
             f"documents (the same draws for every system). The last column fits each system "
             f"with its own floor instead (all documents):", "",
             "| system | budgets | E (shared) | A | α | own floor: E, A, α |",
             "|---|---|---|---|---|---|"]
    for s, f in a["fits"].items():
        cells = [f"{f[0, i]:.3f} {_fmt_ci(*interval(f[1:, i]))}" for i in range(3)]
        own = ", ".join(f"{v:.3f}" for v in a["own_floor"][s])
        budgets = a["fronts"][s][0]
        lines.append(f"| {LABEL[s]} | {len(budgets)}, {budgets[0]:.3g} … {budgets[-1]:.3g} | "
                     + " | ".join(cells) + f" | {own} |")
    return lines


def extrapolation(a: dict) -> list[str]:
    fits, targets = a["fits"], a["targets"]
    lo_fit = max(f[0][0] for f in a["fronts"].values())
    hi_fit = min(f[0][-1] for f in a["fronts"].values())
    lines = ["Extrapolated to the planner's runs on 1 TB of text (`dualmind plan recipe=... "
             "--corpus 1TB`: core pretraining + alignment FLOPs; the baseline gets the same "
             f"total). The fits cover {lo_fit:.2g} … {hi_fit:.2g} FLOPs, so these are "
             f"extrapolations over {np.log10(targets[0]['flops'] / hi_fit):.1f} to "
             f"{np.log10(targets[-1]['flops'] / hi_fit):.1f} decades: the interval says how much "
             "the held-out documents move the laws, not how far the law form holds; the last "
             "column refits without each budget in turn (all documents) and gives the range of "
             "the predicted ratio.", "",
             "| planned run | training FLOPs | system | predicted bpb | **x baseline** | "
             "leave one budget out | own floors |", "|---|---|---|---|---|---|---|"]
    for t in targets:
        base = predict(fits["baseline"], t["flops"])
        lines.append(f"| {t['recipe']}, 1 TB | {t['flops']:.3g} | {LABEL['baseline']} | "
                     f"{base[0]:.3f} {_fmt_ci(*interval(base[1:]))} | 1 | - | - |")
        for s in SYSTEMS[1:]:
            pred = predict(fits[s], t["flops"])
            r, ci = ratio_at(fits, s, t["flops"])
            spread = loo_range(a, s, t["flops"])
            own = law_ratio(a["own_floor"], s, t["flops"])
            lines.append(f"| | | {LABEL[s]} | {pred[0]:.3f} {_fmt_ci(*interval(pred[1:]))} | "
                         f"**{r:.3f}** {_fmt_ci(*ci)} | {spread} | {own:.3f} |")
    floor = float(fits["baseline"][0, 0])
    slopes = ", ".join(f"{LABEL[s]} {fits[s][0, 2]:.3f}" for s in SYSTEMS)
    if floor < 0.05:
        note = [f"The shared floor is fitted at {floor:.3f} bits per byte: no system shows a floor "
                f"over the measured range yet, the laws are nearly pure power laws, the "
                f"extrapolated bits per byte keep falling (the baseline's to "
                f"{float(predict(fits['baseline'][0], targets[0]['flops'])):.3f} at "
                f"{targets[0]['flops']:.2g} FLOPs) and the ratios follow the slopes α alone "
                f"({slopes}).", ""]
    else:
        note = [f"The shared floor is fitted at {floor:.3f} bits per byte; far beyond the "
                f"measured range every law approaches it, so the ratios drift towards 1 "
                f"(slopes α: {slopes}).", ""]
    for lang, by_system in a["lang_fits"].items():
        ratios = ", ".join(f"{t['recipe']} {s} {law_ratio(by_system, s, t['flops']):.3f}x"
                           for t in targets for s in SYSTEMS[1:])
        lines.append(f"| {lang} only | | laws fitted to its documents alone | | {ratios} | | |")
    lines.append("")
    lines += note
    for s in SYSTEMS[1:]:
        cross = crossing(fits[s][0], fits["baseline"][0], lo_fit)
        draws = [crossing(f, b, lo_fit) for f, b in zip(fits[s][1:], fits["baseline"][1:],
                                                         strict=True)]
        found = [c for c in draws if c is not None]
        where = ("behind the baseline at every compute up to 1e30 FLOPs" if cross is None else
                 f"ahead of the baseline from {cross:.2g} FLOPs on"
                 + (" (inside the fitted range)" if cross <= hi_fit else " (extrapolated)"))
        share = f"{len(found)} of {len(draws)} bootstrap draws put it ahead somewhere"
        if found:
            share += f", from {min(found):.2g} to {max(found):.2g} FLOPs"
        r0, _ = ratio_at(fits, s, lo_fit)
        r1, _ = ratio_at(fits, s, hi_fit)
        lines.append(f"- {LABEL[s]}: {r0:.3f}x the baseline at {lo_fit:.2g} FLOPs, {r1:.3f}x at "
                     f"{hi_fit:.2g} (the laws); {where}; {share}.")
    return lines


def law_ratio(by_system: dict, system: str, flops: float) -> float:
    return float(predict(by_system[system], flops) / predict(by_system["baseline"], flops))


def loo_bounds(a: dict, system: str, flops: float) -> tuple[float, float] | None:
    """Lowest and highest predicted ratio over the refits that leave one budget out (the same
    budget left out of every law)."""
    loo, base = a["loo"][system], a["loo"]["baseline"]
    if loo is None or base is None:
        return None
    r = predict(loo, flops) / predict(base, flops)
    return float(r.min()), float(r.max())


def loo_range(a: dict, system: str, flops: float) -> str:
    bounds = loo_bounds(a, system, flops)
    return "-" if bounds is None else _fmt_ci(*bounds)


def verdict(a: dict) -> str:
    """The README's one-sentence verdict, from the same fits as the report."""
    t = a["targets"][0]
    lo = max(f[0][0] for f in a["fronts"].values())
    hi = min(f[0][-1] for f in a["fronts"].values())
    base_front = a["fronts"]["baseline"][1][0]
    cells, behind = [], True
    for s in SYSTEMS[1:]:
        r, (lo_r, hi_r) = ratio_at(a["fits"], s, t["flops"])
        measured = a["fronts"][s][1][0] / base_front
        behind = behind and bool(measured.min() > 1)
        cross = crossing(a["fits"][s][0], a["fits"]["baseline"][0], lo)
        ahead = "never ahead" if cross is None else f"ahead from {cross:.1g} FLOPs"
        loo = loo_bounds(a, s, t["flops"])
        settled = "" if loo is None else (
            f", leaving one budget out {loo[0]:.2f}–{loo[1]:.2f}x"
            + (": the sign is not settled" if loo[0] < 1 < loo[1] else ""))
        cells.append(f"{s} {measured.min():.2f}–{measured.max():.2f}x measured, "
                     f"{r:.2f}x [{lo_r:.2f}, {hi_r:.2f}] predicted{settled}, {ahead}")
    return (f"**Scaling verdict** ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d}, "
            f"`benchmarks/RESULTS.md`, Scaling): "
            + (f"at every budget from {lo:.2g} to {hi:.2g} training FLOPs on the demo corpus the "
               f"two-headed model needs more bits per byte than a BPE model of equal compute"
               if behind else f"from {lo:.2g} to {hi:.2g} training FLOPs on the demo corpus the "
               f"two-headed model is ahead of a BPE model of equal compute at some budgets")
            + f", and laws fitted to those budgets (one shared floor) extrapolate to the "
            f"{t['recipe']} run on 1 TB ({t['flops']:.2g} FLOPs) as "
            f"{'; '.join(cells)}: an extrapolation over {np.log10(t['flops'] / hi):.0f} decades "
            f"from models of a few million parameters, its 95% intervals covering only the "
            f"choice of held-out documents.")


def _style(ax, ylabel: str, title: str) -> None:
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def plot(a: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fits, fronts = a["fits"], a["fronts"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    markers = {"xs": "o", "s": "s", "m": "^"}
    for s in SYSTEMS:
        for p in a["grid"][s]:
            left.plot(p["flops"], p["bpb"], markers.get(p["shape"], "x"), color=COLOR[s],
                      alpha=0.8, markersize=6)
        if s in fits:
            lo, hi = fronts[s][0][0], fronts[s][0][-1]
            grid = np.logspace(np.log10(lo) - 0.1, np.log10(hi) + 0.3, 100)
            curves = predict(fits[s][1:, None, :], grid[None, :])
            band = np.percentile(curves, [2.5, 97.5], axis=0)
            left.plot(grid, predict(fits[s][0], grid), "-", color=COLOR[s], label=LABEL[s])
            left.fill_between(grid, band[0], band[1], color=COLOR[s], alpha=0.2)
    _style(left, "held-out bits per byte", "points (o xs, ■ s, ▲ m), fits on the frontier, "
           "95% bands")
    if fits:
        lo = max(f[0][0] for f in fronts.values())
        grid = np.logspace(np.log10(lo), np.log10(max(t["flops"] for t in a["targets"])) + 0.5,
                           200)
        for s in SYSTEMS[1:]:
            ratio = predict(fits[s][:, None, :], grid[None, :]) / \
                predict(fits["baseline"][:, None, :], grid[None, :])
            band = np.percentile(ratio[1:], [2.5, 97.5], axis=0)
            right.plot(grid, ratio[0], color=COLOR[s], label=LABEL[s])
            right.fill_between(grid, band[0], band[1], color=COLOR[s], alpha=0.2)
        hi = min(f[0][-1] for f in fronts.values())
        right.axvspan(lo, hi, color="grey", alpha=0.15, label="measured range")
        for t in a["targets"]:
            right.axvline(t["flops"], color="grey", ls=":")
            right.text(t["flops"], right.get_ylim()[1], t["recipe"], rotation=90, va="top",
                       fontsize=8)
        right.axhline(1.0, color="black", lw=1)
        _style(right, "system bits per byte / BPE baseline's",
               "extrapolated ratio to the baseline (95% bands: documents only)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/bench/scaling", help="the study's working folder")
    parser.add_argument("--own-data", action="store_true",
                        help="the points came from --train files: write into --work only")
    parser.add_argument("--quick", action="store_true", help="a smoke run: write into --work only")
    parser.add_argument("--replicates", type=int, default=REPLICATES)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    a = analyse(work, args.replicates)
    command = "benchmarks/scaling_grid.py" + (" --quick" if args.quick else "")
    corpus = "Your corpus (--train/--heldout)" if args.own_data else "Embedded demo corpus"
    text = markdown(a, command, corpus)
    print(text)
    if args.no_write:
        return 0
    local = args.own_data or args.quick
    out = work if local else HERE
    if a["fits"]:
        plot(a, out / "scaling.png")
        law = compact_json(law_json(a, command))
        (work / "scaling_law.json" if local else LAW_JSON).write_text(law, encoding="utf-8")
    if local:
        (work / "scaling.md").write_text(text + "\n", encoding="utf-8")
        laws = f", {work / 'scaling.png'} and {work / 'scaling_law.json'}" if a["fits"] else ""
        print(f"wrote {work / 'scaling.md'}{laws}")
    else:
        from results_md import write_section

        write_section("scaling", text)
        if a["fits"]:
            write_section("scaling_verdict", verdict(a), HERE.parent / "README.md")
        print(f"wrote {HERE / 'RESULTS.md'}, {HERE / 'scaling.png'}, {LAW_JSON} and the "
              f"README's verdict")
    return 0


if __name__ == "__main__":
    sys.exit(main())
