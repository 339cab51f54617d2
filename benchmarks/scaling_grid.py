"""The scaling study's standard grid (issue 14): Hydra multiruns of benchmarks/scaling.py, then
the report (benchmarks/scaling_report.py).

    .venv/bin/python benchmarks/scaling_grid.py            # ~1.8 h on 2 cores; resumable
    .venv/bin/python benchmarks/scaling_grid.py --print    # the sweeps, to run on a launcher
    .venv/bin/python benchmarks/scaling_grid.py --quick    # two tiny budgets: a smoke test
    .venv/bin/python benchmarks/scaling_grid.py --train en.txt ru.txt --heldout en_val.txt \
        ru_val.txt --work runs/bench/mine                  # your own text; report in --work

The sweeps, in order (each a `scaling.py -m ...` multirun; a finished point is skipped):
1. splits: the two-headed systems at two budgets with four core shares (shape xs);
2. grid: every system at five budgets spaced evenly in log-compute over 1.5 decades, each with
   the shapes sized for it (xs at all five, s at the four largest), the two-headed
   systems with `core_share=best` (the split sweep's best share, the report says which).
Extend it by adding budgets (--budgets) or shapes: the points already in --work are reused.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# 10^12 ... 10^13.5: five budgets, 0.375 decade apart
BUDGETS = tuple(round(10 ** (12 + 0.375 * i), -8) for i in range(5))
SHAPE_BUDGETS = {"xs": slice(0, 5), "s": slice(1, 5)}  # the shapes sized for each budget
SPLIT_BUDGETS = (0, 2)  # indices into the budgets: the split sweep's two budgets
SHARES = (0.35, 0.5, 0.65, 0.8)  # 0.35 added when 0.5, then the lowest, won the semantic split
QUICK_BUDGETS = (6e10, 1.5e11)


def sweeps(budgets: tuple[float, ...], quick: bool) -> list[list[str]]:
    """The multirun override lists, in the order they must run."""
    def csv(values) -> str:
        return ",".join(f"{v:g}" for v in values)

    if quick:  # one shape, two shares at the smallest budget, both budgets for the grid
        return [["system=lossless,semantic", "shape=xs", f"budget={budgets[0]:g}",
                 "core_share=0.4,0.6", "min_steps=2"],
                ["system=baseline,lossless,semantic", "shape=xs", f"budget={csv(budgets)}",
                 "core_share=best", "min_steps=2"]]
    out = [["system=lossless,semantic", "shape=xs",
            f"budget={csv(budgets[i] for i in SPLIT_BUDGETS)}", f"core_share={csv(SHARES)}"]]
    for shape, part in SHAPE_BUDGETS.items():
        out.append(["system=baseline,lossless,semantic", f"shape={shape}",
                    f"budget={csv(budgets[part])}", "core_share=best"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/bench/scaling", help="working folder")
    parser.add_argument("--quick", action="store_true",
                        help=f"two tiny budgets {QUICK_BUDGETS}, shape xs (a smoke test)")
    parser.add_argument("--budgets", nargs="+", type=float, default=None,
                        help="the grid's budgets in FLOPs, ascending (default: 1e12 ... 3.16e13)")
    parser.add_argument("--train", nargs="+", default=None, metavar="FILE",
                        help="training text (default: the embedded demo corpus); needs --heldout")
    parser.add_argument("--heldout", nargs="+", default=None, metavar="FILE",
                        help="held-out text, scored per document; needs --train")
    parser.add_argument("--print", action="store_true", dest="print_only",
                        help="print the multirun commands and run nothing")
    parser.add_argument("--no-report", action="store_true", help="train only")
    args = parser.parse_args(argv)
    if (args.train is None) != (args.heldout is None):
        parser.error("--train and --heldout go together (neither: the embedded demo corpus)")
    budgets = tuple(args.budgets or (QUICK_BUDGETS if args.quick else BUDGETS))
    if not args.quick and len(budgets) != len(BUDGETS):
        parser.error(f"--budgets: the grid assigns shapes to {len(BUDGETS)} budgets, got "
                     f"{len(budgets)}")
    common = [f"work={Path(args.work).resolve()}"]
    if args.train is not None:
        common += [f"train=[{','.join(args.train)}]", f"heldout=[{','.join(args.heldout)}]"]
    for overrides in sweeps(budgets, args.quick):
        command = [sys.executable, str(HERE / "scaling.py"), "-m", *overrides, *common]
        print("$ " + " ".join(command[1:]), flush=True)
        if not args.print_only:
            subprocess.run(command, check=True)
    if args.print_only or args.no_report:
        return 0
    from scaling_report import main as report

    return report(["--work", args.work, *(["--quick"] if args.quick else []),
                   *(["--own-data"] if args.train is not None else [])])


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
