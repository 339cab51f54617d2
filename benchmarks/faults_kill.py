"""The kill -9 campaign: train.py is SIGKILLed at planned moments, resumed with ckpt_path=last
until it finishes, and its final state is compared with an uninterrupted run's.

A trial is a list of kills. Each kill is aimed either at a step (after the progress line of that
step, plus a delay: mid-step, or during start-up for step 0) or into a checkpoint write (after the
progress line of the step before a checkpoint step, at a delay into the first checkpoint stream
opened after it; benchmarks/faults_child.py slows and announces those streams). SIGKILL goes to
the whole process group, so under fsdp2 every rank dies at once, as when a node is lost.

After each kill the run's checkpoints are inspected (is every last* checkpoint readable whole?
temporaries left behind?); then the same command with ckpt_path=last is started, and the next
kill of the plan may hit it. The final checkpoint is compared with the reference run's: weights,
optimizer state, global step, learning-rate schedule and the training RNG streams, bit for bit.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = HERE / "faults_child.py"
STEP_LINE = re.compile(r"^step (\d+)/\d+")
WRITE_LINE = re.compile(r"^@@faults write (.+)$")
RESTORED = re.compile(r"Restoring states from the checkpoint path at (\S+)")


@dataclass
class Kill:
    kind: str  # "step" (after the progress line of `step`) | "write" (into a checkpoint write)
    step: int  # kind step: the step line to wait for (0: none, i.e. start-up); kind write: the
    # checkpoint step whose write is hit (waits for the line of step - 1)
    delay_s: float

    def planned(self) -> str:
        if self.kind == "write":
            return f"write of step {self.step} +{self.delay_s:.2f}s"
        return f"step {self.step} +{self.delay_s:.2f}s" if self.step else \
            f"start-up +{self.delay_s:.2f}s"


@dataclass
class Invocation:
    """One train.py process of a trial."""
    start: str  # what it resumed from: "fresh", "last (8)", "step8 (8)", "step 0 (none)"
    rc: int | None = None
    kill: Kill | None = None
    landed: str = ""  # where the kill landed: "step 6", "in step0000008.ckpt", "" (not killed)
    after: str = ""  # the checkpoints after the kill and their steps: "last 4, step8 8, 1 temp"
    unreadable_last: int = 0
    error: str = ""


@dataclass
class Trial:
    name: str
    kills: list[Kill]
    runs: list[Invocation] = field(default_factory=list)
    differences: list[str] | None = None  # None: no final state to compare
    temps_left: int = 0  # temporaries in checkpoints/ once the run is done

    @property
    def identical(self) -> bool:
        return self.differences == []

    @property
    def resumes(self) -> int:
        return max(len(self.runs) - 1, 0)

    @property
    def unreadable_last(self) -> int:
        return sum(r.unreadable_last for r in self.runs)


def plan_kills(n: int, rng, max_steps: int, every: int, twice: float = 0.4) -> list[list[Kill]]:
    """n trials alternating write and step kills (one in five at start-up); some trials are
    killed again, later, while resuming. Write kills land 0-1.1 s after the first stream opens:
    with the child's slowed streams (~0.5 s a file) that spans the step file and last.ckpt."""
    saves = list(range(every, max_steps + 1, every))
    plans = []
    for i in range(n):
        kills: list[Kill] = []
        for j in range(1 + (rng.random() < twice)):
            after = kills[-1].step if kills else 0
            if (i + j) % 2 == 0 and [s for s in saves if s > after + 1]:
                step = rng.choice([s for s in saves if s > after + 1])
                kills.append(Kill("write", step, round(rng.uniform(0.0, 1.1), 3)))
            elif i % 5 == 4 and not kills:
                kills.append(Kill("step", 0, round(rng.uniform(0.5, 4.0), 3)))
            elif after + 1 < max_steps:
                step = rng.randint(after + 1, max_steps - 1)
                kills.append(Kill("step", step, round(rng.uniform(0.0, 0.08), 3)))
        plans.append(kills)
    return plans


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def launch(overrides: list[str], cwd: Path, env: dict, kill: Kill | None, log: Path,
           timeout_s: float = 600) -> tuple[int, str, str, str]:
    """Run the child to its end, or SIGKILL its process group as `kill` plans; returns
    (exit code, where the kill landed or "", the first `error:` line or "", the checkpoint
    Lightning says it restored or "")."""
    proc = subprocess.Popen([sys.executable, str(CHILD), *overrides], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    armed = kill is not None and kill.step - (kill.kind == "write") <= 0
    fire_at, landed, error, restored = None, "", "", ""
    if armed and kill.kind == "step":
        fire_at, landed = time.monotonic() + kill.delay_s, "start-up"
    began = time.monotonic()
    deadline = began + timeout_s
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"---- {' '.join(overrides[-2:])}; kill: {kill.planned() if kill else None}\n")
        while True:
            try:
                line = lines.get(timeout=0.002)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                out.write(f"{time.monotonic() - began:7.2f} {line}\n")
                error = error or (line if line.startswith("error:") else "")
                if found := RESTORED.search(line):
                    restored = found[1]
            now = time.monotonic()
            if kill is not None and fire_at is None:
                step = STEP_LINE.match(line)
                if step and not armed and int(step[1]) >= kill.step - (kill.kind == "write"):
                    armed = True
                    if kill.kind == "step":
                        fire_at, landed = now + kill.delay_s, f"after step {step[1]}"
                elif armed and kill.kind == "write" and WRITE_LINE.match(line):
                    fire_at = now + kill.delay_s
            if (write := WRITE_LINE.match(line)) and fire_at is not None and fire_at > now:
                landed = f"writing {_target(write[1])}"  # the stream open when the kill fires
            if (fire_at is not None and now >= fire_at) or now > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                out.write(f"{now - began:7.2f} @@ SIGKILL\n")
                landed = landed if now <= deadline else "timeout"
                fire_at = float("inf")  # fired
        rc = proc.wait()
    return rc, (landed if rc == -signal.SIGKILL else ""), error, restored


