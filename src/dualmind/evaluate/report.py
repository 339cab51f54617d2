"""What `dualmind eval` reports: summed code lengths, renderings, FLOPs per byte, as text/JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

LN2 = math.log(2.0)


class EvalError(ValueError):
    """A checkpoint or corpus the evaluation cannot use; the message names the path."""


@dataclass
class SystemBits:
    """Summed over the evaluated records: nats of each part, bytes, positions.

    split_bytes is the bytes of text the scored records hold (from the shards' record table),
    text_bytes what the scored windows add up to: equal unless a byte was dropped, which the
    report would show. windowed counts the records laid out in more than one window (longer than
    a row, or continued from the end of one row into the next), windows all windows."""

    core_nll: float = 0.0
    decoder_nll: float = 0.0
    text_bytes: int = 0
    split_bytes: int = 0
    core_positions: int = 0
    text_positions: int = 0
    records: int = 0
    windowed: int = 0
    windows: int = 0
    # the control: the decoder's nats when every row reads another row's core (rolled by one
    # row in each batch); None when not measured (stage lm, or batches of one row)
    shuffled_nll: float | None = None
    # the share of decoder_nll that codes where the text moves through the hyperphrase (a
    # decoder with a boundary head; 0 for one that takes the alignment as free side information)
    pointer_nll: float = 0.0

    @property
    def pointer_bpb(self) -> float:
        return self.pointer_nll / (LN2 * max(self.text_bytes, 1))

    @property
    def shuffled_bpb(self) -> float | None:
        if self.shuffled_nll is None:
            return None
        return self.shuffled_nll / (LN2 * max(self.text_bytes, 1))

    @property
    def taken_from_core_bpb(self) -> float | None:
        """Bits per byte the decoder takes from its own scene's core: shuffled minus own."""
        shuffled = self.shuffled_bpb
        return None if shuffled is None else shuffled - self.decoder_bpb

    @property
    def dropped_bytes(self) -> int:
        return self.split_bytes - self.text_bytes

    @property
    def core_bpb(self) -> float:
        return self.core_nll / (LN2 * max(self.text_bytes, 1))

    @property
    def decoder_bpb(self) -> float:
        return self.decoder_nll / (LN2 * max(self.text_bytes, 1))

    @property
    def system_bpb(self) -> float:
        return (self.core_nll + self.decoder_nll) / (LN2 * max(self.text_bytes, 1))

    def __add__(self, other: SystemBits) -> SystemBits:
        """The two scored together (e.g. the languages of a split, scored apart)."""
        summed = {f.name: getattr(self, f.name) + getattr(other, f.name)
                  for f in fields(self) if f.name != "shuffled_nll"}
        both = None not in (self.shuffled_nll, other.shuffled_nll)
        return SystemBits(**summed, shuffled_nll=self.shuffled_nll + other.shuffled_nll
                          if both else None)


@dataclass
class Rendering:
    original: str
    hyperphrase: str
    rendered: str
    chrf: float
    word_accuracy: float
    note: str = ""  # set when the scene did not fit the core's context (what was compared)
    # chrF of the same rendering read from another scene's states (the control); None when
    # only one scene was rendered
    control_chrf: float | None = None
    # share of the reference's words the rendering says in order (see words_in_order)
    words_in_order: float = math.nan


@dataclass
class EvalReport:
    split: str
    bits: SystemBits
    flops_per_byte: dict[str, float] = field(default_factory=dict)
    renderings: list[Rendering] = field(default_factory=list)
    by_language: dict[str, SystemBits] = field(default_factory=dict)  # when scored apart

    @property
    def chrf(self) -> float:
        r = self.renderings
        return sum(x.chrf for x in r) / len(r) if r else math.nan

    @property
    def control_chrf(self) -> float | None:
        """Mean chrF of the renderings read from another scene's states (None: not measured)."""
        r = [x.control_chrf for x in self.renderings if x.control_chrf is not None]
        return sum(r) / len(r) if r else None

    @property
    def word_accuracy(self) -> float:
        r = self.renderings
        return sum(x.word_accuracy for x in r) / len(r) if r else math.nan

    @property
    def words_in_order(self) -> float:
        r = self.renderings
        return sum(x.words_in_order for x in r) / len(r) if r else math.nan

    def to_dict(self) -> dict:
        b = self.bits
        return {"split": self.split, "system_bpb": b.system_bpb, "core_bpb": b.core_bpb,
                "decoder_bpb": b.decoder_bpb, "pointer_bpb": b.pointer_bpb, **asdict(b),
                "dropped_bytes": b.dropped_bytes,
                "shuffled_bpb": b.shuffled_bpb, "taken_from_core_bpb": b.taken_from_core_bpb,
                "flops_per_byte": self.flops_per_byte, "chrf": self.chrf,
                "control_chrf": self.control_chrf,
                "word_accuracy": self.word_accuracy, "words_in_order": self.words_in_order,
                "by_language": {lang: {"system_bpb": x.system_bpb, "core_bpb": x.core_bpb,
                                       "decoder_bpb": x.decoder_bpb,
                                       "shuffled_bpb": x.shuffled_bpb,
                                       "taken_from_core_bpb": x.taken_from_core_bpb,
                                       "text_bytes": x.text_bytes}
                                for lang, x in self.by_language.items()},
                "renderings": [asdict(r) for r in self.renderings]}

    def summary(self) -> str:
        b = self.bits
        head = [f"{self.split}: {b.records} records, {b.text_bytes} bytes of text scored of "
                f"{b.split_bytes} ({b.dropped_bytes} dropped)"
                + (f"; {b.windowed} records continued across rows, in windows "
                   f"({b.windows} windows in all)" if b.windowed else "")]
        if b.core_positions == 0:  # the BPE baseline: one model, no core part
            return "\n".join(head + [f"  BPE LM bits/byte  {b.system_bpb:.4f}  "
                                     f"({b.text_positions} positions)"]
                             + [f"  [{lang}] {x.text_bytes} bytes: BPE LM bits/byte "
                                f"{x.system_bpb:.4f}" for lang, x in self.by_language.items()]
                             + [f"  FLOPs/byte {k:<18} {v:.4g}"
                                for k, v in self.flops_per_byte.items()])
        lines = [*head, f"  system bits/byte  {b.system_bpb:.4f}",
                 f"    core  (hyperphrase)   {b.core_bpb:.4f}  ({b.core_positions} positions)",
                 f"    decoder (text | core) {b.decoder_bpb:.4f}  ({b.text_positions} positions)"]
        if b.pointer_nll:
            lines.append(f"      of which the pointer's advances {b.pointer_bpb:.4f}")
        if b.shuffled_bpb is not None:
            lines += [f"    decoder, another scene's core (control) {b.shuffled_bpb:.4f}",
                      f"    bits/byte taken from the core           {b.taken_from_core_bpb:.4f}"]
        else:
            lines.append("    control not measured: it needs two rows of a language to swap "
                         "(pass --batch-size 2+ and more records)")
        for lang, x in self.by_language.items():
            taken = ("" if x.taken_from_core_bpb is None
                     else f", control {x.shuffled_bpb:.4f}, taken from the core "
                          f"{x.taken_from_core_bpb:.4f}")
            lines.append(f"  [{lang}] {x.text_bytes} bytes: system {x.system_bpb:.4f} = core "
                         f"{x.core_bpb:.4f} + decoder {x.decoder_bpb:.4f}{taken}")
        for k, v in self.flops_per_byte.items():
            lines.append(f"  FLOPs/byte {k:<18} {v:.4g}")
        if self.renderings:
            control = ("" if self.control_chrf is None else
                       f" (read from another scene's core: chrF {self.control_chrf:.1f})")
            lines.append(f"  greedy rendering of {len(self.renderings)} scenes: chrF "
                         f"{self.chrf:.1f}, words said in order {self.words_in_order:.3f}, "
                         f"exact-word accuracy {self.word_accuracy:.3f}"
                         + control)
        return "\n".join(lines)


def chrf(hypothesis: str, reference: str, max_order: int = 6, beta: float = 2.0) -> float:
    """Character n-gram F-score (Popović 2015; chrF, n = 1..6, β = 2, whitespace removed), 0-100."""
    from collections import Counter

    hyp, ref = "".join(hypothesis.split()), "".join(reference.split())
    precisions, recalls = [], []
    for n in range(1, max_order + 1):
        h = Counter(hyp[i:i + n] for i in range(len(hyp) - n + 1))
        r = Counter(ref[i:i + n] for i in range(len(ref) - n + 1))
        if not h or not r:
            continue
        match = sum((h & r).values())
        precisions.append(match / sum(h.values()))
        recalls.append(match / sum(r.values()))
    if not precisions:
        return 0.0
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p + r == 0:
        return 0.0
    return 100.0 * (1 + beta**2) * p * r / (beta**2 * p + r)


def word_accuracy(hypothesis: str, reference: str) -> float:
    """Share of the reference's words reproduced exactly at the same word position."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return 1.0 if not hyp else 0.0
    return sum(a == b for a, b in zip(ref, hyp, strict=False)) / len(ref)


def words_in_order(hypothesis: str, reference: str) -> float:
    """Share of the reference's words the hypothesis says in the same order (the longest
    matching blocks of words, difflib): a word dropped or added early does not count every
    later word as wrong, as :func:`word_accuracy` does."""
    from difflib import SequenceMatcher

    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return 1.0 if not hyp else 0.0
    blocks = SequenceMatcher(None, ref, hyp, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks) / len(ref)
