"""The copy channel's table: each lexicon unit's surface as the decoder's own BPE tokens.

A unit's surface is what the lexicon knows it stands for: the exact bytes of a lossless unit
(a word with its leading space, a piece, a byte), the lemma of a semantic one (with a leading
space, as a word appears inside a sentence). Its first K tokens fill one row of
``DecoderConfig.copy_slots`` columns, -1 where the surface is shorter; special units (pad, bos,
eos, unk) have none. The table is a fixed function of the lexicon and the tokenizer, both known
to the decoder, so reading it keeps the system's code length a valid code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dualmind.data.open_corpus import DataConfigError

NO_TOKEN = -1


def surface_table(lexicon: Any, tokenizer: Any, slots: int, rows: int | None = None
                  ) -> torch.Tensor:
    """long [rows, slots]: the first `slots` decoder tokens of each unit's surface (rows:
    default the lexicon's size; the core's vocabulary may be larger: the rest stay empty)."""
    from dualmind.data.text_tokenizer import _byte_decoder

    rows = len(lexicon) if rows is None else rows
    if rows < len(lexicon):
        raise DataConfigError(f"the lexicon has {len(lexicon)} units, more than the core's "
                              f"vocabulary of {rows}")
    byte_token = {b: tokenizer.token_to_id(ch) for ch, b in _byte_decoder().items()}
    table = torch.full((rows, slots), NO_TOKEN, dtype=torch.int64)
    for uid in range(len(lexicon)):
        unit = lexicon.unit(uid)
        if unit.kind == "special":
            continue
        if lexicon.level == "lossless":
            try:
                ids = tokenizer.encode(unit.data.decode("utf-8")).ids
            except UnicodeDecodeError:  # a lone byte of a multi-byte character: its byte token
                ids = [byte_token[b] for b in unit.data if byte_token.get(b) is not None]
        else:
            ids = tokenizer.encode(" " + lexicon.gloss(uid)).ids
        ids = ids[:slots]
        table[uid, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return table


def surface_table_for_run(cfg: Any, decoder_config: Any) -> torch.Tensor:
    """The table of an align run: the lexicon of data.lexicon (a folder), the corpus' tokenizer."""
    lexicon, tokenizer = run_lexicon_and_tokenizer(
        cfg, f"decoder.copy_slots={decoder_config.copy_slots}: the copy channel",
        "decoder.copy_slots=0")
    return surface_table(lexicon, tokenizer, decoder_config.copy_slots,
                         rows=decoder_config.core_vocab_size)


def unit_piece_table_for_run(cfg: Any, core_config: Any) -> torch.Tensor:
    """A core run's unit pieces (model.unit_pieces, dualmind.model.unit_pieces): the same table,
    as many slots as the core composes, a row per symbol of its vocabulary."""
    lexicon, tokenizer = run_lexicon_and_tokenizer(
        cfg, f"model.unit_pieces={core_config.unit_pieces}: the core's unit pieces",
        "model.unit_pieces=0")
    if tokenizer.get_vocab_size() > core_config.piece_vocab:
        raise DataConfigError(f"model.piece_vocab={core_config.piece_vocab} is smaller than the "
                              f"corpus tokenizer's {tokenizer.get_vocab_size()} tokens "
                              f"({cfg['data']['dir']}/tokenizer.json)")
    return surface_table(lexicon, tokenizer, core_config.unit_pieces, rows=core_config.vocab_size)


def run_lexicon_and_tokenizer(cfg: Any, who: str, off: str) -> tuple[Any, Any]:
    """The lexicon of data.lexicon (or the one found beside data.dir) and data.dir's tokenizer;
    `who` reads them (named in the errors), `off` is the setting that does without."""
    from dualmind.data.text_tokenizer import load_text_tokenizer
    from dualmind.lexicon.lexicon import Lexicon

    lexicon_dir = cfg["data"].get("lexicon")
    if not lexicon_dir or not Path(str(lexicon_dir)).is_dir():
        lexicon_dir = find_corpus_lexicon(Path(str(cfg["data"]["dir"])))
    if lexicon_dir is None:
        raise DataConfigError(
            f"{who} reads each unit's surface from the lexicon, and none was found beside "
            f"data.dir={cfg['data']['dir']}; pass its folder as data.lexicon=<dir>, or set {off}")
    tokenizer_path = Path(str(cfg["data"]["dir"])) / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise DataConfigError(f"data.dir={cfg['data']['dir']}: no tokenizer.json (is it a corpus "
                              "folder made by `dualmind corpus build`?)")
    return Lexicon.load(lexicon_dir), load_text_tokenizer(tokenizer_path)


def find_corpus_lexicon(corpus_dir: Path) -> Path | None:
    """The lexicon a corpus was built with, when it lies in the corpus folder or beside it (as
    `make demo` and the benchmarks lay them out): the folder whose lexicon.json carries the
    corpus manifest's lexicon fingerprint. None when there is none."""
    import json

    try:
        manifest = json.loads((corpus_dir / "manifest.json").read_text(encoding="utf-8"))
        want = manifest["lexicon"]["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None
    candidates = [corpus_dir / "lexicon", *sorted(corpus_dir.parent.iterdir())]
    for folder in candidates:
        header = folder / "lexicon.json"
        try:
            if json.loads(header.read_text(encoding="utf-8")).get("fingerprint") == want:
                return folder
        except (OSError, ValueError):
            continue
    return None
