"""Bad inputs through the real command lines (`dualmind corpus build`, `dualmind lexicon build`,
`train.py`, `dualmind eval`), one class per row: exit code, the first line of the message, what
was counted or replaced, and whether anything was lost.

"Nothing lost" is measured for each row, never assumed: the inputs' bytes are unchanged (sha256),
every good document reaches the corpus whole (its scenes put back together equal the file's
text), nothing half-made is left (no output folder, no checkpoint), or the last good checkpoint
is the same bytes as before / still reads whole and the run resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHILD = HERE / "faults_child.py"
QUICK = ("binary file", "malformed JSONL", "unknown config key")


@dataclass
class Workspace:
    root: Path  # this campaign's folder; inputs in root/in
    corpus: Path  # the tiny corpus (read-only: rows that damage it work on a copy)
    lexicon: Path  # its lexicon
    train: list[str]  # train.py overrides of the tiny core run (no run_dir)
    core_run: Path  # the kill campaign's uninterrupted core run (16 steps)
    align_ckpt: Path | None  # its uninterrupted align run's last.ckpt (eval rows need it)
    good: dict[str, str] = field(default_factory=dict)  # good documents' text by document key


@dataclass
class Ran:
    rc: int
    out: str
    err: str

    def line(self, having: str = "") -> str:
        """The first line of the message: containing `having`, else the first error line."""
        lines = [x.strip() for x in (self.err + "\n" + self.out).splitlines() if x.strip()]
        if having:  # from `having` on: a warning's "file.py:99: UserWarning: " prefix goes
            return next((x[x.index(having):] for x in lines if having in x), "")
        for prefix in ("error:", "dualmind "):
            found = next((x for x in lines if x.startswith(prefix)), None)
            if found:
                return found
        return next((x for x in lines if not x.startswith("[")), "")


def run(kind: str, args: list[str], cwd: Path, env: dict | None = None) -> Ran:
    head = {"dualmind": [sys.executable, "-m", "dualmind.cli"],
            "train": [sys.executable, str(REPO / "train.py")],
            "child": [sys.executable, str(CHILD)]}[kind]
    done = subprocess.run([*head, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})
    return Ran(done.returncode, done.stdout, done.stderr)


def sha(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                h.update(f.read_bytes())
    return h.hexdigest()


def documents(corpus: Path) -> dict[str, str]:
    """Each document of a built corpus, its scenes put back together (lossless level)."""
    scenes: dict[str, list[tuple[int, str]]] = {}
    with open(corpus / "hypertrain.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            doc, _, k = rec["id"].rpartition("#s")
            scenes.setdefault(doc, []).append((int(k), rec["text"]))
    return {doc: "".join(t for _, t in sorted(parts)) for doc, parts in scenes.items()}


def counted(corpus: Path) -> str:
    counts = json.loads((corpus / "manifest.json").read_text())["problems"]["counts"]
    return "; ".join(f"{kind}: {n} {what}" for kind, v in counts.items() for what, n in v.items()
                     ) or "none"


def write_inputs(folder: Path) -> dict[str, str]:
    """The bad and good input files; returns the good documents' text by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    good = "The quick brown fox jumps over the lazy dog. " * 20 + "\n"
    files = {
        "good.txt": good.encode(),
        "image.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        "bad_utf8.txt": b"good line here\nbad \xff\xfe line\nlast line\n",
        "empty.txt": b"",
        "malformed.jsonl": b'{"text": "a fine record"}\n{"text": "no end\n'
                           b'{"text": "also fine"}\n',
        "wrongtype.jsonl": b'{"text": 42}\n{"text": "fine text"}\n',
        "hugeline.txt": ("word " * 40000 + "\n").encode(),  # 200 kB in one line
        "hugerecord.jsonl": json.dumps({"text": "word " * 40000}).encode() + b"\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {"good.txt": good, "bad_utf8.txt": files["bad_utf8.txt"].decode(errors="replace"),
            "malformed.jsonl:1": "a fine record", "malformed.jsonl:3": "also fine",
            "wrongtype.jsonl:2": "fine text", "hugeline.txt": files["hugeline.txt"].decode()}


