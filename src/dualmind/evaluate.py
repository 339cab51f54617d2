"""`dualmind eval`: the honest yardstick of the two-headed model on held-out text.

System bits per byte: the hyperphrase h is a deterministic function of the text, so

    bpb = (NLL_core(h) + NLL_decoder(text | core(h))) / (ln 2 · bytes of text)

is a complete code length of the text, comparable with a BPE language model's bits per byte.
Both parts are reported on their own too. The code is charged in full, nothing is free:
- the core pays every unit; the first unit of each packed row, which has no context, is charged
  a uniform ln(core vocab) nats;
- the decoder pays every text token and the EOS that ends each record (where the text stops).

Also: greedy reconstruction of a few scenes (decoder rendering from the core's states alone,
against the original text: chrF and exact-word accuracy), and FLOPs per byte of text for the
core positions and the decoder positions, separately (forward = inference, 6N = training).

A baseline checkpoint (stage=lm, recipe=baseline_bpe_mini: a plain GPT over the same BPE ids)
is evaluated on the same records: its bits per byte are NLL(text + EOS) / (ln 2 · bytes).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


class EvalError(ValueError):
    """A checkpoint or corpus the evaluation cannot use; the message names the path."""


@dataclass
class SystemBits:
    """Summed over the evaluated records: nats of each part, bytes, positions."""

    core_nll: float = 0.0
    decoder_nll: float = 0.0
    text_bytes: int = 0
    core_positions: int = 0
    text_positions: int = 0
    records: int = 0
    truncated: int = 0

    @property
    def core_bpb(self) -> float:
        return self.core_nll / (LN2 * max(self.text_bytes, 1))

    @property
    def decoder_bpb(self) -> float:
        return self.decoder_nll / (LN2 * max(self.text_bytes, 1))

    @property
    def system_bpb(self) -> float:
        return (self.core_nll + self.decoder_nll) / (LN2 * max(self.text_bytes, 1))


@dataclass
class Rendering:
    original: str
    hyperphrase: str
    rendered: str
    chrf: float
    word_accuracy: float


@dataclass
class EvalReport:
    split: str
    bits: SystemBits
    flops_per_byte: dict[str, float] = field(default_factory=dict)
    renderings: list[Rendering] = field(default_factory=list)

    @property
    def chrf(self) -> float:
        r = self.renderings
        return sum(x.chrf for x in r) / len(r) if r else math.nan

    @property
    def word_accuracy(self) -> float:
        r = self.renderings
        return sum(x.word_accuracy for x in r) / len(r) if r else math.nan

    def to_dict(self) -> dict:
        b = self.bits
        return {"split": self.split, "system_bpb": b.system_bpb, "core_bpb": b.core_bpb,
                "decoder_bpb": b.decoder_bpb, **asdict(b), "flops_per_byte": self.flops_per_byte,
                "chrf": self.chrf, "word_accuracy": self.word_accuracy,
                "renderings": [asdict(r) for r in self.renderings]}

    def summary(self) -> str:
        b = self.bits
        head = [f"{self.split}: {b.records} records, {b.text_bytes} bytes of text"
                + (f" ({b.truncated} records cut to fit a row)" if b.truncated else "")]
        if b.core_positions == 0:  # the BPE baseline: one model, no core part
            return "\n".join(head + [f"  BPE LM bits/byte  {b.system_bpb:.4f}  "
                                     f"({b.text_positions} positions)"]
                             + [f"  FLOPs/byte {k:<18} {v:.4g}"
                                for k, v in self.flops_per_byte.items()])
        lines = [*head, f"  system bits/byte  {b.system_bpb:.4f}",
                 f"    core  (hyperphrase)   {b.core_bpb:.4f}  ({b.core_positions} positions)",
                 f"    decoder (text | core) {b.decoder_bpb:.4f}  ({b.text_positions} positions)"]
        for k, v in self.flops_per_byte.items():
            lines.append(f"  FLOPs/byte {k:<18} {v:.4g}")
        if self.renderings:
            lines.append(f"  greedy rendering of {len(self.renderings)} scenes: chrF "
                         f"{self.chrf:.1f}, exact-word accuracy {self.word_accuracy:.3f}")
        return "\n".join(lines)


# ---- reconstruction metrics ---------------------------------------------------------------------


def chrf(hypothesis: str, reference: str, max_order: int = 6, beta: float = 2.0) -> float:
    """Character n-gram F-score (Popović 2015; chrF, n = 1..6, β = 2, whitespace removed), 0-100."""
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


# ---- loading ------------------------------------------------------------------------------------


def load_models(checkpoint: str | Path) -> tuple[torch.nn.Module, torch.nn.Module | None, dict]:
    """(core or baseline LM, decoder or None, metadata) of an align or lm checkpoint."""
    from dualmind.lit import checkpoint_metadata
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore

    path = Path(checkpoint)
    if path.is_dir() and (path / "config.json").is_file():  # a `dualmind export` folder
        return _load_export(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise EvalError(f"{checkpoint}: no checkpoint (pass a .ckpt or a run folder)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    try:
        meta = checkpoint_metadata(ckpt)
    except ValueError as err:
        raise EvalError(f"{path}: {err}") from err
    state = ckpt["state_dict"]

    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    core = HyperCore(CoreConfig.from_dict(meta["model"], source=f"{path} metadata"))
    core.load_state_dict(part("core."), strict=True)
    decoder = None
    if meta.get("stage") == "align":
        from dualmind.model.decoder import LanguageDecoder
        from dualmind.model.decoder_config import DecoderConfig

        if not meta.get("decoder"):
            raise EvalError(f"{path}: an align checkpoint without its decoder config")
        decoder = LanguageDecoder(DecoderConfig.from_dict(meta["decoder"],
                                                          source=f"{path} metadata"))
        decoder.load_state_dict(part("decoder."), strict=True)
        decoder.eval()
    elif meta.get("stage") != "lm":
        raise EvalError(f"{path}: stage {meta.get('stage')!r}; `dualmind eval` scores a decoder "
                        "(stage align) or a BPE baseline (stage lm)")
    meta["path"] = str(path)
    return core.eval(), decoder, meta


def _load_export(path: Path) -> tuple[torch.nn.Module, torch.nn.Module | None, dict]:
    from dualmind.export import load_component_state, load_core

    core, meta = load_core(path)
    decoder = None
    if meta.get("stage") == "align":
        from dualmind.model.decoder import LanguageDecoder
        from dualmind.model.decoder_config import DecoderConfig

        if not meta.get("decoder") or "decoder" not in meta.get("components", {}):
            raise EvalError(f"{path}: an align export without its decoder (re-export it)")
        decoder = LanguageDecoder(DecoderConfig.from_dict(meta["decoder"],
                                                          source=path / "config.json"))
        decoder.load_state_dict(load_component_state(path, "decoder"), strict=True)
        decoder.eval()
    elif meta.get("stage") != "lm":
        raise EvalError(f"{path}: stage {meta.get('stage')!r}; `dualmind eval` scores a decoder "
                        "(stage align) or a BPE baseline (stage lm)")
    meta = dict(meta, path=str(path))
    return core, decoder, meta


# ---- scoring ------------------------------------------------------------------------------------


def core_nll(logits: torch.Tensor, core_ids: torch.Tensor, core_doc: torch.Tensor
             ) -> tuple[float, int]:
    """Nats to code every real core symbol of the rows; the first of each row costs ln V."""
    logits = logits.float()
    real = core_doc >= 0
    nll = F.cross_entropy(logits[:, :-1].flatten(0, 1), core_ids[:, 1:].flatten(),
                          reduction="none").view(core_ids.shape[0], -1)
    total = float((nll * real[:, 1:]).sum()) + math.log(logits.shape[-1]) * int(real[:, 0].sum())
    return total, int(real.sum())


def score_split(core, decoder, corpus_dir: str | Path, split: str = "val",
                max_records: int | None = None, batch_size: int = 4,
                mask_mode: str = "render", expect_lexicon: str | None = None) -> SystemBits:
    from dualmind.align import decoder_nll
    from dualmind.data.align_datamodule import NO_LIMIT, AlignPacks, collate_aligned
    from dualmind.data.datamodule import open_shards

    shards = open_shards(corpus_dir, split, expect_lexicon)
    special = shards.manifest.get("tokenizer", {}).get("special", {})
    text_len = decoder.cfg.max_seq_len if decoder is not None else core.cfg.max_seq_len
    core_len = core.cfg.max_seq_len if decoder is not None else NO_LIMIT
    packs = AlignPacks(shards, core_len, text_len, int(special.get("bos", 1)),
                       int(special.get("eos", 2)), limit_records=max_records)
    bits = SystemBits(truncated=packs.truncated)
    with torch.no_grad():
        for start in range(0, len(packs), batch_size):
            rows = [packs[i] for i in range(start, min(start + batch_size, len(packs)))]
            batch = collate_aligned(rows)
            bits.records += sum(len(r) for r in rows)
            bits.text_bytes += int(batch["text_bytes"].sum())
            if decoder is None:  # the BPE baseline: the same text + EOS, no core
                nll, n = lm_nll(core, batch)
                bits.decoder_nll += nll
                bits.text_positions += n
                continue
            core_doc = batch["alignment"].core_doc
            out = core(batch["core_ids"], doc_ids=_core_docs(core_doc))
            c_nll, c_pos = core_nll(out.logits, batch["core_ids"], core_doc)
            bits.core_nll += c_nll
            bits.core_positions += c_pos
            d_nll, d_pos = decoder_nll(decoder, out.hidden, batch, mask_mode)
            bits.decoder_nll += float(d_nll)
            bits.text_positions += int(d_pos)
    return bits


def _core_docs(core_doc: torch.Tensor) -> torch.Tensor:
    from dualmind.align import core_doc_ids

    return core_doc_ids(core_doc)


def lm_nll(lm, batch: dict) -> tuple[float, int]:
    """A plain LM over the text ids: NLL of every target (BOS-prefixed input, EOS at the end)."""
    from dualmind.data.align_datamodule import IGNORE

    doc = batch["alignment"].text_doc
    logits = lm(batch["text_ids"], doc_ids=_core_docs(doc)).logits.float()
    targets = batch["targets"]
    nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                          reduction="sum")
    return float(nll), int((targets != IGNORE).sum())


def flops_per_byte(core, decoder, bits: SystemBits) -> dict[str, float]:
    """Model FLOPs per byte of text, core and decoder positions counted separately."""
    nbytes = max(bits.text_bytes, 1)
    out = {}
    if decoder is None:
        T = core.cfg.max_seq_len
        for mode, training in (("forward", False), ("train", True)):
            per = core.cfg.flops_per_token(T, training=training)
            out[f"lm_{mode}"] = per * bits.text_positions / nbytes
        return out
    S, T = core.cfg.max_seq_len, decoder.cfg.max_seq_len
    for mode, training in (("forward", False), ("train", True)):
        core_per = core.cfg.flops_per_token(S, training=training)
        dec_per = decoder.cfg.flops_per_token(T, S, training=training)
        out[f"core_{mode}"] = core_per * bits.core_positions / nbytes
        out[f"decoder_{mode}"] = dec_per * bits.text_positions / nbytes
    return out


def render_scenes(core, decoder, corpus_dir: str | Path, split: str = "val", scenes: int = 3,
                  lexicon_dir: str | Path | None = None, max_new_tokens: int | None = None
                  ) -> list[Rendering]:
    """Greedy decoder rendering of the first `scenes` records, each read from its own states;
    up to the original's length + 16 tokens, or `max_new_tokens` (the score then compares a
    prefix of the rendering with the whole original)."""
    from dualmind.data.datamodule import open_shards
    from dualmind.data.text_tokenizer import load_text_tokenizer

    shards = open_shards(corpus_dir, split)
    tok = load_text_tokenizer(shards.tokenizer_path)
    special = shards.manifest.get("tokenizer", {}).get("special", {})
    bos, eos = int(special.get("bos", 1)), int(special.get("eos", 2))
    lexicon = None
    if lexicon_dir is not None:
        from dualmind.lexicon import Lexicon

        lexicon = Lexicon.load(lexicon_dir)
    out = []
    for i in range(min(scenes, len(shards))):
        scene = shards[i]
        units = torch.as_tensor(scene.core[: core.cfg.max_seq_len], dtype=torch.int64)[None]
        with torch.no_grad():
            states = core(units).hidden
        budget = min(max_new_tokens or len(scene.text) + 16, decoder.cfg.max_seq_len - 1)
        gen = decoder.generate(states, torch.tensor([[bos]]), budget, temperature=0.0,
                               eos_id=eos)
        ids = [int(t) for t in gen.ids[0, 1:]]
        if eos in ids:
            ids = ids[: ids.index(eos)]
        rendered = tok.decode(ids, skip_special_tokens=True)
        original = tok.decode([int(t) for t in scene.text], skip_special_tokens=False)
        gloss = ("·".join(lexicon.gloss(int(u)) for u in scene.core) if lexicon is not None
                 else " ".join(str(int(u)) for u in scene.core))
        out.append(Rendering(original, gloss, rendered, chrf(rendered, original),
                             word_accuracy(rendered, original)))
    return out


def evaluate(checkpoint: str | Path, corpus_dir: str | Path, split: str = "val",
             max_records: int | None = None, scenes: int = 3, batch_size: int = 4,
             mask_mode: str = "render", lexicon_dir: str | Path | None = None,
             max_new_tokens: int | None = None) -> EvalReport:
    core, decoder, meta = load_models(checkpoint)
    bits = score_split(core, decoder, corpus_dir, split, max_records, batch_size, mask_mode,
                       expect_lexicon=meta.get("lexicon_fingerprint")
                       if decoder is not None else None)
    report = EvalReport(split, bits, flops_per_byte(core, decoder, bits))
    if decoder is not None and scenes > 0:
        report.renderings = render_scenes(core, decoder, corpus_dir, split, scenes, lexicon_dir,
                                          max_new_tokens)
    return report


# ---- CLI ----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="an align (or lm baseline) .ckpt, or its run folder")
    parser.add_argument("--data", required=True, help="corpus folder (dualmind corpus build)")
    parser.add_argument("--split", default="val", help="split to score (default: val, held out)")
    parser.add_argument("--max-records", type=int, default=None,
                        help="score only the first N records of the split")
    parser.add_argument("--scenes", type=int, default=3,
                        help="scenes to render greedily for chrF / word accuracy (0: none)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--mask-mode", default="render", choices=("render", "stream"))
    parser.add_argument("--lexicon", default=None, help="lexicon folder, to gloss hyperphrases")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="rendering budget per scene (default: its text's length + 16)")
    parser.add_argument("--json", default=None, help="also write the report to this JSON file")


def run(args: argparse.Namespace) -> int:
    try:
        report = evaluate(args.checkpoint, args.data, args.split, args.max_records, args.scenes,
                          args.batch_size, args.mask_mode, args.lexicon, args.max_new_tokens)
    except (EvalError, ValueError) as err:
        print(f"dualmind eval: {err}")
        return 2
    print(report.summary())
    for r in report.renderings:
        print(f"\n  original : {r.original[:300]}\n  hyper    : {r.hyperphrase[:300]}\n"
              f"  rendered : {r.rendered[:300]}")
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    return 0


# ---- the demo's held-out scenes -----------------------------------------------------------------


def show_scenes(checkpoint: str | Path, corpus_dir: str | Path, scenes: int = 3,
                split: str = "val", lexicon_dir: str | Path | None = None,
                width: int = 400, max_new_tokens: int | None = None) -> str:
    """A few held-out scenes as printable text: the original, its hyperphrase (glossed when a
    lexicon folder is given) and what the decoder rendered from the frozen core's states alone.
    For scripts/demo.py: ``print(show_scenes(align_run, corpus, lexicon_dir=lexicon))``."""
    core, decoder, _ = load_models(checkpoint)
    if decoder is None:
        raise EvalError(f"{checkpoint}: a stage-lm baseline has no decoder to render scenes with")
    out = []
    renderings = render_scenes(core, decoder, corpus_dir, split, scenes, lexicon_dir,
                               max_new_tokens)
    for i, r in enumerate(renderings):
        out.append(f"--- held-out scene {i + 1} (chrF {r.chrf:.1f}, exact words "
                   f"{r.word_accuracy:.0%})\n"
                   f"original    : {_clip(r.original, width)}\n"
                   f"hyperphrase : {_clip(r.hyperphrase, width)}\n"
                   f"decoder     : {_clip(r.rendered, width)}")
    return "\n".join(out)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line per field
    return text if len(text) <= width else text[: width - 1] + "…"
