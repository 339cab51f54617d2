"""Every path a training run reads, checked before anything is built (`check_run_paths`).

A wrong path used to surface wherever it was first opened: a traceback from deep inside model
construction (a missing core.checkpoint), torch's page-long advice on `weights_only` (a truncated
checkpoint), "no such corpus folder" for a data.dir that is a file. Here each is found up front
and named in one line, `KEY=PATH: what is wrong; what to pass instead`, raised as RunPathError
(a ConfigError: train.py prints it and exits 2). Only the shape of each path is checked (exists,
file or folder, the marker files of its kind, a checkpoint file's zip directory); what is inside
(lexicon fingerprints, model shapes) stays with the code that reads it.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dualmind.config.schema import ConfigError

# stage -> the checkpoint kinds core.checkpoint may be (align reads fsdp2 folders too)
CORE_STAGES = {"align": ("ckpt", "dcp", "export"), "lora": ("ckpt", "export"),
               "unfreeze": ("ckpt", "export")}
KIND_NAMES = {"ckpt": "a .ckpt file", "dcp": "a sharded checkpoint folder",
              "export": "a `dualmind export` folder"}
MARKERS = {"dcp": "meta.pt", "export": "config.json"}  # what makes a folder a checkpoint
LEXICON_FILES = ("lexicon.json", "units.tsv")  # what Lexicon.load reads
HEX_FINGERPRINT = re.compile(r"^[0-9a-fA-F]{16,64}$")


class RunPathError(ConfigError):
    """A path in the config that cannot be what its key expects. ``key``, ``path`` and ``kind``
    (not_set, missing, not_a_folder, not_a_file, wrong_kind, unreadable, unfinished_corpus,
    not_a_corpus, not_a_lexicon) let tests and the fault benchmark tell the cases apart."""

    def __init__(self, key: str, path: object, kind: str, message: str):
        self.key, self.path, self.kind = key, None if path is None else str(path), kind
        super().__init__(f"{key}={path}: {message}" if path is not None else f"{key}: {message}")


def check_run_paths(cfg: DictConfig) -> None:
    """Raise RunPathError for the first path of the run that cannot work."""
    _check_corpus(cfg)
    lexicon = cfg.data.get("lexicon")
    if lexicon is not None:
        _check_lexicon(str(lexicon))
    if cfg.stage in CORE_STAGES:
        core = (cfg.get("core") or {}).get("checkpoint")
        if not core:
            raise RunPathError(
                "core.checkpoint", None, "not_set",
                f"not set; stage {cfg.stage} reads a trained core: pass core.checkpoint="
                f"<{kinds_text(CORE_STAGES[cfg.stage])}> (train one with recipe=core_mini)",
            )
        check_checkpoint("core.checkpoint", str(core), CORE_STAGES[cfg.stage])
    if cfg.ckpt_path and cfg.ckpt_path != "last":
        check_checkpoint("ckpt_path", str(cfg.ckpt_path), ("ckpt", "dcp"))


def _check_corpus(cfg: DictConfig) -> None:
    if OmegaConf.is_missing(cfg.data, "dir") or not cfg.data.dir:
        raise RunPathError("data.dir", None, "not_set", "not set; pass data.dir=<corpus folder> "
                           "(build one with `dualmind corpus build`)")
    path = Path(cfg.data.dir)
    key = "data.dir"
    if not path.exists():
        raise RunPathError(key, path, "missing", "no such folder; build a corpus first with "
                           f"`dualmind corpus build ... --out {path}` (or point data.dir at one)")
    if not path.is_dir():
        raise RunPathError(key, path, "not_a_folder", "a file, not a corpus folder; data.dir is "
                           "the folder `dualmind corpus build --out` wrote")
    if not (path / "manifest.json").is_file():
        if (path / ".build" / "plan.json").is_file():
            raise RunPathError(key, path, "unfinished_corpus", "an unfinished corpus build (no "
                               "manifest.json); rerun the `dualmind corpus build` that made it "
                               "to finish it")
        raise RunPathError(key, path, "not_a_corpus", "no manifest.json: not a corpus folder "
                           "(build one with `dualmind corpus build --out`)")


def _check_lexicon(value: str) -> None:
    path = Path(value)
    if not path.exists():
        if HEX_FINGERPRINT.match(value):
            return  # a fingerprint: compared with the corpus's by the datamodule
        raise RunPathError("data.lexicon", value, "missing", "no such lexicon folder, and not a "
                           "hex fingerprint")
    if not path.is_dir():
        raise RunPathError("data.lexicon", value, "not_a_folder", "a file, not a lexicon folder "
                           "(the folder `dualmind lexicon build --out` wrote)")
    for name in LEXICON_FILES:
        if not (path / name).is_file():
            raise RunPathError("data.lexicon", value, "not_a_lexicon", f"no {name}: not a "
                               "lexicon folder (the folder `dualmind lexicon build --out` wrote)")


def kinds_text(kinds: tuple[str, ...]) -> str:
    names = [KIND_NAMES[k] for k in kinds]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def checkpoint_kind(path: Path) -> str | None:
    """'dcp', 'export', 'ckpt' or None (not a checkpoint of any kind)."""
    if path.is_dir():
        for kind, marker in MARKERS.items():
            if (path / marker).is_file():
                return kind
        return None
    return "ckpt" if path.is_file() else None


def _intact_beside(key: str, path: Path) -> str:
    """For a resume (ckpt_path), the newest checkpoint beside a cut one that reads whole: what
    to pass instead (dualmind.checkpoint.resume says the same when the run itself finds it)."""
    if key != "ckpt_path":
        return ""
    from dualmind.checkpoint.resume import newest_first, newest_intact

    intact = newest_intact([p for p in newest_first(path.parent) if p != path])
    return f"; the newest intact one beside it is ckpt_path={intact[0]}" if intact else ""


def check_checkpoint(key: str, value: str, kinds: tuple[str, ...]) -> None:
    """``value`` names a checkpoint of one of ``kinds``; a .ckpt file must be a whole zip archive
    (torch.save's format: a truncated file has lost the directory at its end)."""
    path = Path(value)
    wanted = kinds_text(kinds)
    if not path.exists():
        raise RunPathError(key, value, "missing", f"no such file or folder ({key} takes "
                           f"{wanted})")
    kind = checkpoint_kind(path)
    if kind is None:  # a folder without the marker of any kind
        markers = " or ".join(f"{MARKERS[k]} ({KIND_NAMES[k]})" for k in kinds if k in MARKERS)
        raise RunPathError(key, value, "wrong_kind", f"a folder without {markers}; {key} takes "
                           f"{wanted}")
    if kind not in kinds:
        raise RunPathError(key, value, "wrong_kind", f"{KIND_NAMES[kind]}, but {key} takes "
                           f"{wanted}")
    if kind == "ckpt":
        size = path.stat().st_size
        if size == 0 or not zipfile.is_zipfile(path):
            raise RunPathError(key, value, "unreadable", f"not a readable checkpoint ({size} "
                               "bytes, not a whole torch.save archive: truncated, or another "
                               f"kind of file){_intact_beside(key, path)}")
