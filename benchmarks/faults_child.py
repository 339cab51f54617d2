"""train.py as the fault campaign runs it: the same entry point, with checkpoint writes announced
and slowed, so that a kill can be aimed into the middle of one.

    python benchmarks/faults_child.py recipe=core_mini data.dir=... ckpt_path=last

A tiny model's checkpoint is written in milliseconds: a SIGKILL sent at a random moment would
almost never land inside a write, which is the moment the atomic writers exist for. So checkpoint
streams are written at $FAULTS_WRITE_BYTES_PER_S, as on a slow disk (the bytes written are
unchanged), and the opening of each stream prints a line ``@@faults write <path>`` that the
campaign waits for. Both writers are covered: dualmind's single-file writer (the ``open`` of
dualmind.train.loop, whose only file it opens is a checkpoint) and torch.distributed.checkpoint's
shard writer under strategy=fsdp2 (FileSystem.create_stream).

$FAULTS_ENOSPC_AT=N (bad-input campaign): the N-th checkpoint stream, counted from 1, writes half
its first chunk and then fails with OSError(ENOSPC), as a full disk does mid-write.

Lightning relaunches this same script for rank 1 under fsdp2 (it re-runs sys.argv[0]), so every
rank is instrumented alike.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

TRAIN_PY = Path(__file__).resolve().parents[1] / "train.py"
RATE = float(os.environ.get("FAULTS_WRITE_BYTES_PER_S", "0"))
ENOSPC_AT = int(os.environ.get("FAULTS_ENOSPC_AT", "0"))
_opened = 0


class _InstrumentedStream:
    """A checkpoint stream whose writes are slowed (or fail as on a full disk)."""

    def __init__(self, stream, fail: bool):
        self._stream, self._fail = stream, fail
        self._owed_s = 0.0  # sleeps shorter than a millisecond are pooled: each costs ~0.1 ms

    def write(self, data):
        if self._fail:
            self._stream.write(bytes(data)[: len(data) // 2])
            self._stream.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if RATE:
            self._owed_s += len(memoryview(data).cast("B")) / RATE
            if self._owed_s >= 1e-3:
                time.sleep(self._owed_s)
                self._owed_s = 0.0
        return self._stream.write(data)

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._stream.__exit__(*exc)


def _announce(path) -> bool:
    """Print the marker; True when this stream is the one to fail with ENOSPC."""
    global _opened
    _opened += 1
    print(f"@@faults write {path}", flush=True)
    return _opened == ENOSPC_AT


def _instrument() -> None:
    from torch.distributed.checkpoint import filesystem

    import dualmind.train.loop as train_loop

    def checkpoint_open(path, mode="r", *args, **kwargs):
        stream = open(path, mode, *args, **kwargs)  # noqa: SIM115 - returned to the caller
        if "w" not in mode:
            return stream
        return _InstrumentedStream(stream, _announce(path))

    train_loop.open = checkpoint_open  # shadows the builtin for that module only

    plain = filesystem.FileSystem.create_stream

    @contextlib.contextmanager
    def create_stream(self, path, mode):
        with plain(self, path, mode) as stream:
            yield _InstrumentedStream(stream, _announce(path)) if "w" in mode else stream

    filesystem.FileSystem.create_stream = create_stream


if __name__ == "__main__":
    _instrument()
    # Not runpy.run_path: it sets sys.argv[0] to train.py while it runs, and Lightning relaunches
    # sys.argv[0] for rank 1, which would then run uninstrumented. Compiled under train.py's own
    # name, so Hydra finds conf/ beside it.
    code = compile(TRAIN_PY.read_text(encoding="utf-8"), str(TRAIN_PY), "exec")
    exec(code, {"__name__": "__main__", "__file__": str(TRAIN_PY)})