def _target(path: str) -> str:
    """The checkpoint a stream belongs to: `.last.ckpt.tmp-123` -> last.ckpt, a DCP shard
    `last.ckpt/__0_0.distcp` -> last.ckpt/__0_0.distcp."""
    p = Path(path)
    name = re.sub(r"^\.(.+?)\.tmp(-\d+)?$", r"\1", p.name)
    return f"{p.parent.name}/{name}" if p.parent.name.endswith(".ckpt") or \
        p.parent.name.startswith(".") else name


def run_trial(trial: Trial, overrides: list[str], run_dir: Path, env: dict, log: Path,
              reference: dict, max_runs: int = 6) -> Trial:
    """Kill as planned, resume until the run ends, compare with the reference state."""
    pending = list(trial.kills)
    for _ in range(max_runs):
        before, _ = inspect_checkpoints(run_dir)
        args = [*overrides, "ckpt_path=last"] if trial.runs else overrides
        inv = Invocation(start="fresh", kill=pending[0] if pending else None)
        inv.rc, inv.landed, inv.error, restored = launch(args, run_dir.parent, env, inv.kill,
                                                         log)
        if trial.runs:  # what the run said it restored, with that file's step before it ran
            name = Path(restored).name if restored else ""
            inv.start = f"{short(name)} ({before.get(name)})" if name else "step 0 (none)"
        trial.runs.append(inv)
        if inv.landed:  # killed: what is left on disk
            pending.pop(0)
            steps, temps = inspect_checkpoints(run_dir)
            inv.after = describe(steps, temps)
            inv.unreadable_last = sum(1 for k, v in steps.items()
                                      if k.startswith("last") and v is None)
            continue
        if inv.kill is not None:
            pending.pop(0)  # the run ended before the kill's moment came
        if inv.rc != 0:
            break  # a failure that is not a kill: reported, not retried
        trial.differences = differences(final_state(run_dir), reference)
        break
    trial.temps_left = len(temporaries(run_dir))
    return trial


# ---- reading checkpoints ---------------------------------------------------------------------


def temporaries(run_dir: Path) -> list[Path]:
    folder = run_dir / "checkpoints"
    return [p for p in folder.iterdir() if p.name.startswith(".")] if folder.is_dir() else []


def load_whole(path: Path) -> dict:
    """Every byte of a checkpoint: a .ckpt file, or an fsdp2 (DCP) folder gathered into one
    dict (its meta.pt, plus state_dict and optimizer_0 from the shards)."""
    import torch

    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    ckpt = torch.load(path / "meta.pt", map_location="cpu", weights_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        dcp_to_torch_save(path, Path(tmp) / "whole.pt")
        ckpt.update(torch.load(Path(tmp) / "whole.pt", map_location="cpu", weights_only=True))
    return ckpt


def inspect_checkpoints(run_dir: Path) -> tuple[dict[str, int | None], int]:
    """({checkpoint name: its global step, or None when it cannot be read whole}, the number of
    temporaries beside them)."""
    import warnings

    folder = run_dir / "checkpoints"
    steps: dict[str, int | None] = {}
    for path in sorted(folder.glob("*.ckpt")) if folder.is_dir() else []:
        if path.name.startswith("."):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                steps[path.name] = int(load_whole(path)["global_step"])
        except BaseException as err:  # noqa: BLE001 - counted and shown (DCP's
            # CheckpointException derives from BaseException)
            if isinstance(err, KeyboardInterrupt):
                raise
            steps[path.name] = None
    return steps, len(temporaries(run_dir))


def describe(steps: dict[str, int | None], temps: int) -> str:
    """'last 4, step8 8, 1 temp'."""
    parts = [f"{short(name)} {'UNREADABLE' if step is None else step}"
             for name, step in steps.items()]
    return ", ".join(parts + ([f"{temps} temp"] if temps else [])) or "none"


def short(name: str) -> str:
    return name.removesuffix(".ckpt").replace("step000000", "step").replace("step00000", "step")


def final_state(run_dir: Path) -> dict:
    return load_whole(run_dir / "checkpoints" / "last.ckpt")


# What "the same final state" means: these parts of the checkpoint, bit for bit.
COMPARED = {
    "weights": lambda c: c["state_dict"],
    "optimizer": lambda c: c.get("optimizer_states", c.get("optimizer_0")),
    "global step": lambda c: c["global_step"],
    "lr schedule": lambda c: c["lr_schedulers"],
    "rng streams": lambda c: c["dualmind"]["rng"],
}


def differences(state: dict, reference: dict) -> list[str]:
    return [name for name, part in COMPARED.items() if not same(part(state), part(reference))]


def same(a, b) -> bool:
    import numpy as np
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b