CLASSES: list[tuple[str, str, Callable]] = []  # (name, unit test, function)


def bad_input(name: str, test: str):
    def register(fn):
        CLASSES.append((name, test, fn))
        return fn
    return register


def row(shown: str, ran: Ran, counted_: str, lost: list[str], ok_note: str,
        having: str = "") -> dict:
    """lost: what was found lost or left half-made (empty: nothing)."""
    message = ran.line(having)
    message = message if len(message) <= 220 else message[:220].rsplit(" ", 1)[0] + " …"
    return {"command": shown, "exit": ran.rc, "message": message,
            "counted": counted_, "nothing_lost": not lost,
            "lost_note": "; ".join(lost) if lost else ok_note}


# ---- corpus build and lexicon build ------------------------------------------------------------


def corpus_build(ws: Workspace, name: str, files: list[str], *extra: str) -> tuple[Ran, Path]:
    out = ws.root / f"corpus-{name.replace(' ', '-')}"
    ran = run("dualmind", ["corpus", "build", *files, "--lexicon", ws.lexicon, "--out", out,
                           "--workers", "1", "--no-progress", *extra], ws.root / "in")
    return ran, out


def corpus_row(ws: Workspace, name: str, files: list[str], *extra: str, expect_ok: bool,
               shown: str | None = None) -> dict:
    """shown: the command as the table prints it (default: the one run, inputs by name)."""
    shown = shown or " ".join(["dualmind corpus build", *files, *extra])
    before = sha(*(ws.root / "in" / f for f in files))
    ran, out = corpus_build(ws, name, files, *extra)
    lost = [] if sha(*(ws.root / "in" / f for f in files)) == before else ["an input changed"]
    if expect_ok:
        docs = documents(out) if ran.rc == 0 else {}
        want = {k: v for k, v in ws.good.items() if k.split(":")[0] in files}
        lost += [f"document {k} lost or altered" for k, v in want.items() if docs.get(k) != v]
        note = f"{len(want)} good document(s) whole in the corpus; inputs unchanged"
        return row(shown, ran, counted(out) if ran.rc == 0 else "-", lost, note,
                   having="input problems")
    if out.exists():
        lost.append(f"{out.name} left behind")
    return row(shown, ran, "refused", lost, "no output folder made; inputs unchanged")


@bad_input("binary file", "test_corpus_sources.py::test_empty_and_binary_files")
def _binary(ws):
    return corpus_row(ws, "binary", ["good.txt", "image.png"], expect_ok=True)


@bad_input("invalid UTF-8", "test_corpus_sources.py::test_invalid_utf8_replace_skip_fail")
def _utf8(ws):
    return corpus_row(ws, "utf8", ["good.txt", "bad_utf8.txt"], expect_ok=True)


@bad_input("huge line (200 kB, limit 4 kB)",
           "test_long_lines.py::test_the_reported_case_a_50_mib_one_line_file_loses_nothing")
def _huge_line(ws):
    return corpus_row(ws, "huge-line", ["hugeline.txt"], "--max-line-bytes", "4096",
                      expect_ok=True)


@bad_input("huge JSON-lines record",
           "test_long_lines.py::test_a_json_record_longer_than_the_limit_refuses_the_file")
def _huge_record(ws):
    return corpus_row(ws, "huge-record", ["good.txt", "hugerecord.jsonl"], "--max-line-bytes",
                      "4096", expect_ok=False)


@bad_input("malformed JSONL", "test_corpus_sources.py::test_malformed_and_wrongly_typed_json_lines")
def _malformed(ws):
    return corpus_row(ws, "malformed", ["good.txt", "malformed.jsonl"], expect_ok=True)


