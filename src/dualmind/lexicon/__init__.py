"""The hyperlexicon codec: text <-> units of meaning, one private-use symbol per unit.

No torch, no model imports: a codec anyone can use alone. See docs/lexicon.md.
"""

from .lexicon import FORMAT_VERSION, LEVELS, Lexicon
from .script import detect_language
from .units import LexiconError, Unit

__all__ = ["Lexicon", "LexiconError", "Unit", "detect_language", "FORMAT_VERSION", "LEVELS"]
