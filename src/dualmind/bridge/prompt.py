"""From the user's text to the symbols the core reads, and how they fit its context.

Unknown symbols. A prompt is text (encoded by the lexicon) or, when every non-space character
is a hyperphrase symbol (private-use area), a hyperphrase pasted as it is. Three things become
the UNK symbol and are counted: UNK ids the lexicon itself returns, hyperphrase characters that
are no symbol of this lexicon, and ids the core's vocabulary does not hold. The semantic level
spells words it has no lemma for with pieces instead of UNK: those are counted separately
(``spelled``), from the lexicon's own fallback counter.

Truncation policy (the order things are left out when the context fills), stated once here and in
docs/bridge.md. The core needs room for its thought: ``max_symbols`` positions are reserved.
Of the rest:
  1. the question is kept whole if it fits; if it alone is longer than the room, only its LAST
     symbols are kept (the most recent words) and nothing else is read;
  2. retrieved scenes come next, nearest first, each whole or not at all;
  3. chat history fills what is left, newest turn first, each turn whole or not at all
     (the oldest turns go first).
Layout in the context: history (oldest -> newest), retrieved (farthest -> nearest), question.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dualmind.bridge.errors import BridgeError
from dualmind.lexicon.symbols import id_of

UNK = 3  # Lexicon.UNK: reserved id 3 in every lexicon


@dataclass
class EncodedPrompt:
    ids: list[int]
    unknown: int = 0
    spelled: int = 0
    notes: list[str] = field(default_factory=list)


def is_hyperphrase(text: str) -> bool:
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return False
    for c in chars:
        try:
            id_of(c)
        except ValueError:
            return False
    return True


def encode_prompt(lexicon, text: str, core_vocab: int) -> EncodedPrompt:
    """The prompt's symbol ids; raises BridgeError for an empty prompt or one with no symbols."""
    if not isinstance(text, str):
        raise BridgeError(f"the prompt must be text (str), got {type(text).__name__}")
    if not text.strip():
        raise BridgeError("empty prompt: there is nothing for the core to think about "
                          "(type a question)")
    notes: list[str] = []
    unknown = spelled = 0
    if is_hyperphrase(text):
        ids = []
        for c in text:
            if c.isspace():
                continue
            uid = id_of(c)
            if uid >= len(lexicon):
                uid = UNK
                unknown += 1
            ids.append(uid)
        if unknown:
            notes.append(f"{unknown} hyperphrase symbol(s) are not in this lexicon "
                         f"({len(lexicon)} units): read as UNK")
    else:
        before = _fallbacks(lexicon)
        ids = lexicon.encode(text)
        spelled = max(0, _fallbacks(lexicon) - before)
        lexicon_unk = sum(1 for i in ids if i == UNK)
        if lexicon_unk:
            unknown += lexicon_unk
            notes.append(f"{lexicon_unk} symbol(s) of the prompt are UNK to the lexicon")
        if spelled:
            notes.append(f"{spelled} word form(s) unknown to the lexicon were spelled with "
                         "pieces (no lemma for them)")
    too_big = sum(1 for i in ids if i >= core_vocab)
    if too_big:
        ids = [UNK if i >= core_vocab else i for i in ids]
        unknown += too_big
        notes.append(f"{too_big} symbol(s) are beyond the core's vocabulary ({core_vocab}): "
                     "read as UNK")
    if not ids:
        raise BridgeError(f"the prompt {text[:60]!r} encodes to no symbols (the {lexicon.level} "
                          "lexicon drops punctuation and function words): rephrase it with "
                          "content words")
    return EncodedPrompt(ids, unknown, spelled, notes)


def _fallbacks(lexicon) -> int:
    return int(lexicon.stats.get("piece_fallback_forms", 0)) if lexicon.level == "semantic" else 0


@dataclass
class Context:
    ids: list[int]  # what the core reads, in order
    question: list[int]  # the question as kept (its last symbols if it was cut)
    retrieved_kept: int = 0  # how many of the retrieved scenes made it in (nearest first)
    history_kept: int = 0  # how many of the newest turns made it in
    notes: list[str] = field(default_factory=list)


def _take_while_room(pieces: list[list[int]], left: int) -> tuple[list[list[int]], int]:
    """The leading ``pieces`` that fit, whole, in ``left`` positions, and the room left after
    them: the first piece that does not fit ends the run, so a later, smaller one never jumps
    ahead of it (retrieved scenes are nearest first, history turns newest first)."""
    kept = []
    for piece in pieces:
        if len(piece) > left:
            break
        kept.append(piece)
        left -= len(piece)
    return kept, left


def assemble(question: list[int], room: int, retrieved: list[list[int]] | None = None,
             history: list[list[int]] | None = None) -> Context:
    """Lay out the core's context within ``room`` symbols (see the module doc for the policy).

    retrieved: scenes nearest first; history: turns oldest first (each a flat list of symbols).
    """
    retrieved, history = retrieved or [], history or []
    if room < 1:
        raise BridgeError(f"no room for a prompt: the context has {room} positions left after "
                          "the thought's reservation (lower max_symbols)")
    notes = []
    if len(question) > room:
        notes.append(f"the prompt has {len(question)} symbols but only {room} fit before the "
                     f"thought: kept its last {room} (the most recent words); retrieved scenes "
                     "and history were left out")
        return Context(list(question[-room:]), list(question[-room:]), 0, 0, notes)
    kept_scenes, left = _take_while_room(retrieved, room - len(question))
    if len(kept_scenes) < len(retrieved):
        notes.append(f"context full: {len(retrieved) - len(kept_scenes)} of {len(retrieved)} "
                     "retrieved scene(s) left out (the farthest)")
    kept_turns, _ = _take_while_room(list(reversed(history)), left)
    if len(kept_turns) < len(history):
        notes.append(f"context full: the oldest {len(history) - len(kept_turns)} of "
                     f"{len(history)} history turn(s) left out")
    ids: list[int] = []
    for turn in reversed(kept_turns):  # oldest kept first
        ids += turn
    for scene in reversed(kept_scenes):  # nearest last: right before the question
        ids += scene
    ids += question
    return Context(ids, list(question), len(kept_scenes), len(kept_turns), notes)
