"""The scaling study (benchmarks/scaling*.py, issue 14): the law fit recovers a known law, the
report fits the frontier of synthetic points and writes the laws the planner reads, and the
planner prints their prediction with its provenance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import scaling_fit  # noqa: E402
import scaling_report  # noqa: E402

from dualmind.plan import scaling_law  # noqa: E402
from dualmind.plan.request import PlanError  # noqa: E402

BUDGETS = np.logspace(12, 13.5, 5)
LAWS = {"baseline": (1.0, 1.5, 0.30), "lossless": (1.0, 2.5, 0.35), "semantic": (1.0, 3.0, 0.2)}


def law(system: str, flops):
    e, a, alpha = LAWS[system]
    return e + a * (np.asarray(flops) / 1e12) ** -alpha


def test_fit_recovers_a_known_law_and_its_replicates():
    params = scaling_fit.fit(BUDGETS, law("lossless", BUDGETS))
    assert params == pytest.approx(LAWS["lossless"], abs=0.01)
    rng = np.random.default_rng(0)
    noisy = law("lossless", BUDGETS) + rng.normal(0, 0.003, (50, len(BUDGETS)))
    reps = scaling_fit.fit(BUDGETS, noisy)
    assert reps.shape == (50, 3)
    lo, hi = scaling_fit.interval(scaling_fit.predict(reps, 1e13))
    assert lo < law("lossless", 1e13) < hi


def test_one_floor_for_all_systems_recovers_each_law():
    got = scaling_fit.fit_shared_floor({s: BUDGETS for s in LAWS},
                                       {s: law(s, BUDGETS)[None, :] for s in LAWS})
    for system, params in LAWS.items():
        assert got[system][0] == pytest.approx(params, abs=0.02), system


def test_fit_needs_three_budgets_and_keeps_the_floor_non_negative():
    with pytest.raises(ValueError, match="three budgets"):
        scaling_fit.fit(BUDGETS[:2], [2.0, 1.0])
    # a law that would extrapolate below zero bits: E is held at 0
    assert scaling_fit.fit(BUDGETS[:3], [3.0, 1.5, 0.2])[0] >= 0


def test_crossing_is_where_the_system_gets_ahead_for_good():
    sys_law, base_law = np.array(LAWS["lossless"]), np.array(LAWS["baseline"])
    cross = scaling_fit.crossing(sys_law, base_law, 1e12)  # behind at first, ahead later
    assert cross is not None and cross > 1e12
    assert law("lossless", cross) == pytest.approx(law("baseline", cross), abs=2e-3)
    assert scaling_fit.crossing(np.array(LAWS["semantic"]), base_law, 1e12) is None
    assert scaling_fit.crossing(base_law, np.array(LAWS["semantic"]), 1e12) == 1e12
    # ahead at first, behind for good later: never "ahead from" anywhere
    assert scaling_fit.crossing(base_law, sys_law, 1e12) is None


def fake_points(work: Path, docs: int = 12) -> None:
    """result.json files as benchmarks/scaling.py writes them: bits per document from the known
    laws (the larger shape better at the larger budgets), three shares at two budgets."""
    rng = np.random.default_rng(1)
    size = rng.integers(2000, 6000, docs)
    noise = rng.normal(0, 0.02, docs)

    def write(system, shape, budget, share, bpb):
        where = work / "points" / system / shape / (f"share{share:g}" if share else "") / \
            f"b{budget:.3e}"
        where.mkdir(parents=True)
        documents = [{"lang": "en" if i % 2 else "ru", "doc": i, "bytes": int(b),
                      "split_bytes": int(b), "core_bits": 0.0 if system == "baseline"
                      else float(0.5 * bpb * b), "decoder_bits": float((bpb * (0.5 if system !=
                      "baseline" else 1) + n) * b), "shuffled_bits": None}
                     for i, (b, n) in enumerate(zip(size, noise, strict=True))]
        (where / "result.json").write_text(json.dumps(
            {"system": system, "shape": shape, "budget": budget, "core_share": share,
             "shape_spec": {"core_batch": 4, "text_batch": 2},
             "flops": budget, "steps": {"lm": 100}, "point_s": 1.0, "documents": documents,
             "bpb": sum(d["core_bits"] + d["decoder_bits"] for d in documents) / size.sum()}))

    for level in ("lossless", "semantic"):  # what the report reads of the corpora: their size
        (work / f"corpus-{level}").mkdir(parents=True)
        (work / f"corpus-{level}" / "manifest.json").write_text(json.dumps(
            {"splits": {"train": {"units": 51200, "tokens": 102400, "bytes": 409600}}}))
    for system in LAWS:
        for shape, worse in (("xs", lambda b: 0.1 * np.log10(b / 1e12)), ("s", lambda b: 0.05)):
            for b in BUDGETS:
                share = None if system == "baseline" else 0.8
                write(system, shape, b, share, float(law(system, b) + worse(b)))
        if system != "baseline":
            for b in BUDGETS[[0, 2]]:
                write(system, "xs", b, 0.5, float(law(system, b) + 0.3))


def test_report_fits_the_frontier_and_the_planner_reads_it(tmp_path, capsys, monkeypatch):
    fake_points(tmp_path)
    assert scaling_report.main(["--work", str(tmp_path), "--own-data", "--replicates",
                                "40"]) == 0
    text = (tmp_path / "scaling.md").read_text()
    assert "| lossless | xs | 1e+12 | **" not in text  # the best share is 0.8, not 0.5
    # 100 lm steps x 2 rows x 512 tokens over 102,400 tokens: one pass
    assert "| BPE baseline | s | - | 1e+12 | 1e+12 | 100 lm | 1.0 |" in text
    assert "core_70b, 1 TB" in text and (tmp_path / "scaling.png").stat().st_size > 0
    fitted = json.loads((tmp_path / "scaling_law.json").read_text())
    assert fitted["core_share"] == {"lossless": 0.8, "semantic": 0.8}
    # the frontier is the better shape at each budget, so the law is the known one shifted
    # by at most the better shape's penalty
    assert fitted["systems"]["baseline"]["E"] == pytest.approx(LAWS["baseline"][0], abs=0.2)

    loaded = scaling_law.load(tmp_path / "scaling_law.json")
    got = scaling_law.prediction(loaded, 1e24)
    base = scaling_fit.predict(np.array([fitted["systems"]["baseline"][k]
                                         for k in ("E", "A", "alpha")]), 1e24)
    sys_ = scaling_fit.predict(np.array([fitted["systems"]["lossless"][k]
                                         for k in ("E", "A", "alpha")]), 1e24)
    assert got["systems"]["lossless"]["ratio"] == pytest.approx(sys_ / base)
    lo, hi = got["systems"]["lossless"]["ratio_interval"]
    assert lo <= hi and got["decades_beyond"] > 9

    from dualmind.plan.cli import main as plan_main

    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "400")  # one line per row: the row is found whole
    assert plan_main(["recipe=core_70b", "--scaling-law", str(tmp_path / "scaling_law.json")]) == 0
    out = capsys.readouterr().out
    assert "predicted bits per byte vs a BPE model of equal compute" in out
    assert "benchmarks/RESULTS.md, Scaling" in out


def test_the_planner_refuses_a_bad_law_file(tmp_path):
    bad = tmp_path / "law.json"
    bad.write_text('{"systems": {}}')
    with pytest.raises(PlanError, match="law.json"):
        scaling_law.load(bad)
    with pytest.raises(PlanError, match="no such file"):
        scaling_law.load(tmp_path / "missing.json")
    assert scaling_law.prediction(None, 1e24) == {"status": scaling_law.NOT_MEASURED}


@pytest.mark.slow  # ~1.5 min: 9 tiny trainings, each scored per document
def test_quick_mode_trains_scores_and_resumes(tmp_path):
    """`scaling_grid.py --quick` on four small files: the split sweep, the grid with the best
    share, one result per point with every held-out document scored; a rerun trains nothing."""
    import scaling_grid

    from test_equal_compute_inputs import four_files

    train, heldout = four_files(tmp_path / "in")
    work = tmp_path / "work"
    args = ["--quick", "--work", str(work), "--train", *train, "--heldout", *heldout]
    assert scaling_grid.main(args) == 0
    results = {p: json.loads(p.read_text()) for p in work.glob("points/**/result.json")}
    systems = {(r["system"], r["budget"]) for r in results.values()}
    assert systems == {(s, b) for s in LAWS for b in scaling_grid.QUICK_BUDGETS}
    scored = [r for r in results.values() if "bpb" in r]
    assert scored and all({d["lang"] for d in r["documents"]} == {"en", "ru"} for r in scored)
    assert "No law fitted" in (work / "scaling.md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in results}
    assert scaling_grid.main([*args, "--no-report"]) == 0
    assert {p: p.stat().st_mtime_ns for p in work.glob("points/**/result.json")} == stamps


def test_the_law_file_puts_each_replicate_on_one_line_and_keeps_every_value():
    law = {"command": "scaling.py budget=[1e12,2e12]", "replicates": [[0.0, 2.5, -0.09]] * 3,
           "crossing": None, "empty": [], "mixed": [1.0, None]}
    text = scaling_report.compact_json(law)
    assert json.loads(text) == law  # the string's brackets untouched, nothing lost
    assert text.count("[0.0, 2.5, -0.09]") == 3
