"""What the scaling study predicts for a planned run: each system's bits per byte at the run's
training FLOPs and its ratio to a BPE model of the same compute, with bootstrap intervals.

The laws (bits per byte = E + A·(C/C0)^-α per system, with bootstrap replicates over held-out
documents) are fitted and written by ``benchmarks/scaling_report.py`` into ``scaling_law.json``
beside this module, with the date, commit and machine of the run; ``dualmind plan
--scaling-law FILE`` reads another (the study run on your own data writes one into its work
folder). Nothing here is typed by hand: no file, no prediction ("not measured yet").
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .request import PlanError

LAW_FILE = Path(__file__).with_name("scaling_law.json")
NOT_MEASURED = "not measured yet"
SYSTEMS = ("lossless", "semantic")  # each against "baseline"


def load(path: str | Path | None = None) -> dict | None:
    """The fitted laws, or None when the default file is absent; a named file must exist."""
    file = Path(path) if path else LAW_FILE
    if not file.is_file():
        if path:
            raise PlanError("--scaling-law", f"{file}: no such file")
        return None
    try:
        law = json.loads(file.read_text(encoding="utf-8"))
        for name in ("baseline", *SYSTEMS):
            params = law["systems"][name]
            for key in ("E", "A", "alpha"):
                float(params[key])
            [[float(v) for v in row] for row in params["replicates"]]
        float(law["C0"])
        [float(v) for v in law["fitted_flops"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PlanError("--scaling-law", f"{file}: not a scaling law written by "
                        f"benchmarks/scaling_report.py ({type(err).__name__}: {err})") from None
    law["file"] = str(file)
    return law


def _bpb(params, flops: float, c0: float) -> float:
    e, a, alpha = (float(v) for v in params)
    return e + a * (flops / c0) ** -alpha


def _interval(values: list[float]) -> list[float]:
    """The central 95% of the bootstrap values (nearest rank)."""
    ordered = sorted(values)
    pick = [round(q * (len(ordered) - 1)) for q in (0.025, 0.975)]
    return [ordered[pick[0]], ordered[pick[1]]]


def prediction(law: dict | None, flops: float) -> dict:
    """Predicted bits per byte of each system and its ratio to the baseline at `flops`."""
    if law is None:
        return {"status": NOT_MEASURED}
    c0, systems = float(law["C0"]), law["systems"]
    base = systems["baseline"]
    out = {"status": "predicted", "flops": flops, "fitted_flops": law["fitted_flops"],
           "decades_beyond": max(0.0, math.log10(flops / float(law["fitted_flops"][1]))),
           "source": f"{law['source']} ({law['date']}, commit {law['commit']}, "
                     f"{law['machine']})", "file": law.get("file", str(LAW_FILE)), "systems": {}}
    base_draws = [_bpb(r, flops, c0) for r in base["replicates"]]
    loo = law.get("leave_one_out") or {}
    out["baseline_bpb"] = _bpb((base["E"], base["A"], base["alpha"]), flops, c0)
    for name in SYSTEMS:
        s = systems[name]
        draws = [_bpb(r, flops, c0) for r in s["replicates"]]
        bpb = _bpb((s["E"], s["A"], s["alpha"]), flops, c0)
        out["systems"][name] = {
            "bpb": bpb, "bpb_interval": _interval(draws),
            "ratio": bpb / out["baseline_bpb"],
            "ratio_interval": _interval([d / b for d, b in zip(draws, base_draws, strict=True)]),
        }
        if loo.get(name) and loo.get("baseline") and len(loo[name]) == len(loo["baseline"]):
            # refits leaving one budget out: how much the prediction leans on any one point
            ratios = [_bpb(r, flops, c0) / _bpb(b, flops, c0)
                      for r, b in zip(loo[name], loo["baseline"], strict=True)]
            out["systems"][name]["leave_one_out"] = [min(ratios), max(ratios)]
    return out
