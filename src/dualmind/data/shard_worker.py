"""Run `build_shard` in worker processes started as `python -m dualmind.data.shard_worker`.

Why not multiprocessing: `spawn` re-imports the caller's `__main__` (a script without an
`if __name__ == "__main__"` guard would run again in every worker) and `fork` copies the
parent's torch and tokenizers threads. A fresh interpreter reading one task per line on stdin
and answering one JSON line on stdout has neither problem, and a worker that dies is noticed.

Protocol: stdin `OUT_DIR<TAB>SPLIT<TAB>INDEX<TAB>NUM_SHARDS`; stdout `{"ok": true, "stats": {...}}`
or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path


def serve() -> int:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one worker = one core
    from dualmind.data.corpus import build_shard

    for line in sys.stdin:
        if not line.strip():
            continue
        out_dir, split, k, n = line.rstrip("\n").split("\t")
        try:
            stats = build_shard(out_dir, split, int(k), int(n))
            reply = {"ok": True, "stats": stats}
        except Exception as e:  # reported to the parent, which raises with the shard's name
            reply = {
                "ok": False,
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
            }
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


class WorkerError(RuntimeError):
    pass


def run_in_workers(
    out_dir: Path,
    tasks: list[tuple[str, int, int]],
    workers: int,
    on_done: Callable[[tuple[str, int, int], dict], None],
) -> None:
    """Run the tasks on `workers` worker processes; call on_done(task, stats) as each finishes."""
    todo: queue.Queue = queue.Queue()
    for t in tasks:
        todo.put(t)
    done: queue.Queue = queue.Queue()
    env = dict(
        os.environ,
        TOKENIZERS_PARALLELISM="false",
        RAYON_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([p for p in sys.path if p]),
    )

    def drive(slot: int) -> None:
        with tempfile.TemporaryFile(mode="w+") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dualmind.data.shard_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
            try:
                while True:
                    try:
                        task = todo.get_nowait()
                    except queue.Empty:
                        return
                    proc.stdin.write(
                        "\t".join([str(out_dir), task[0], str(task[1]), str(task[2])]) + "\n"
                    )
                    proc.stdin.flush()
                    line = proc.stdout.readline()
                    if not line:
                        proc.wait()
                        err.seek(0)
                        tail = err.read()[-2000:]
                        done.put(
                            (
                                task,
                                None,
                                f"worker process exited with code {proc.returncode}\n{tail}",
                            )
                        )
                        return
                    reply = json.loads(line)
                    done.put(
                        (
                            task,
                            reply.get("stats"),
                            None
                            if reply["ok"]
                            else reply["error"] + "\n" + reply.get("traceback", ""),
                        )
                    )
                    if not reply["ok"]:
                        return
            finally:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait()

    threads = [
        threading.Thread(target=drive, args=(i,), daemon=True) for i in range(max(1, workers))
    ]
    for t in threads:
        t.start()
    remaining = len(tasks)
    failure = None
    while remaining and failure is None:
        try:
            task, stats, error = done.get(timeout=0.5)
        except queue.Empty:
            if not any(t.is_alive() for t in threads) and done.empty():
                failure = "all worker processes stopped before the work was done"
            continue
        remaining -= 1
        if error is not None:
            failure = f"shard {task[0]}-{task[1]:05d} failed: {error}"
        else:
            on_done(task, stats)
    if failure:
        while not todo.empty():  # let the other workers stop after their current shard
            todo.get_nowait()
        for t in threads:
            t.join()
        raise WorkerError(failure)
    for t in threads:
        t.join()


if __name__ == "__main__":
    raise SystemExit(serve())
