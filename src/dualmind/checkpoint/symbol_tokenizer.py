"""A Hugging Face tokenizer for hyperphrases: one private-use symbol <-> one core id.

The core reads unit ids; outside dualmind those ids are only reachable through a tokenizer that
a serving stack understands. A hyperphrase already is a string with exactly one character per
unit (``Lexicon.to_hyperphrase``), so the tokenizer is a ``tokenizers`` WordLevel model over the
lexicon's symbols with a pre-tokenizer that isolates every character: encoding a hyperphrase gives
the lexicon's ids, decoding ids gives the hyperphrase back (``Fuse``: no spaces between symbols).
Text itself still needs the lexicon (``Lexicon.encode``): the lexicon is not a tokenizer a serving
stack can run (it lemmatises and merges phrases), which is why the export ships it beside this.

The reserved units keep their ids and are marked special: PAD 0, BOS 1, EOS 2, UNK 3 (the same in
every lexicon). A character that is no symbol of the lexicon encodes as UNK, as the bridge does.
No BOS is added on encoding: the core is trained on records that hold no BOS.
"""

from __future__ import annotations

import json
from pathlib import Path

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
# The lexicon's reserved unit ids (dualmind.lexicon.Lexicon.PAD/BOS/EOS/UNK).
PAD, BOS, EOS, UNK = 0, 1, 2, 3


def symbol_tokenizer(n_symbols: int):
    """A ``tokenizers.Tokenizer`` mapping the symbols of unit ids 0..n_symbols-1 to those ids."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    from dualmind.lexicon.symbols import symbol_table

    if n_symbols <= UNK:
        raise ValueError(f"a lexicon has at least the {UNK + 1} reserved units, got {n_symbols}")
    symbols = symbol_table(n_symbols)
    tok = Tokenizer(models.WordLevel({s: i for i, s in enumerate(symbols)},
                                     unk_token=symbols[UNK]))
    # every character is a word of its own, a newline included (it encodes as UNK)
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([AddedToken(symbols[i], special=True, normalized=False)
                            for i in (PAD, BOS, EOS, UNK)])
    return tok


def tokenizer_config(max_len: int) -> dict:
    """``tokenizer_config.json``: lets ``AutoTokenizer`` load ``tokenizer.json`` with the reserved
    units as pad/bos/eos/unk (written by hand: the export does not need transformers)."""
    from dualmind.lexicon.symbols import symbol_of

    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "pad_token": symbol_of(PAD), "bos_token": symbol_of(BOS),
        "eos_token": symbol_of(EOS), "unk_token": symbol_of(UNK),
        "model_max_length": max_len,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False, "add_eos_token": False,
    }


def write_symbol_tokenizer(folder: Path, n_symbols: int, max_len: int) -> None:
    """``tokenizer.json`` + ``tokenizer_config.json`` of a lexicon of ``n_symbols`` units."""
    symbol_tokenizer(n_symbols).save(str(folder / TOKENIZER_FILE))
    (folder / TOKENIZER_CONFIG_FILE).write_text(
        json.dumps(tokenizer_config(max_len), indent=2, ensure_ascii=True) + "\n",
        encoding="utf-8")
