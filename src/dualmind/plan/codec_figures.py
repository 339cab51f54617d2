"""Measured codec figures the planner falls back on when none are given or measured in the run.

Preference (the report prints which one was used):
1. the codec section that ``benchmarks/codec.py`` (the lexicon's benchmark) writes into
   ``benchmarks/RESULTS.md`` between ``<!-- codec:start -->`` and ``<!-- codec:end -->``:
   bytes per unit and tiktoken o200k bytes per token on held-out demo prose, and the encode
   speed of the "corpus" pass (a fresh lexicon over the whole demo corpus: what a corpus build
   sees), for the chosen ``--level`` and ``--lang``;
2. the same benchmark's figures from its run of 2026-11-29 06:37 UTC (encode speed: the
   ``encode_batch`` column), built in below, so the planner answers the same way before
   RESULTS.md exists.
The UTF-8 size of a hyperphrase character is not in the benchmark; it was measured by this
planner's ``--lexicon/--sample`` path on the demo lexicons (2026-11).
"""

from __future__ import annotations

import re
from pathlib import Path

from .corpus import Measured

START, END = "<!-- codec:start -->", "<!-- codec:end -->"
LEVELS = ("lossless", "semantic")
LANGS = ("en", "ru")

_BUILTIN_RUN = "benchmarks/codec.py run of 2026-11-29 06:37 UTC (32,768-unit demo lexicons)"
# (level, lang) -> bytes per unit, o200k bytes per token, encode MB/s per core (corpus pass)
BUILTIN = {
    ("lossless", "en"): (5.03, 3.78, 24.0),
    ("lossless", "ru"): (7.19, 5.95, 24.2),
    ("semantic", "en"): (10.98, 3.78, 18.8),
    ("semantic", "ru"): (14.28, 5.95, 15.2),
}
# Lexicons built the benchmark's way, held-out text, len(to_hyperphrase(ids).encode()) / len(ids).
UTF8_BYTES_PER_CHAR = {
    ("lossless", "en"): 3.48,
    ("lossless", "ru"): 3.27,
    ("semantic", "en"): 3.80,
    ("semantic", "ru"): 3.61,
}


def _table(section: str, column: str) -> list[dict]:
    """Rows (dicts) of the first markdown table with a header cell starting with ``column``."""
    lines = section.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.strip().startswith("|") and any(c.startswith(column) for c in cells):
            header, rows = cells, []
            for row in lines[i + 2 :]:  # skip the |---| line
                if not row.strip().startswith("|"):
                    break
                rows.append(
                    dict(
                        zip(
                            header,
                            (c.strip() for c in row.strip().strip("|").split("|")),
                            strict=False,
                        )
                    )
                )
            return rows
    return []


def read_codec_section(path: Path, level: str, lang: str, shown: str) -> dict[str, Measured] | None:
    """Figures for (level, lang) from the codec section ({} when none is readable), or None
    when there is no codec section at all."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return None
    section = text.split(START, 1)[1].split(END, 1)[0]
    when = re.search(r"Measured ([0-9-]+ [0-9:]+ UTC)", section)
    out: dict[str, Measured] = {}
    vocab = None  # the first (the benchmark's default) vocabulary listed for this level and lang
    for row in _table(section, "bytes/unit"):
        if row.get("level") == level and row.get("lang") == lang:
            vocab = row.get("vocab")
            where = (
                f"{shown} codec section ({level}, {lang}, {vocab} units"
                f"{', ' + when.group(1) if when else ''})"
            )
            try:
                bps = float(row["bytes/unit"])
                ratio = float(row.get("× o200k_base", "nan"))
            except ValueError:
                continue
            out["bytes_per_symbol"] = Measured(bps, f"measured: {where}")
            reference = re.search(rf"{lang}: o200k_base ([0-9.]+)", section)
            if reference:
                out["bpe_bytes_per_token"] = Measured(
                    float(reference.group(1)), f"measured: tiktoken o200k_base, {where}"
                )
            elif ratio == ratio:  # not NaN
                out["bpe_bytes_per_token"] = Measured(
                    bps / ratio, f"measured: tiktoken o200k_base (via the ratio), {where}"
                )
            break
    for row in _table(section, "ours"):
        key = (row.get("level"), row.get("vocab"), row.get("pass"), row.get("lang"))
        if vocab is None or key != (level, vocab, "corpus", lang):
            continue
        # encode_batch is what a corpus build calls; older sections have one "ours MB/s" column
        for column in ("ours `encode_batch`", "ours `encode`", "ours MB/s"):
            try:
                speed = float(row[column]) * 1e6
            except (KeyError, ValueError):
                continue
            what = column.removeprefix("ours ")
            out["codec_bytes_per_s_per_core"] = Measured(
                speed, f"measured: {what} on one core, corpus pass, {where}"
            )
            break
        break
    return out


def codec_figures(level: str, lang: str, results: Path, shown: str) -> dict[str, Measured]:
    """bytes_per_symbol, bpe_bytes_per_token, codec_bytes_per_s_per_core, hyperphrase_utf8_bytes."""
    if level not in LEVELS:
        raise ValueError(f"--level must be one of {LEVELS}, got {level!r}")
    if lang not in LANGS:
        raise ValueError(f"--lang must be one of {LANGS}, got {lang!r}")
    bps, bpt, mb_s = BUILTIN[(level, lang)]
    section = read_codec_section(results, level, lang, shown)
    why = (
        f"{shown} has no codec section"
        if section is None
        else f"{shown}'s codec section has no readable figure for it"
    )
    builtin = f"default: {_BUILTIN_RUN}, {level}, {lang} ({why})"
    figures = {
        "bytes_per_symbol": Measured(bps, builtin),
        "bpe_bytes_per_token": Measured(bpt, f"{builtin} (tiktoken o200k_base)"),
        "codec_bytes_per_s_per_core": Measured(mb_s * 1e6, f"{builtin} (encode, corpus pass)"),
        "hyperphrase_utf8_bytes": Measured(
            UTF8_BYTES_PER_CHAR[(level, lang)],
            f"default: UTF-8 bytes per hyperphrase character, demo {level} lexicon on held-out "
            f"{lang} demo text (planner --lexicon/--sample, 2026-11)",
        ),
    }
    figures.update(section or {})
    return figures
