"""What one question through the bridge gives back: the answer, the thought, and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Timings:
    """Seconds from the start of :meth:`Bridge.generate`, and rates.

    first_word_s: until the decoder had rendered its first whole word (a run of letters or digits
    followed by another character, or the end of the answer); None if it rendered no word. It
    includes the core's thinking, which comes first: the decoder reads the finished thought.
    """

    encode_s: float = 0.0  # text -> symbols, context assembly, retrieval
    think_s: float = 0.0  # the core: prompt prefill + sampling the thought
    render_s: float = 0.0  # the decoder: cross keys once + sampling the text
    total_s: float = 0.0
    first_word_s: float | None = None
    context_symbols: int = 0  # what the core read before thinking
    thought_symbols: int = 0
    text_tokens: int = 0

    @property
    def symbols_per_s(self) -> float:
        return self.thought_symbols / self.think_s if self.think_s > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.text_tokens / self.render_s if self.render_s > 0 else 0.0

    def summary(self) -> str:
        first = f"{self.first_word_s:.2f} s" if self.first_word_s is not None else "no word"
        return (f"first word {first}; thought {self.thought_symbols} symbols at "
                f"{self.symbols_per_s:.1f}/s (context {self.context_symbols}); text "
                f"{self.text_tokens} tokens at {self.tokens_per_s:.1f}/s; "
                f"total {self.total_s:.2f} s")


@dataclass
class Retrieved:
    """One scene the index put into the core's context."""

    rank: int
    score: float  # cosine similarity of the pooled core states
    text: str
    key: str  # the scene's name in the index (split:record)


@dataclass
class Answer:
    text: str
    thought_symbols: list[int]
    thought_gloss: str
    timings: Timings
    prompt_symbols: list[int] = field(default_factory=list)  # the question as the core read it
    stopped: str = ""  # the thought's: "eos" | "boundary" | "max_symbols"
    text_stopped: str = ""  # the rendering's: "eos" (it said the thought) | "max_tokens"
    unknown_symbols: int = 0  # prompt symbols the lexicon or the core did not know (read as UNK)
    notes: list[str] = field(default_factory=list)  # truncation and unknown-symbol notices
    retrieved: list[Retrieved] = field(default_factory=list)
