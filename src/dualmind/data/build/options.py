"""What a corpus build may be asked to do: its options, format constants and its error type.

Kept apart from the steps so that every step (plan, shards, finalize) can import them without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dualmind.data.build.scenes import SceneLimits
from dualmind.sources.problems import POLICIES
from dualmind.sources.readers import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    limits_problem,
)

FORMAT = "dualmind-corpus"
FORMAT_VERSION = 1
WORK = ".build"
SPLITS = ("train", "val", "qa")  # qa: question/answer and text pairs (kind qa|pair)
BACKENDS = ("process", "serial", "ray")


class CorpusError(ValueError):
    """A build that cannot start or continue: wrong lexicon level, conflicting output folder..."""


# How a scene's text becomes the decoder's BPE tokens: ``text`` tokenizes the scene as one
# string (a token may then cross a unit boundary: "ESEUS" over the lossless units E|S|E|U|S);
# ``units`` tokenizes each unit's own text on its own, so every token lies inside one unit and
# a lossless unit's tokens are exactly its surface's (rendering is copying). ``auto``: units for
# a lossless lexicon, text for a semantic one (whose units own words with their inflections).
# Measured on the lossless demo (RESULTS.md, decoder_reading): 5.7% of the text's tokens
# crossed units and cost 13 bits each, 0.26 of the decoder's 0.55 bits/byte.
TEXT_TOKENS = ("auto", "text", "units")


@dataclass
class BuildOptions:
    num_shards: int = 8  # train shards; val and qa get their own (see plan_shards)
    workers: int | None = None  # processes (default: CPU count); 1 = in this process
    errors: str = "replace"  # replace | skip | fail (see problems.py)
    backend: str = "process"  # process | serial | ray
    level: str | None = None  # required lexicon level; None = whatever the lexicon is
    text_vocab_size: int = 8192  # decoder BPE vocabulary
    text_tokens: str = "auto"  # text | units | auto (see TEXT_TOKENS)
    val_fraction: float = 0.05  # of each language's characters, by whole documents
    # Files (paths, folders, globs) whose documents are the val split, and nothing else is:
    # val_fraction is then unused. build_corpus stores them resolved (see input_files).
    heldout: tuple[str, ...] = ()
    min_units: int = 100
    max_units: int = 500
    target_units: int = 300
    block_chars: int = 1 << 16  # a document is encoded in blocks of at most this
    text_field: str = "text"
    lang: str | None = None  # force one language for every input
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
    overwrite: bool = False
    progress: bool = True
    keep_work: bool = False  # keep .build/ (staged documents, parts) after success
    ray_address: str | None = None

    def validate(self) -> None:
        if self.errors not in POLICIES:
            raise CorpusError(f"errors must be one of {POLICIES}, got {self.errors!r}")
        if self.backend not in BACKENDS:
            raise CorpusError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.text_tokens not in TEXT_TOKENS:
            raise CorpusError(f"text_tokens must be one of {TEXT_TOKENS}, got "
                              f"{self.text_tokens!r}")
        if self.num_shards < 1:
            raise CorpusError(f"num_shards must be >= 1, got {self.num_shards}")
        if isinstance(self.heldout, (str, bytes)) or not all(
            isinstance(h, str) for h in self.heldout
        ):
            raise CorpusError(f"heldout must be a list of paths, got {self.heldout!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise CorpusError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        problem = limits_problem(self.max_line_bytes, self.max_document_bytes)
        if problem:
            raise CorpusError(problem)
        SceneLimits(self.min_units, self.max_units, self.target_units, self.block_chars)

    def limits(self) -> SceneLimits:
        return SceneLimits(self.min_units, self.max_units, self.target_units, self.block_chars)

    def settings(self) -> dict[str, Any]:
        """The options that change the output (not workers, backend, progress...)."""
        keep = (
            "num_shards",
            "errors",
            "level",
            "text_vocab_size",
            "text_tokens",
            "val_fraction",
            "min_units",
            "max_units",
            "target_units",
            "block_chars",
            "text_field",
            "lang",
            "max_line_bytes",
            "max_document_bytes",
        )
        out = {k: getattr(self, k) for k in keep}
        if self.heldout:  # only when given: builds without it keep their settings hash
            out["heldout"] = sorted(self.heldout)
        return out
