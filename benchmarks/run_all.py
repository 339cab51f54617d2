"""`make bench`: run every benchmark in turn; each writes its own section of RESULTS.md.

Benchmarks are run one after another, never in parallel: these machines have two cores
and every figure is a ratio against a peer measured in the same run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "runs" / "demo"
# (script, arguments, what must exist first). Order: cheap first, so a broken environment fails
# fast. The bridge and adapter benchmarks measure the models `make demo` trained.
BENCHMARKS: list[tuple[str, list[str], Path | None]] = [
    ("codec.py", [], None),
    ("train_throughput.py", [], None),
    ("core_mini_curve.py", [], None),
    ("parallel_throughput.py", [], None),
    ("export_hf.py", [], None),  # the Hugging Face export at the 125m shape (~1 min)
    ("generation.py", ["--demo", str(DEMO)], DEMO / "decoder_align"),
    ("adapt.py", ["--core", str(DEMO / "core_mini/checkpoints/last.ckpt"),
                  "--corpus", str(DEMO / "corpus")], DEMO / "core_mini"),
    ("equal_compute.py", [], None),
    ("scaling_grid.py", [], None),  # the scaling study: 35 points (~1.8 h), resumable
    ("faults.py", [], None),  # the reliability campaign: kill -9 and bad inputs (~15 min)
]


def main() -> int:
    failed = []
    for name, args, needs in BENCHMARKS:
        path = HERE / name
        if not path.exists():
            print(f"[bench] {name}: missing, skipped")
            failed.append(name)
            continue
        if needs is not None and not needs.exists():
            print(f"[bench] {name}: needs {needs} (run `make demo` first), skipped")
            failed.append(name)
            continue
        print(f"[bench] running {name} {' '.join(args)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(path), *args], cwd=HERE.parent)
        print(f"[bench] {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    print(f"[bench] results: {HERE / 'RESULTS.md'}")
    if failed:
        print(f"[bench] failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
