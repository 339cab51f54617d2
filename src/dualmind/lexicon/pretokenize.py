"""Pre-tokenisation: how text is cut into candidate units before the vocabulary is applied.

``LOSSLESS_PATTERN`` tiles the text exactly (every character belongs to one match):
words keep one leading space (" night"), apostrophes stay inside a word ("don't"), digits
come in groups of at most three, punctuation/symbol runs and whitespace runs are their
own tokens. It uses no look-around, so the compiled engine (Rust ``regex`` inside
tiktoken) runs it as a DFA; the build reads the same pattern with the PyPI ``regex``
module, which has the same Unicode classes, so what is counted is what is encoded.

``WORD`` finds the words the ``semantic`` level keeps (letters joined by apostrophes or
hyphens, or digit runs); everything else is dropped there.
"""

from __future__ import annotations

import re

import regex

PRETOKENIZER_VERSION = "v2"

LOSSLESS_PATTERN = (
    r" ?\p{L}+(?:['’]\p{L}+)*"  # word, optional leading space
    r"| ?\p{N}{1,3}"  # digits in groups of three
    r"| ?[^\s\p{L}\p{N}]+"  # punctuation / symbols / marks / emoji run
    r"|\s+"  # whitespace run
)
LOSSLESS = regex.compile(LOSSLESS_PATTERN)

WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*|\d+")
WORD_SPLIT = re.compile(f"({WORD.pattern})")  # split() keeps the words, in odd positions
