"""The `hypertrain.jsonl` record schema, validated on read (see docs/hypertrain.md).

One JSON object per line:

    id           str   unique within the file
    kind         str   "scene" | "pair" | "qa"
    lang         str   "en", "ru", ... (ISO 639-1)
    text         str   the text that `hyperphrase` encodes (for pair/qa: the input side)
    hyperphrase  str   one character per lexicon unit (`Lexicon.to_hyperphrase`)
    input        str   pair/qa only: the prompt / source side (for pairs and qa equal to `text`)
    target       str   pair/qa only: the answer / other side
    optional:    target_hyperphrase str, doc int >= 0, split str, source str, n_units int >= 0,
                 n_bytes int >= 0, meta object

Unknown keys are errors: a misspelt key would otherwise be silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("scene", "pair", "qa")
REQUIRED = {"id": str, "kind": str, "lang": str, "text": str, "hyperphrase": str}
REQUIRED_FOR_PAIRS = {"input": str, "target": str}
OPTIONAL = {
    "target_hyperphrase": str,
    "doc": int,
    "split": str,
    "source": str,
    "n_units": int,
    "n_bytes": int,
    "meta": dict,
}


class SchemaError(ValueError):
    """A hypertrain record that breaks the schema; the message names file and line."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = (
            f"{self.path}:{line}: "
            if path is not None and line is not None
            else (f"{self.path}: " if path is not None else "")
        )
        super().__init__(where + message)


@dataclass
class HypertrainRecord:
    id: str
    kind: str
    lang: str
    text: str
    hyperphrase: str
    input: str | None = None
    target: str | None = None
    target_hyperphrase: str | None = None
    doc: int | None = None
    split: str | None = None
    source: str | None = None
    n_units: int | None = None
    n_bytes: int | None = None
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Only the keys that carry a value, in schema order (stable, diff-friendly lines)."""
        return {
            k: v for k, v in asdict(self).items() if v is not None and not (k == "meta" and not v)
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


def _type_name(t: type) -> str:
    return {str: "a string", int: "an integer", dict: "an object"}[t]


def validate_record(
    obj: Any, path: str | Path | None = None, line: int | None = None
) -> HypertrainRecord:
    """Check one decoded JSON value against the schema; raise SchemaError naming path:line."""
    if not isinstance(obj, dict):
        raise SchemaError(f"expected a JSON object, got {type(obj).__name__}", path, line)
    for key in REQUIRED:
        if key not in obj:
            raise SchemaError(f"missing required key {key!r}", path, line)
    kind = obj["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise SchemaError(f"key 'kind' must be one of {list(KINDS)}, got {kind!r}", path, line)
    expected = dict(REQUIRED)
    if kind in ("pair", "qa"):
        for key in REQUIRED_FOR_PAIRS:
            if key not in obj:
                raise SchemaError(f"missing key {key!r} required for kind {kind!r}", path, line)
        expected.update(REQUIRED_FOR_PAIRS)
    elif any(k in obj for k in REQUIRED_FOR_PAIRS):
        raise SchemaError(
            "keys 'input'/'target' are only allowed for kind 'pair' or 'qa'", path, line
        )
    allowed = {**expected, **OPTIONAL}
    for key, value in obj.items():
        if key not in allowed:
            raise SchemaError(f"unknown key {key!r} (allowed: {sorted(allowed)})", path, line)
        typ = allowed[key]
        # bool is an int subclass in Python; a JSON true is never a valid count or doc id.
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise SchemaError(
                f"key {key!r} must be {_type_name(typ)}, got {type(value).__name__} {value!r:.60}",
                path,
                line,
            )
        if typ is int and value < 0:
            raise SchemaError(f"key {key!r} must be >= 0, got {value}", path, line)
    if not obj["id"]:
        raise SchemaError("key 'id' must not be empty", path, line)
    if not obj["lang"]:
        raise SchemaError("key 'lang' must not be empty", path, line)
    if "n_units" in obj and obj["n_units"] != len(obj["hyperphrase"]):
        raise SchemaError(
            f"n_units={obj['n_units']} but the hyperphrase has {len(obj['hyperphrase'])} symbols",
            path,
            line,
        )
    return HypertrainRecord(**obj)


def read_hypertrain(path: str | Path, check_unique_ids: bool = True) -> Iterator[HypertrainRecord]:
    """Yield validated records; the first bad line raises SchemaError with file and line."""
    path = Path(path)
    if not path.exists():
        raise SchemaError("no such file", path)
    seen: set[str] = set()
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SchemaError(
                    f"invalid UTF-8 at byte {e.start} of the line", path, lineno
                ) from None
            if not line.strip():
                raise SchemaError("empty line", path, lineno)
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise SchemaError(
                    f"malformed JSON: {e.msg} (column {e.colno})", path, lineno
                ) from None
            rec = validate_record(obj, path, lineno)
            if check_unique_ids:
                if rec.id in seen:
                    raise SchemaError(f"duplicate id {rec.id!r}", path, lineno)
                seen.add(rec.id)
            yield rec


def validate_file(path: str | Path) -> dict[str, int]:
    """Validate a whole file; return counts per kind and per language."""
    counts: dict[str, int] = {"records": 0}
    for rec in read_hypertrain(path):
        counts["records"] += 1
        counts[f"kind.{rec.kind}"] = counts.get(f"kind.{rec.kind}", 0) + 1
        counts[f"lang.{rec.lang}"] = counts.get(f"lang.{rec.lang}", 0) + 1
    return counts
