"""Which checkpoint a run resumes from (``ckpt_path``), checked before Lightning reads it.

``ckpt_path=last`` takes the run's newest ``last*.ckpt``. Checkpoints are written atomically
(dualmind.train.loop.atomic_checkpoint_io, dualmind.checkpoint.atomic_save), but a file can still
be cut short after the fact (a copy, a full disk on a filesystem that ignores the rename); then the
run resumes from the newest checkpoint of its folder that reads whole, with a warning naming both
files, instead of stopping on a traceback or silently starting afresh.

A save writes step*.ckpt and then last.ckpt. A run killed between the two (benchmarks/faults.py
does it on purpose) has a step*.ckpt newer than last.ckpt, or, at its first save, no last.ckpt
at all, where Lightning would have started again from step 0 with a warning. So ``last`` means
the intact checkpoint of the highest step, last.ckpt on a tie, and says so when that is not
last.ckpt; last.ckpt is then made a copy of it (hard links), since a run resumed at its final
step trains nothing and would leave last.ckpt, which export, eval and align read, behind (or
torn). An explicit path is obeyed: if it cannot be read, the error names the newest readable
one beside it. Every checkpoint resumed from is checked against the data's lexicon.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from dualmind.checkpoint.atomic_save import copy_checkpoint
from dualmind.checkpoint.meta import LexiconMismatchError, check_lexicon, checkpoint_metadata


class ResumeError(RuntimeError):
    """No checkpoint to resume from; the message names the path (train_loop: TrainingError)."""


def read_metadata(path: Path) -> dict:
    """The dualmind metadata of a checkpoint file or fsdp2 (DCP) folder; raises ResumeError
    naming the path when it cannot be read whole."""
    return read_head(path)[0]


def read_head(path: Path) -> tuple[dict, int]:
    """(dualmind metadata, global step) of a checkpoint file or fsdp2 folder; ResumeError as
    read_metadata."""
    import torch

    meta_file = path / "meta.pt" if path.is_dir() else path  # DCP: the non-tensors in meta.pt
    try:
        if path.is_dir() and not (path / ".metadata").is_file():
            raise ValueError("no .metadata: the sharded save did not finish")
        # mmap: the archive's index (at the end of the file, so a cut file fails here) and the
        # metadata are read; the tensors are left on disk.
        ckpt = torch.load(meta_file, map_location="cpu", weights_only=True, mmap=True)
        return checkpoint_metadata(ckpt), int(ckpt.get("global_step", -1))
    except Exception as err:  # noqa: BLE001 - reported with the path
        raise ResumeError(f"{path}: cannot read checkpoint ({err})") from err


def newest_first(folder: Path) -> list[Path]:
    """The checkpoints of a run's checkpoint folder, newest first (a last* before a step* of
    the same moment); temporaries (.name.tmp-*) are not checkpoints."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("*.ckpt") if not p.name.startswith(".")]
    return sorted(found, key=lambda p: (os.path.getmtime(p), p.name.startswith("last")),
                  reverse=True)


def newest_intact(candidates: list[Path]) -> tuple[Path, dict] | None:
    for path in candidates:
        try:
            return path, read_metadata(path)
        except ResumeError:
            continue
    return None


def _last(folder: Path, warn) -> tuple[Path | None, dict | None]:
    """The checkpoint ckpt_path=last resumes from (see the module doc); (None, None) when the
    folder holds no checkpoint yet."""
    found = newest_first(folder)
    if not found:
        return None, None
    lasts = [p for p in found if p.name.startswith("last")]
    error, heads = None, {}
    for path in found:
        try:
            heads[path] = read_head(path)
        except ResumeError as err:
            error = error or (err if lasts and path == lasts[0] else None)
    if not heads:
        where = f"{error}, and no other checkpoint" if error else "no checkpoint"
        raise ResumeError(f"ckpt_path=last: {where} in {folder} can be read; start afresh in "
                          "another run_dir")
    # the highest step; on a tie the last* file, then the newest (found is newest first)
    path = max(heads, key=lambda p: (heads[p][1], p.name.startswith("last"), -found.index(p)))
    if error is None and lasts and path == lasts[0]:
        return path, heads[path][0]
    last = lasts[0] if lasts else folder / "last.ckpt"
    if error is not None:
        warn(f"ckpt_path=last: {last} cannot be read ({error.__cause__}); resuming from "
             f"{path}, the newest intact checkpoint of the run; {last.name} is replaced by a "
             "copy of it")
    else:
        had = f"{last} is of step {heads[last][1]}" if lasts else f"there is no {last.name}"
        warn(f"ckpt_path=last: {had}; resuming from {path} (step {heads[path][1]}), the newest "
             f"intact checkpoint of the run (a run stopped between writing the two); {last.name}"
             " is made a copy of it")
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank == 0:  # the other ranks resume from `path` too: Lightning broadcasts it
        copy_checkpoint(path, last)
    return path, heads[path][0]


def resume_path(cfg: DictConfig, run_dir: Path, lexicon_fingerprint: str | None) -> str | None:
    """What trainer.fit's ckpt_path gets: None (a fresh run), "last" (no checkpoint yet: Lightning
    starts fresh and says so) or a checked checkpoint path; raises ResumeError."""
    from lightning.pytorch.utilities import rank_zero_warn  # every rank checks; one warns

    ckpt_path = cfg.ckpt_path
    if not ckpt_path:
        return None
    if ckpt_path == "last":
        path, meta = _last(run_dir / "checkpoints", rank_zero_warn)
        if path is None:
            return "last"
    else:
        path = Path(ckpt_path)
        if not (path.is_file() or (path / "meta.pt").is_file()):
            raise ResumeError(f"ckpt_path={ckpt_path}: no such checkpoint file (or sharded "
                              "checkpoint folder)")
        try:
            meta = read_metadata(path)
        except ResumeError as err:
            intact = newest_intact([p for p in newest_first(path.parent) if p != path])
            hint = f"; the newest intact one beside it is ckpt_path={intact[0]}" if intact else ""
            raise ResumeError(f"ckpt_path={err}{hint}") from err
    try:
        check_lexicon(meta, lexicon_fingerprint, where=f"checkpoint {path}")
    except LexiconMismatchError as err:
        raise ResumeError(str(err)) from err
    return str(path)
