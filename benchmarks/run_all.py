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
# Order: cheap first, so a broken environment fails fast.
BENCHMARKS = ["codec.py", "train_throughput.py", "core_mini_curve.py"]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        path = HERE / name
        if not path.exists():
            print(f"[bench] {name}: missing, skipped")
            failed.append(name)
            continue
        print(f"[bench] running {name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(path)], cwd=HERE.parent)
        print(f"[bench] {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    print(f"[bench] results: {HERE / 'RESULTS.md'}")
    if failed:
        print(f"[bench] failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
