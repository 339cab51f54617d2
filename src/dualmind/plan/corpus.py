"""How many positions a corpus gives, how fast the codec makes them, and the BPE yardstick.

Bytes per symbol (text bytes one hyperphrase symbol stands for) comes, in order of preference:
1. given (``--bytes-per-symbol X``), reported as "given";
2. measured with a real lexicon on a sample (``--lexicon DIR --sample FILE``);
3. measured on a sample with a word-level proxy (one unit per word or punctuation mark: what a
   lossless word lexicon without multi-word units would do), reported as "proxy";
4. the lexicon benchmark's figures (``codec_figures.py``), reported as measured or default.
Every figure travels with a ``provenance`` string that the report prints.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Rewriting text with an LLM instead of the codec: generated tokens per second per GPU.
DEFAULT_LLM_TOKENS_PER_S = 5000.0
DEFAULT_LLM_NOTE = (
    "assumption: 5,000 generated tokens/s per GPU (an ~8B model served with large batches); "
    "one output token per symbol, prompt (prefill) cost ignored, so a lower bound"
)

SAMPLE_LIMIT_BYTES = 4_000_000  # read at most this much of a sample: planning must stay fast

_WORD_UNIT = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Measured:
    value: float
    provenance: str

    def to_dict(self) -> dict:
        return asdict(self)


def read_sample(path: str | os.PathLike, limit: int = SAMPLE_LIMIT_BYTES) -> str:
    """The first ``limit`` bytes of a text sample (or the ``text`` fields of a .jsonl sample).

    Only what the limit cuts is dropped (a split UTF-8 character, a half jsonl line); invalid
    UTF-8 or a malformed jsonl line anywhere else is an error naming the offset or line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        data = f.read(limit)
        truncated = bool(f.read(1))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        if not (truncated and err.start >= len(data) - 3):
            raise ValueError(f"{path}: not UTF-8 at byte {err.start}") from None
        text = data[: err.start].decode("utf-8")  # the limit split a character
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    if path.suffix == ".jsonl":  # hypertrain/corpus jsonl: take the text fields
        import json

        lines = text.splitlines()
        if truncated and not text.endswith("\n"):
            lines = lines[:-1]  # the limit cut the last line
        texts = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
            if isinstance(record, dict) and isinstance(record.get("text"), str):
                texts.append(record["text"])
        if not texts:
            raise ValueError(f"{path}: no record with a 'text' field")
        text = "\n\n".join(texts)
    return text


def word_proxy_bytes_per_symbol(text: str, label: str) -> Measured:
    units = len(_WORD_UNIT.findall(text))
    if units == 0:
        raise ValueError(f"sample {label} has no words to count")
    n_bytes = len(text.encode("utf-8"))
    return Measured(n_bytes / units, f"proxy: word/punctuation units on {label} ({n_bytes:,} B)")


@dataclass(frozen=True)
class LexiconMeasurement:
    bytes_per_symbol: Measured
    hyperphrase_utf8_bytes: Measured
    codec_bytes_per_s_per_core: Measured


def measure_with_lexicon(
    lexicon_dir: str | os.PathLike, text: str, label: str
) -> LexiconMeasurement:
    """Encode the sample with the real lexicon: bytes per symbol, UTF-8 bytes per hyperphrase
    character, and single-core encode throughput (this machine, one process)."""
    from dualmind.lexicon.lexicon import Lexicon  # local: the planner must work without a lexicon

    lex = Lexicon.load(lexicon_dir)
    # Paragraph by paragraph (blank-line separated), as a corpus build encodes documents; the
    # blank lines between them are not encoded and not counted.
    docs = [d for d in text.split("\n\n") if d.strip()] or [text]
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    start = time.perf_counter()
    ids = [lex.encode(d) for d in docs]
    seconds = time.perf_counter() - start
    n_symbols = sum(len(x) for x in ids)
    if n_symbols == 0:
        raise ValueError(f"lexicon {lexicon_dir} encodes sample {label} to nothing")
    hp_bytes = sum(len(lex.to_hyperphrase(x).encode("utf-8")) for x in ids)
    where = f"lexicon {Path(lexicon_dir).name} ({lex.level}, {lex.fingerprint[:8]}) on {label}"
    return LexiconMeasurement(
        Measured(n_bytes / n_symbols, f"measured: {where}, {n_bytes:,} B -> {n_symbols:,} symbols"),
        Measured(hp_bytes / n_symbols, f"measured: UTF-8 of hyperphrases, {where}"),
        Measured(n_bytes / seconds, f"measured: encode on 1 core of this machine, {where}"),
    )


