"""What "a 70B on hyperphrases ~ a 500B-1500B GPT" can and cannot mean, in numbers.

With k = (text bytes per hyperphrase symbol) / (text bytes per BPE token) — the compression
of hyperphrases over the reference BPE, measured or assumed, never taken on trust:

- training FLOPs per byte of text: a core of N parameters spends 6N/bps per byte; a BPE model of
  M parameters spends 6M/bpt. They are equal when M = N / k: at equal compute per byte, the core
  matches a BPE model k times *smaller*, not larger. Put the other way round, the budget that
  trains an M-parameter BPE model on a text trains a k*M-parameter core on the same text.
- context: at the same sequence length (hence the same attention cost per sequence), the core
  covers k times more bytes of text.
- parameters: N stays N. Compression changes how much text each position carries, not how many
  weights store what was learned.
Whether the core is actually *as good* as the larger BPE model is an empirical question:
the equal-compute study (issue 4) measures system bits per byte; this module cites it from
``benchmarks/RESULTS.md`` when it is there and says "not measured yet" when it is not.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_START = "<!-- equal_compute:start -->"
RESULTS_END = "<!-- equal_compute:end -->"
NOT_MEASURED = "not measured yet"


@dataclass(frozen=True)
class InferencePerByte:
    context_positions: int
    core_flops_per_byte: float
    decoder_flops_per_byte: float
    dual_flops_per_byte: float  # core + decoder
    bpe_same_size_flops_per_byte: float
    core_context_bytes: float
    bpe_context_bytes: float
    decoder_name: str

    def to_dict(self) -> dict:
        return asdict(self)


def inference_per_byte(
    core_forward_flops_per_position: float,
    decoder_forward_flops_per_token: float,
    bpe_forward_flops_per_token: float,
    bytes_per_symbol: float,
    bpe_bytes_per_token: float,
    context_positions: int,
    decoder_name: str,
) -> InferencePerByte:
    core = core_forward_flops_per_position / bytes_per_symbol
    decoder = decoder_forward_flops_per_token / bpe_bytes_per_token
    return InferencePerByte(
        context_positions=context_positions,
        core_flops_per_byte=core,
        decoder_flops_per_byte=decoder,
        dual_flops_per_byte=core + decoder,
        bpe_same_size_flops_per_byte=bpe_forward_flops_per_token / bpe_bytes_per_token,
        core_context_bytes=context_positions * bytes_per_symbol,
        bpe_context_bytes=context_positions * bpe_bytes_per_token,
        decoder_name=decoder_name,
    )


@dataclass(frozen=True)
class Equivalence:
    params: float
    compression: float  # k = bytes per symbol / bytes per BPE token
    bpe_params_same_train_flops_per_byte: float  # N / k
    core_params_for_same_budget_as_bpe: float  # k * N: what a BPE-N budget buys in core size
    context_ratio: float  # k
    claimed_bpe_params: tuple[float, float]
    compression_needed_for_claim: tuple[float, float]  # k the claim would need, read generously
    measured: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def equivalence(
    params: float,
    bytes_per_symbol: float,
    bpe_bytes_per_token: float,
    claimed: tuple[float, float],
    measured: dict,
) -> Equivalence:
    k = bytes_per_symbol / bpe_bytes_per_token
    return Equivalence(
        params=params,
        compression=k,
        bpe_params_same_train_flops_per_byte=params / k,
        core_params_for_same_budget_as_bpe=params * k,
        context_ratio=k,
        claimed_bpe_params=claimed,
        compression_needed_for_claim=(claimed[0] / params, claimed[1] / params),
        measured=measured,
    )


def read_equal_compute_results(path: str | Path, shown: str | Path | None = None) -> dict:
    """The equal-compute section of ``benchmarks/RESULTS.md``: its markdown table rows (as dicts)
    and raw text, or ``{"status": "not measured yet", ...}`` when the file or section is absent."""
    path = Path(path)
    where = shown if shown is not None else path  # how the report names the file
    if not path.is_file():
        return {"status": NOT_MEASURED, "source": f"{where} does not exist"}
    text = path.read_text(encoding="utf-8")
    start, end = text.find(RESULTS_START), text.find(RESULTS_END)
    if start < 0:
        return {"status": NOT_MEASURED, "source": f"{where} has no {RESULTS_START} section"}
    section = text[start + len(RESULTS_START) : end if end > start else len(text)].strip()
    rows = _markdown_table(section)
    has_bpb = any(re.search(r"bpb|bits.?(per|/).?byte", key, re.I) for row in rows for key in row)
    if not section or not has_bpb:
        return {
            "status": NOT_MEASURED,
            "source": f"{where}: the section has no bits-per-byte table",
            "text": section,
        }
    return {"status": "measured", "source": str(where), "rows": rows, "text": section}


def _markdown_table(text: str) -> list[dict]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    if len(lines) < 2:
        return []
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if all(re.fullmatch(r":?-+:?", c) for c in cells if c):
            continue  # the |---|---| separator
        rows.append(dict(zip(header, cells, strict=False)))  # ragged rows: keep what is there
    return rows
