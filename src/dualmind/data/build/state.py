"""The identity of a build (settings + inputs + lexicon) and what OUT already holds of it.

A build resumes only into a folder whose plan or manifest carries the same settings hash:
mixing shards of two builds would be silent corruption, so anything else is refused unless
the caller asks to overwrite.

What a failed build leaves behind (`discard_unplanned`): until .build/plan.json exists, nothing
can be resumed, so a build that fails while planning removes what it made (the whole folder if
it made the folder). From the plan on, the folder is an unfinished build, marked as such by the
plan without a manifest.json: every reader refuses it as "not a finished corpus build", and the
same command resumes it, keeping every finished shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dualmind.data.build.alignment import ALIGNMENT_RULE
from dualmind.data.build.options import WORK, BuildOptions, CorpusError
from dualmind.data.shards import MANIFEST


def inputs_identity(files: Sequence[Path]) -> list[dict]:
    """What the inputs were: path, size and content hash of the first and last MiB (cheap,
    and catches the usual edits that size+mtime would miss after a copy)."""
    out = []
    for f in files:
        st = f.stat()
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if st.st_size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
        out.append(
            {"path": str(f.resolve()), "size": st.st_size, "sha256_ends": h.hexdigest()[:16]}
        )
    return out


def settings_hash(settings: dict) -> str:
    """Short and stable: recorded in plan.json and manifest.json to recognise a build."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def build_settings(opts: BuildOptions, files: list[Path], lex: Any) -> dict:
    """Everything that makes two builds the same build: the options that change the output,
    the rule that gives each token its unit, the inputs' identity and the lexicon's
    fingerprint."""
    return dict(opts.settings(), alignment=ALIGNMENT_RULE, inputs=inputs_identity(files),
                lexicon_fingerprint=lex.fingerprint)


def prepare_out_dir(out_dir: Path, h: str, overwrite: bool) -> str:
    """'fresh' | 'resume' | 'done'; refuses a folder holding another build or unrelated files."""
    manifest = out_dir / MANIFEST
    plan = out_dir / WORK / "plan.json"
    existing = None
    for path in (manifest, plan):
        if path.is_file():
            try:
                existing = json.loads(path.read_text(encoding="utf-8")).get("settings_hash")
            except ValueError:
                existing = "unreadable"
            break
    if existing == h and manifest.is_file():
        return "done"
    staged = out_dir / WORK / "documents.jsonl"
    if existing == h and staged.is_file():
        return "resume"
    if existing == h:
        # the plan survived but its staged documents did not (a finished build whose manifest
        # was deleted): nothing to resume from, so start again
        existing = None
    ours = {MANIFEST, WORK, "shards", "hypertrain.jsonl", "tokenizer.json", "build_report.json"}
    present = [p.name for p in out_dir.iterdir()] if out_dir.is_dir() else []
    foreign = [
        n
        for n in present
        if n not in ours and not n.startswith(("hypertrain.jsonl.tmp", "tokenizer.json.tmp"))
    ]
    if existing is not None and not overwrite:
        raise CorpusError(
            f"{out_dir} holds a corpus build with other settings or inputs "
            f"(settings hash {existing}, this build {h}); pass --overwrite to replace it"
        )
    if foreign and not overwrite:
        raise CorpusError(
            f"{out_dir} holds files that are not a corpus build's ({sorted(foreign)[:5]}); "
            "choose an empty folder, or pass --overwrite (which removes only a build's own files)"
        )
    # Our own files without a plan are what a build that stopped while planning leaves: they
    # carry no finished work, so they go. Files that are not ours are never touched.
    for n in present:
        if n not in foreign:
            p = out_dir / n
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return "fresh"


def remove_temporaries(out_dir: Path) -> None:
    for folder in (out_dir, out_dir / "shards", out_dir / WORK, out_dir / WORK / "parts"):
        if folder.is_dir():
            for p in folder.iterdir():
                if ".tmp" in p.name and p.is_file():
                    p.unlink()


def missing_dirs(out_dir: Path) -> list[Path]:
    """out_dir and each parent that does not exist yet, deepest first: what a build would make."""
    made = []
    p = Path(out_dir)
    while not p.exists() and p != p.parent:
        made.append(p)
        p = p.parent
    return made


def is_unfinished(out_dir: Path) -> bool:
    """A build that planned but did not finish: a rerun of the same command resumes it."""
    return (Path(out_dir) / WORK / "plan.json").is_file() and not (
        Path(out_dir) / MANIFEST
    ).is_file()


@contextmanager
def discard_unplanned(out_dir: Path, made: list[Path]) -> Iterator[None]:
    """On any failure (Ctrl-C included) before the plan is written, remove what this build made:
    the folders in `made` (from missing_dirs, taken before the build created them), else only
    .build/. A build that has its plan is left to be resumed."""
    try:
        yield
    except BaseException:
        if not (out_dir / WORK / "plan.json").is_file():
            if made:
                shutil.rmtree(made[0], ignore_errors=True)
                for parent in made[1:]:
                    try:
                        parent.rmdir()  # only if empty: another process may have used it
                    except OSError:
                        break
            else:
                shutil.rmtree(out_dir / WORK, ignore_errors=True)
        raise


@contextmanager
def note_resumable(out_dir: Path) -> Iterator[None]:
    """A failure after the plan adds a note (PEP 678) saying that OUT is kept to be resumed; the
    CLI prints it on the error line, a traceback shows it below the error."""
    try:
        yield
    except BaseException as err:
        if is_unfinished(out_dir):
            err.add_note(
                f"{out_dir} keeps the unfinished build and its finished shards: fix the cause "
                "and rerun the same command to resume it"
            )
        raise
