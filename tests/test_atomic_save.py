"""A checkpoint save that dies midway leaves the previous checkpoint whole, for sharded (fsdp2)
folders as for single files, and the next save clears what the dead one left.

The sharded saves run in one process here (DCP saves without a process group; barriers and
broadcasts are then no-ops); benchmarks/faults.py kills real 2-rank fsdp2 runs mid-write. A
write dying midway is simulated as a shard cut short and then an error, as a kill or a full disk
leaves it."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import pytest
import torch
from lightning.pytorch.strategies import ModelParallelStrategy, model_parallel

from dualmind.checkpoint.atomic_save import atomic_model_parallel_strategy, replace_folder


def _save(strategy, path: Path, step: int) -> None:
    strategy.save_checkpoint({"state_dict": {"w": torch.full((64,), float(step))},
                              "optimizer_states": [], "global_step": step}, path)


def _read(path: Path) -> tuple[int, float]:
    """(meta.pt's step, the weights' value) of a sharded checkpoint, both read whole."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    step = torch.load(path / "meta.pt", weights_only=True)["global_step"]
    with tempfile.TemporaryDirectory() as tmp:
        dcp_to_torch_save(path, Path(tmp) / "whole.pt")
        weights = torch.load(Path(tmp) / "whole.pt", weights_only=True)["state_dict"]["w"]
    return step, float(weights[0])


def _torn(state, path) -> None:
    (Path(path) / "__0_0.distcp").write_bytes(b"half a shard")
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.filterwarnings("ignore::UserWarning")  # DCP: "no process group", "overwriting"
def test_a_sharded_save_dying_midway_leaves_the_previous_folder_whole(tmp_path, monkeypatch):
    strategy = atomic_model_parallel_strategy(data_parallel_size=1, tensor_parallel_size=1)
    last = tmp_path / "last.ckpt"
    _save(strategy, last, 4)
    assert _read(last) == (4, 4.0)

    monkeypatch.setattr(model_parallel, "_distributed_checkpoint_save", _torn)
    with pytest.raises(OSError, match="No space"):
        _save(strategy, last, 8)
    assert _read(last) == (4, 4.0)  # untouched: the dead save wrote beside it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".last.ckpt.tmp"]

    monkeypatch.undo()
    _save(strategy, last, 8)
    assert _read(last) == (8, 8.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # leftovers cleared

    # Negative control: Lightning's own save writes in place and tears the folder (the old
    # .metadata and meta.pt beside a cut shard: what a resume read as intact before).
    monkeypatch.setattr(model_parallel, "_distributed_checkpoint_save", _torn)
    with pytest.raises(OSError):
        _save(ModelParallelStrategy(data_parallel_size=1, tensor_parallel_size=1), last, 12)
    assert (last / "meta.pt").is_file() and (last / ".metadata").is_file()
    with pytest.raises(BaseException):  # noqa: B017 - DCP's CheckpointException is a BaseException
        _read(last)


def test_replace_folder_over_a_folder_a_file_or_nothing(tmp_path):
    for old in ("folder", "file", None):
        dst = tmp_path / f"dst-{old}"
        if old == "folder":
            dst.mkdir()
            (dst / "stale").write_text("old")
        elif old == "file":
            dst.write_text("old")
        src = tmp_path / ".new.tmp"
        src.mkdir()
        (src / "meta.pt").write_text("new")
        replace_folder(src, dst)
        assert [p.name for p in dst.iterdir()] == ["meta.pt"] and not src.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_file_writer_clears_temporaries_of_killed_saves(tmp_path):
    from dualmind.train.loop import atomic_checkpoint_io

    path = tmp_path / "last.ckpt"
    for stale in (".last.ckpt.tmp-4242", ".last.ckpt.tmp-17"):  # two kills, as large as a save
        (tmp_path / stale).write_bytes(b"PK torn")
    (tmp_path / ".step0000004.ckpt.tmp-4242").write_bytes(b"PK torn")  # another file's: kept
    atomic_checkpoint_io().save_checkpoint({"step": torch.tensor(1)}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".step0000004.ckpt.tmp-4242",
                                                          "last.ckpt"]
    assert torch.load(path, weights_only=True)["step"] == 1


def test_copy_checkpoint_links_and_a_later_save_leaves_the_source_alone(tmp_path):
    from dualmind.checkpoint.atomic_save import copy_checkpoint
    from dualmind.train.loop import atomic_checkpoint_io

    src, dst = tmp_path / "step0000008.ckpt", tmp_path / "last.ckpt"
    torch.save({"step": torch.tensor(8)}, src)
    dst.write_bytes(b"PK torn")
    (tmp_path / ".last.ckpt.tmp-4242").write_bytes(b"PK torn")  # the kill that tore it
    copy_checkpoint(src, dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "step0000008.ckpt"]
    assert dst.stat().st_ino == src.stat().st_ino  # a hard link: no bytes copied
    atomic_checkpoint_io().save_checkpoint({"step": torch.tensor(12)}, dst)
    assert torch.load(src, weights_only=True)["step"] == 8  # the next save made a new file
    assert torch.load(dst, weights_only=True)["step"] == 12

    folder, copy = tmp_path / "step0000016.ckpt", tmp_path / "last-sharded.ckpt"
    folder.mkdir()
    (folder / "meta.pt").write_text("16")
    copy.mkdir()
    (copy / "stale.distcp").write_text("old")
    copy_checkpoint(folder, copy)
    assert [p.name for p in copy.iterdir()] == ["meta.pt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_saved_name_is_flushed_with_its_folder(tmp_path, monkeypatch):
    """A rename is durable only once its folder is synced: both savers sync the folder after."""
    import os

    from dualmind.train.loop import atomic_checkpoint_io

    synced, real_fsync = [], os.fsync

    def fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd")
                      else fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "checkpoints" / "last.ckpt"
    atomic_checkpoint_io().save_checkpoint({"step": torch.tensor(1)}, path)
    staged = tmp_path / "staged"
    staged.mkdir()
    replace_folder(staged, tmp_path / "folder")
    if os.path.exists("/proc/self/fd"):  # Linux: the synced descriptors' paths are known
        assert str(path.parent) in synced and str(tmp_path) in synced
    else:
        assert len(synced) >= 3  # the file, its folder, the replaced folder's parent
