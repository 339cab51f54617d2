"""Tiny checkpoints for the viz report tests (no tests here; shared by test_viz_*.py).

A semantic lexicon learned from a few sentences, a random 3-layer core over it saved as a
core-stage checkpoint, the same core with a random decoder saved as an align checkpoint (with a
small corpus folder holding the decoder's BPE tokenizer, as a real run records it), and a
perturbed copy of the core to compare with. Built once per session, in a temporary folder.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import torch

from dualmind.data.text_tokenizer import train_text_tokenizer
from dualmind.lexicon.lexicon import Lexicon
from dualmind.model.config import CoreConfig
from dualmind.model.core import HyperCore
from dualmind.model.decoder import LanguageDecoder
from dualmind.model.decoder_config import DecoderConfig

SENTENCES = [
    "The old lighthouse keeper watched the storm roll over the grey sea at night.",
    "Ships came home late, and the harbour lights burned until the morning.",
    "She wrote letters to her brother about the winter, the wolves and the snow.",
    "Старый смотритель маяка смотрел, как буря катится над серым морем ночью.",
    "Корабли возвращались поздно, и огни гавани горели до самого утра.",
    "A quiet village stood by the river, where children played in the summer sun.",
]
PROMPT = ("The keeper watched the storm over the sea at night.\n\n"
          "Корабли возвращались поздно, и огни гавани горели до утра.")


@functools.cache
def tiny_run() -> dict[str, Path]:
    root = Path(tempfile.mkdtemp(prefix="dualmind-viz-test-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    lexicon = Lexicon.build(SENTENCES * 3, level="semantic", vocab_size=600)
    lexicon.save(root / "lexicon")
    corpus = root / "corpus"
    corpus.mkdir()
    tok = train_text_tokenizer(SENTENCES * 3, vocab_size=300)
    tok.save(str(corpus / "tokenizer.json"))
    (corpus / "manifest.json").write_text(json.dumps(
        {"tokenizer": {"file": "tokenizer.json", "special": {"bos": 1, "eos": 2}}}))

    torch.manual_seed(0)
    core_cfg = CoreConfig(vocab_size=lexicon.vocab_size, dim=32, n_layers=3, n_heads=4,
                          n_kv_heads=2, ffn_dim=64, max_seq_len=128, attn_backend="sdpa",
                          init_std=0.2)
    core = HyperCore(core_cfg)
    dec_cfg = DecoderConfig(vocab_size=tok.get_vocab_size(), dim=24, n_layers=2, n_heads=2,
                            ffn_dim=48, core_dim=32, max_seq_len=128, attn_backend="sdpa",
                            init_std=0.2)
    decoder = LanguageDecoder(dec_cfg)
    run_cfg = {"data": {"dir": str(corpus), "lexicon": None}}

    def save(name: str, stage: str, state: dict, dec: dict | None) -> Path:
        path = root / name / "checkpoints" / "last.ckpt"
        path.parent.mkdir(parents=True)
        meta = {"format": 1, "stage": stage, "lexicon_fingerprint": lexicon.fingerprint,
                "model": core_cfg.to_dict(), "decoder": dec}
        torch.save({"dualmind": meta, "state_dict": state,
                    "hyper_parameters": {"cfg": run_cfg}}, path)
        return path

    core_state = {f"core.{k}": v for k, v in core.state_dict().items()}
    paths = {"root": root, "lexicon": root / "lexicon", "corpus": corpus}
    paths["core"] = save("core_run", "core", core_state, None)
    paths["align"] = save("align_run", "align", {
        **core_state, **{f"decoder.{k}": v for k, v in decoder.state_dict().items()}},
        dec_cfg.to_dict())
    moved = dict(core_state)
    moved["core.layers.2.feed_forward.w2.weight"] = core_state[
        "core.layers.2.feed_forward.w2.weight"] * 2.0
    paths["moved"] = save("moved_run", "core", moved, None)
    return paths


@functools.cache
def align_report() -> Path:
    """The align checkpoint's report (decoder panel, compared with the moved core), built once
    and shared by the report and browser tests."""
    from dualmind.viz.report import write_report

    run = tiny_run()
    return write_report(run["align"], PROMPT, run["root"] / "report-align",
                        layers=[0, 2], heads=[0, 1], lexicon_dir=run["lexicon"],
                        compare=run["moved"])