def tiktoken_cache_dir() -> Path | None:
    """``$TIKTOKEN_CACHE_DIR``, else the shared offline copy beside this repository."""
    env = os.environ.get("TIKTOKEN_CACHE_DIR")
    if env and Path(env).is_dir():
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    shared = repo.parent / "shared" / "data" / "tiktoken-cache"
    return shared if shared.is_dir() else None


def measure_bpe_bytes_per_token(
    text: str, label: str, encoding: str = "o200k_base"
) -> Measured | None:
    """Bytes per token of a reference BPE on the sample; None (and the caller says why) when
    tiktoken or its offline vocabulary is not available."""
    cache = tiktoken_cache_dir()
    if cache is None:
        return None
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache))
    try:
        import tiktoken

        enc = tiktoken.get_encoding(encoding)
    except Exception:  # noqa: BLE001 - any failure means "not measurable here"; caller reports it
        return None
    n_tokens = len(enc.encode(text, disallowed_special=()))
    n_bytes = len(text.encode("utf-8"))
    return Measured(n_bytes / n_tokens, f"measured: tiktoken {encoding} on {label} ({n_bytes:,} B)")


@dataclass(frozen=True)
class CorpusSizes:
    kind: str  # "raw" or "hyperphrase"
    given_bytes: int
    text_bytes: float  # the text the corpus stands for
    symbols: float  # hyperphrase positions
    bpe_tokens: float  # the same text under the reference BPE

    def to_dict(self) -> dict:
        return asdict(self)


def corpus_sizes(
    given_bytes: int,
    kind: str,
    bytes_per_symbol: float,
    bpe_bytes_per_token: float,
    hyperphrase_utf8_bytes: float,
) -> CorpusSizes:
    if kind == "raw":
        symbols = given_bytes / bytes_per_symbol
    elif kind == "hyperphrase":
        symbols = given_bytes / hyperphrase_utf8_bytes
    else:
        raise ValueError(f"--corpus-kind must be raw or hyperphrase, got {kind!r}")
    text_bytes = symbols * bytes_per_symbol
    return CorpusSizes(kind, given_bytes, text_bytes, symbols, text_bytes / bpe_bytes_per_token)


@dataclass(frozen=True)
class Production:
    """Making the hyperphrase corpus: the codec on CPUs versus an LLM rewriting the text."""

    codec_bytes_per_s_per_core: float
    codec_provenance: str
    cores: int
    codec_hours: float
    codec_core_hours: float
    llm_tokens_per_s_per_gpu: float
    llm_output_tokens: float
    llm_gpu_hours: float
    llm_cost: float
    llm_note: str

    def to_dict(self) -> dict:
        return asdict(self)


def production(
    sizes: CorpusSizes,
    codec: Measured,
    cores: int,
    llm_tokens_per_s: float,
    llm_price_per_gpu_hour: float,
) -> Production:
    if cores <= 0:
        raise ValueError(f"--cores must be a positive count, got {cores}")
    if llm_tokens_per_s <= 0:
        raise ValueError(f"--llm-tokens-per-s must be positive, got {llm_tokens_per_s}")
    core_hours = sizes.text_bytes / codec.value / 3600.0
    llm_gpu_hours = sizes.symbols / llm_tokens_per_s / 3600.0
    return Production(
        codec_bytes_per_s_per_core=codec.value,
        codec_provenance=codec.provenance,
        cores=cores,
        codec_hours=core_hours / cores,
        codec_core_hours=core_hours,
        llm_tokens_per_s_per_gpu=llm_tokens_per_s,
        llm_output_tokens=sizes.symbols,
        llm_gpu_hours=llm_gpu_hours,
        llm_cost=llm_gpu_hours * llm_price_per_gpu_hour,
        llm_note=DEFAULT_LLM_NOTE,
    )