@bad_input("wrong field type",
           "test_corpus_sources.py::test_malformed_and_wrongly_typed_json_lines")
def _wrong_type(ws):
    return corpus_row(ws, "wrongtype", ["good.txt", "wrongtype.jsonl"], expect_ok=True)


@bad_input("missing input file",
           "test_bad_input_cli.py::test_corpus_build_of_a_missing_file_exits_2_and_makes_nothing")
def _missing(ws):
    return corpus_row(ws, "missing", ["nosuch.txt"], expect_ok=False)


@bad_input("negative size (corpus build)",
           "test_bad_input_cli.py::test_negative_sizes_are_refused_by_the_builders")
def _negative_corpus(ws):
    return corpus_row(ws, "negative", ["good.txt"], "--num-shards", "-1", expect_ok=False)


@bad_input("truncated lexicon",
           "test_bad_input_cli.py::test_a_lexicon_cut_short_stops_corpus_build_naming_the_line")
def _truncated_lexicon(ws):
    lexicon = ws.root / "lexicon-cut"
    shutil.copytree(ws.lexicon, lexicon)
    units = lexicon / "units.tsv"
    units.write_bytes(units.read_bytes()[: units.stat().st_size // 2])
    plain = ws.lexicon
    ws.lexicon = lexicon
    try:
        return corpus_row(ws, "truncated-lexicon", ["good.txt"], expect_ok=False,
                          shown="dualmind corpus build good.txt --lexicon <units.tsv cut in "
                                "half>")
    finally:
        ws.lexicon = plain


def lexicon_row(ws: Workspace, name: str, files: list[str], *extra: str, shown: str) -> dict:
    out = ws.root / f"lexicon-{name}"
    before = sha(*(ws.root / "in" / f for f in files))
    ran = run("dualmind", ["lexicon", "build", *files, "--out", out, "--no-progress", *extra],
              ws.root / "in")
    lost = [] if sha(*(ws.root / "in" / f for f in files)) == before else ["an input changed"]
    if out.exists():
        lost.append("a lexicon was written")
    tally = re.search(r"input problems \(policy \w+\): (.*?)(?: \(e\.g\.|$)", ran.line())
    return row(shown, ran, tally[1] if tally else "refused", lost,
               "no lexicon written; inputs unchanged")


@bad_input("empty file (no document)",
           "test_lexicon_cli.py::test_build_with_no_usable_documents_fails_and_writes_nothing")
def _empty(ws):
    return lexicon_row(ws, "empty", ["empty.txt"], shown="dualmind lexicon build empty.txt")


@bad_input("binary only (no document)",
           "test_lexicon_cli.py::test_build_with_no_usable_documents_fails_and_writes_nothing")
def _binary_only(ws):
    return lexicon_row(ws, "binary", ["image.png"], shown="dualmind lexicon build image.png")


@bad_input("negative size (lexicon build)",
           "test_bad_input_cli.py::test_negative_sizes_are_refused_by_the_builders")
def _negative_lexicon(ws):
    return lexicon_row(ws, "negative", ["good.txt"], "--vocab-size", "-5",
                       shown="dualmind lexicon build good.txt --vocab-size -5")


def run_inputs(root: Path, corpus: Path, train: list[str], core_run: Path,
               align_ckpt: Path | None, quick: bool = False) -> list[dict]:
    """Every class (QUICK ones only in quick mode); rows in CLASSES order."""
    import faults_train_inputs  # noqa: F401 - registers the train.py and eval classes

    ws = Workspace(root, corpus, corpus.parent / "lexicon", train, core_run, align_ckpt)
    ws.good = write_inputs(root / "in")
    rows = []
    for name, test, fn in CLASSES:
        if quick and name not in QUICK:
            continue
        if fn.__dict__.get("needs_align") and align_ckpt is None:
            continue
        print(f"[faults] bad input: {name}", flush=True)
        rows.append({"name": name, "test": test, **fn(ws)})
    return rows
