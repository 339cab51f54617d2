"""What the planner is asked (``PlanRequest``), what it answers (``Plan``) and how it
refuses (``PlanError``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import compute
from . import corpus as corpus_mod

DEFAULT_CLAIM = (500e9, 1500e9)  # the starting claim: "70B on hyperphrases ~ 500B-1500B GPT"
DEFAULT_DECODER = "8b"  # conf/decoder/8b.yaml, made for the 70b core

class PlanError(ValueError):
    """Bad planner input; ``argument`` names the CLI option it came from."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument


@dataclass
class PlanRequest:
    recipe: str | None = None  # e.g. "core_70b"
    overrides: list[str] = field(default_factory=list)  # more Hydra overrides for the recipe
    model: str | None = None  # a conf/model name, when no recipe is given
    corpus: str = "1TB"
    corpus_kind: str = "raw"  # raw text or hyperphrase files
    level: str = "lossless"  # which lexicon level's benchmark figures to fall back on
    lang: str = "en"  # and which language's
    bytes_per_symbol: float | None = None
    lexicon: str | None = None
    sample: str | None = None
    bpe_bytes_per_token: float | None = None
    gpu: str = "h100"
    gpus: int | None = None  # default: the recipe's devices x num_nodes
    mfu: float = compute.DEFAULT_MFU
    mfu_source: str | None = None  # where a measured MFU comes from (printed as provenance)
    price: float | None = None  # USD per GPU-hour; default: hardware table (an assumption)
    epochs: float = 1.0
    seq_len: int | None = None
    micro_batch: int | None = None
    checkpointing: str | None = None
    precision: str | None = None
    loss_chunk: int | None = None  # positions per chunk of the loss; None: the recipe's
    # strategy.loss_chunk; 0: full logits
    cores: int | None = None
    codec_bytes_per_s: float | None = None
    llm_tokens_per_s: float = corpus_mod.DEFAULT_LLM_TOKENS_PER_S
    decoder: str = DEFAULT_DECODER
    claim: tuple[float, float] = DEFAULT_CLAIM
    results: str | None = None  # benchmarks/RESULTS.md
    scaling_law: str | None = None  # the scaling study's fitted laws (default: the package's)


@dataclass
class Plan:
    request: dict
    model: dict
    gpu: dict
    run: dict
    inputs: dict  # every assumed/measured figure with its provenance
    corpus: dict
    compute: dict
    alignment: dict  # stage align of the decoder on the same text, core frozen
    chinchilla: dict
    memory: dict
    memory_alternatives: dict
    communication: dict
    production: dict
    inference: dict
    equivalence: dict
    sweep: list = field(default_factory=list)  # days/cost/memory at other GPU counts (plot)
    # the scaling study's prediction at this run's training FLOPs (core + alignment)
    scaling: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)
