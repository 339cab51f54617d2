"""Checkpoints that are whole or absent, never torn: the sharded (fsdp2) save, and the clean-up of
what a killed save left behind.

Lightning's ModelParallelStrategy writes a sharded checkpoint (a DCP folder: one .distcp file per
rank, .metadata, meta.pt) in place, so saving last.ckpt again overwrites the previous one file by
file. A kill -9 in the middle (benchmarks/faults.py, fsdp2 campaign) left last.ckpt with the old
.metadata and meta.pt beside half-written shards: dualmind.checkpoint.resume read its metadata and
chose it, and loading it then failed with a DCP traceback; a kill between the shards and the
metadata would have resumed the old step's counters over the new step's weights without a word.

Here the folder is written under a staging name beside its final one and moved into place once
every rank's shards and meta.pt are on disk. A folder cannot be renamed over a non-empty folder,
so the old one is moved aside first: a kill between the two renames leaves no last.ckpt for a
moment, and dualmind.checkpoint.resume then takes the step*.ckpt written by the same save just
before.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def staging_path(path: Path) -> Path:
    """Where a sharded checkpoint is written before it takes its name (a dot name: resume and
    Lightning's checkpoint listing skip it)."""
    return path.with_name(f".{path.name}.tmp")


def remove_stale(path: Path) -> None:
    """Remove what killed saves of `path` left: `.name.tmp-<pid>` files of the single-file
    writer, the `.name.tmp` staging folder and the `.name.old` folder of a sharded save."""
    for stale in path.parent.glob(f".{path.name}.tmp*"):
        _remove(stale)
    _remove(path.with_name(f".{path.name}.old"))


def replace_folder(src: Path, dst: Path) -> None:
    """Move the finished folder `src` to `dst`, replacing what is there."""
    old = dst.with_name(f".{dst.name}.old")
    _remove(old)
    if dst.exists() or dst.is_symlink():
        os.replace(dst, old)
    replace_durably(src, dst)
    _remove(old)


def replace_durably(src: Path, dst: Path) -> None:
    """os.replace, then the folder synced: every save's last step."""
    os.replace(src, dst)
    fsync_folder(dst.parent)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries: a rename is only durable once its folder is, so a power cut
    right after a save could otherwise bring back the old name's content. (A no-op where
    folders cannot be opened, as on Windows.)"""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a folder; the rename still happened
        pass
    finally:
        os.close(fd)


def copy_checkpoint(src: Path, dst: Path) -> None:
    """Make `dst` hold the checkpoint `src` (a file or a sharded folder), atomically; by hard
    links where the filesystem has them (free for a large checkpoint: every later save writes a
    new file and renames it, so neither name ever changes the other's bytes)."""
    remove_stale(dst)  # what a save of dst killed mid-write left
    staging = dst.with_name(f".{dst.name}.tmp-copy")
    if src.is_dir():
        shutil.copytree(src, staging, copy_function=_link_or_copy)
        replace_folder(staging, dst)
    else:
        _link_or_copy(src, staging)
        replace_durably(staging, dst)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def atomic_model_parallel_strategy(**kwargs: Any):
    """Lightning's ModelParallelStrategy whose sharded saves are staged and moved into place."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    class AtomicModelParallelStrategy(ModelParallelStrategy):
        def save_checkpoint(self, checkpoint, filepath, storage_options=None):
            if not self._save_distributed_checkpoint or "://" in str(filepath):
                return super().save_checkpoint(checkpoint, filepath, storage_options)
            path = Path(self.broadcast(filepath))
            staging = staging_path(path)
            if self.global_rank == 0:
                remove_stale(path)
            self.barrier("atomic_save:staging")
            super().save_checkpoint(checkpoint, staging, storage_options)
            self.barrier("atomic_save:written")  # every shard, and rank 0's meta.pt, on disk
            if self.global_rank == 0:
                replace_folder(staging, path)
            self.barrier("atomic_save:moved")

    return AtomicModelParallelStrategy(**kwargs)
