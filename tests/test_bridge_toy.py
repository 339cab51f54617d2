"""A toy bridge for the bridge, retrieval and chat tests (no tests of its own): a semantic lexicon
and a byte-level BPE learned from a few sentences, and a tiny random core and decoder (mechanics,
not quality)."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import torch

FACTS = [  # planted facts: each has words no other sentence has
    "The zebra Quillon sleeps beside the copper lighthouse.",
    "Marisol the baker hides saffron under the violin.",
    "The glacier Tormund melts into emerald water each spring.",
    "Captain Ostrava collects porcelain owls in the attic.",
    "The orchard of Velmira grows purple pears and quince.",
]
QUESTIONS = [  # one per fact, sharing its distinctive words but not its wording
    "Where does the zebra Quillon sleep?",
    "What does Marisol the baker hide?",
    "Into what does the glacier Tormund melt?",
    "What does captain Ostrava collect?",
    "What grows in the orchard of Velmira?",
]
DISTRACTORS = [
    "The night was dark and full of waiting.",
    "A river runs through the old town in the morning.",
    "She opened the window and listened to the rain.",
    "The children played in the garden until evening.",
    "He wrote a long letter to his brother in the city.",
    "The market was busy with farmers selling bread and milk.",
    "A cold wind came down from the mountains at night.",
    "The teacher read a story about a brave little dog.",
    "Trains leave the station every hour for the coast.",
    "The old man walked slowly along the quiet road.",
    "Ночь была тёмной и полной ожидания.",
    "Река течёт через старый город утром.",
    "Она открыла окно и слушала дождь.",
    "Дети играли в саду до самого вечера.",
    "Холодный ветер спустился с гор ночью.",
]


def build_toy(max_seq_len: int = 128, seed: int = 0):
    """(lexicon, tokenizer, core, decoder) — built in about a second."""
    from dualmind.data.text_tokenizer import load_text_tokenizer, train_text_tokenizer
    from dualmind.lexicon.lexicon import Lexicon
    from dualmind.model.config import CoreConfig
    from dualmind.model.core import HyperCore
    from dualmind.model.decoder import LanguageDecoder
    from dualmind.model.decoder_config import DecoderConfig

    texts = FACTS + QUESTIONS + DISTRACTORS  # once each: too rare for phrase merges, so a
    lexicon = Lexicon.build(texts, level="semantic", vocab_size=600)  # question shares lemmas
    tok = train_text_tokenizer(texts * 3, vocab_size=400, min_frequency=1)
    tok_path = _tmp_tokenizer(tok)
    tok = load_text_tokenizer(tok_path)
    torch.manual_seed(seed)
    core = HyperCore(CoreConfig(vocab_size=640, dim=64, n_layers=2, n_heads=4, n_kv_heads=2,
                                ffn_dim=128, max_seq_len=max_seq_len, tie_embeddings=True)).eval()
    decoder = LanguageDecoder(DecoderConfig(vocab_size=416, dim=48, n_layers=2, n_heads=4,
                                            n_kv_heads=2, ffn_dim=96, core_dim=64, cross_every=1,
                                            gated=False, max_seq_len=128,
                                            tie_embeddings=True)).eval()
    return lexicon, tok, core, decoder


# One folder for the run's toy tokenizers, removed when the test process ends (a folder per
# build_toy was left behind in the temp folder by every run: hundreds after a day's work).
_TOKENIZERS = tempfile.TemporaryDirectory(prefix="bridge_toy_")
_built = itertools.count()


def _tmp_tokenizer(tok):
    path = Path(_TOKENIZERS.name) / f"tokenizer-{next(_built)}.json"
    tok.save(str(path))
    return path


def toy_bridge(max_seq_len: int = 128, seed: int = 0):
    from dualmind.bridge.bridge import Bridge

    lexicon, tok, core, decoder = build_toy(max_seq_len, seed)
    return Bridge(lexicon, core, decoder, tok, bos=1, eos=2)


def align_checkpoint(path, lexicon, core, decoder, core_fingerprint="auto", data_dir=None):
    """A file shaped like an align run's last.ckpt (what load_models reads)."""
    from dualmind.model.fingerprint import weights_fingerprint

    state = {f"core.{k}": v for k, v in core.state_dict().items()}
    state.update({f"decoder.{k}": v for k, v in decoder.state_dict().items()})
    meta = {"format": 1, "dualmind_version": "test", "stage": "align",
            "lexicon_fingerprint": lexicon.fingerprint, "model": core.cfg.to_dict(),
            "decoder": decoder.cfg.to_dict(), "core_checkpoint": None, "flops_total": 0.0}
    if core_fingerprint == "auto":
        meta["core_fingerprint"] = weights_fingerprint(core.state_dict())
    elif core_fingerprint is not None:
        meta["core_fingerprint"] = core_fingerprint
    ckpt = {"state_dict": state, "dualmind": meta,
            "hyper_parameters": {"cfg": {
                "stage": "align", "decoder": decoder.cfg.to_dict(),
                "data": {"dir": str(data_dir) if data_dir else None,
                         "seq_len": core.cfg.max_seq_len}}}}
    torch.save(ckpt, path)
    return path
