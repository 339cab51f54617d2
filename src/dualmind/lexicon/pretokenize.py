"""Pre-tokenisation: how text is cut into candidate units before the vocabulary is applied.

``LOSSLESS`` tiles the text exactly (every character belongs to one match, checked by
the tests): words keep their leading space (" night"), apostrophes stay inside a word
("don't"), digits come in groups of at most three, punctuation runs and whitespace runs
are their own tokens. ``WORD`` finds the words the ``semantic`` level keeps (letters
joined by apostrophes or hyphens, or digit runs); everything else is dropped there.
"""

from __future__ import annotations

import re

PRETOKENIZER_VERSION = "v1"

LOSSLESS = re.compile(
    r" ?[^\W\d_]+(?:['’][^\W\d_]+)*"  # word, optional leading space
    r"| ?\d{1,3}"  # digits in groups of three
    r"| ?[^\w\s]+"  # punctuation / symbols / emoji run
    r"| ?_+"  # underscores (\w but neither letter nor digit)
    r"|\s+"  # whitespace run (a space inside a chunk is always the leading one)
    r"|(?s:.)"  # anything else, so nothing can ever be skipped
)

WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*|\d+")
