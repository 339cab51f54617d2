"""Each benchmark owns one section of benchmarks/RESULTS.md, between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; rewriting it leaves the others alone."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, text: str, results: Path = RESULTS) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = f"{start}\n{text.strip()}\n{end}"
    old = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + body + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + body + "\n"
    results.write_text(new, encoding="utf-8")
