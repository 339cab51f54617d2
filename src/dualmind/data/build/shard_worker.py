"""Run `build_shard` in worker processes started as `python -m dualmind.data.build.shard_worker`.

Why not multiprocessing: `spawn` re-imports the caller's `__main__` (a script without an
`if __name__ == "__main__"` guard would run again in every worker) and `fork` copies the
parent's torch and tokenizers threads. A fresh interpreter reading one task per line on stdin
and answering JSON lines on stdout has neither problem, and a worker that dies is noticed.

Protocol: stdin `OUT_DIR<TAB>SPLIT<TAB>INDEX<TAB>NUM_SHARDS`; stdout, while the shard is built,
`{"progress": chars}` lines (at most a few per second), then `{"ok": true, "stats": {...}}` or
`{"ok": false, "error": "..."}`. Anything else the shard code prints goes to stderr.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

PROGRESS_EVERY_S = 0.25


class ProgressSender:
    """Batches progress (characters encoded) into a few protocol lines per second."""

    def __init__(self, send: Callable[[dict], None]):
        self.send, self.pending, self.last = send, 0, time.monotonic()

    def __call__(self, chars: int) -> None:
        self.pending += chars
        if time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.send({"progress": self.pending})
        self.pending, self.last = 0, time.monotonic()


def serve() -> int:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one worker = one core
    protocol = sys.stdout
    sys.stdout = sys.stderr  # a stray print() must not break the protocol
    from dualmind.data.build.shard_build import build_shard

    def send(obj: dict) -> None:
        protocol.write(json.dumps(obj) + "\n")
        protocol.flush()

    for line in sys.stdin:
        if not line.strip():
            continue
        out_dir, split, k, n = line.rstrip("\n").split("\t")
        progress = ProgressSender(send)
        try:
            stats = build_shard(out_dir, split, int(k), int(n), progress=progress)
            progress.flush()
            reply = {"ok": True, "stats": stats}
        except Exception as e:  # reported to the parent, which raises with the shard's name
            reply = {
                "ok": False,
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
            }
        send(reply)
    return 0


class WorkerError(RuntimeError):
    pass


def run_in_workers(
    out_dir: Path,
    tasks: list[tuple[str, int, int]],
    workers: int,
    on_done: Callable[[tuple[str, int, int], dict], None],
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Run the tasks on `workers` worker processes; call on_done(task, stats) as each
    finishes and on_progress(chars) as documents are encoded."""
    todo: queue.Queue = queue.Queue()
    for t in tasks:
        todo.put(t)
    events: queue.Queue = (
        queue.Queue()
    )  # ("progress", None, n) | ("done", task, stats) | ("error", task, msg)
    env = dict(
        os.environ,
        TOKENIZERS_PARALLELISM="false",
        RAYON_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([p for p in sys.path if p]),
    )

    def drive() -> None:
        with tempfile.TemporaryFile(mode="w+") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dualmind.data.build.shard_worker"],
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
                    proc.stdin.write("\t".join([str(out_dir), task[0], str(task[1]), str(task[2])]))
                    proc.stdin.write("\n")
                    proc.stdin.flush()
                    while True:
                        line = proc.stdout.readline()
                        if not line:
                            proc.wait()
                            err.seek(0)
                            tail = err.read()[-2000:]
                            msg = f"worker process exited with code {proc.returncode}\n{tail}"
                            events.put(("error", task, msg))
                            return
                        try:
                            reply = json.loads(line)
                        except json.JSONDecodeError:
                            continue  # not ours (a C library writing to fd 1): ignore it
                        if "progress" in reply:
                            events.put(("progress", None, int(reply["progress"])))
                            continue
                        if reply.get("ok"):
                            events.put(("done", task, reply["stats"]))
                            break
                        events.put(
                            ("error", task, f"{reply['error']}\n{reply.get('traceback', '')}")
                        )
                        return
            finally:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait()

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(max(1, workers))]
    for t in threads:
        t.start()
    remaining = len(tasks)
    failure = None
    while remaining and failure is None:
        try:
            kind, task, payload = events.get(timeout=0.5)
        except queue.Empty:
            if not any(t.is_alive() for t in threads) and events.empty():
                failure = "all worker processes stopped before the work was done"
            continue
        if kind == "progress":
            if on_progress is not None:
                on_progress(payload)
        elif kind == "done":
            remaining -= 1
            on_done(task, payload)
        else:
            failure = f"shard {task[0]}-{task[1]:05d} failed: {payload}"
    if failure:
        while not todo.empty():  # let the other workers stop after their current shard
            todo.get_nowait()
    for t in threads:
        t.join()
    if failure:
        raise WorkerError(failure)


if __name__ == "__main__":
    raise SystemExit(serve())
