"""Bad-input policy (`--errors replace|skip|fail`) and the tally proving nothing drops silently.

    fail     the first problem raises InputError naming file and line
    skip     the offending unit (line, record, file, document) is left out and counted
    replace  repairable problems are repaired and counted (invalid UTF-8 -> U+FFFD, a text file
             over max_document_bytes is split); problems that cannot be repaired (malformed JSON,
             a wrong type, a binary or empty file, an unknown language) are skipped and counted as
             under `skip`

Some problems no policy gets past, because skipping them would lose good data for the sake of a
limit of ours: a JSON record longer than max_line_bytes, a JSON array file over
max_document_bytes. They raise InputError naming the option that raises the limit. (A long line
of plain text is no problem at all: it is read in pieces.)

Every problem is counted under its kind with the action taken, and the first few occurrences keep
their `file:line` so the summary can show where to look.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

POLICIES = ("replace", "skip", "fail")
EXAMPLES_PER_KIND = 5

# kind -> can `replace` repair it?
REPAIRABLE = {
    "invalid_utf8": True,
    "line_too_long": False,  # only ever raised (a JSON record): see above
    "document_too_long": True,
    "malformed_json": False,
    "wrong_type": False,
    "missing_text": False,
    "binary_file": False,
    "empty_file": False,
    "empty_document": False,
    "unknown_language": False,
    "unreadable_file": False,
    "duplicate_id": True,
    "no_units": False,
}


class InputError(ValueError):
    """Bad input under `--errors fail` (or a problem no policy can get past)."""

    def __init__(
        self, kind: str, message: str, path: str | Path | None = None, line: int | None = None
    ):
        self.kind = kind
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(f"{format_where(self.path, line)}{message} [{kind}]")


def format_where(path: str | None, line: int | None) -> str:
    if path is None:
        return ""
    return f"{path}:{line}: " if line is not None else f"{path}: "


@dataclass
class Problems:
    """Counts of problems by kind and action ('replaced' / 'skipped'), with examples."""

    policy: str = "replace"
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"errors policy must be one of {POLICIES}, got {self.policy!r}")

    def report(
        self,
        kind: str,
        message: str,
        path: str | Path | None = None,
        line: int | None = None,
        count: int = 1,
    ) -> str:
        """Record one problem; return the action the caller must take: 'replace' or 'skip'.

        Raises InputError under the `fail` policy."""
        if kind not in REPAIRABLE:
            raise KeyError(f"unknown problem kind {kind!r}")
        if self.policy == "fail":
            raise InputError(kind, message, path, line)
        action = "replace" if self.policy == "replace" and REPAIRABLE[kind] else "skip"
        self.note(
            kind, "replaced" if action == "replace" else "skipped", message, path, line, count
        )
        return action

    def note(
        self,
        kind: str,
        action: str,
        message: str,
        path: str | Path | None = None,
        line: int | None = None,
        count: int = 1,
    ) -> None:
        """Count a problem whose action is fixed by design (e.g. a renamed duplicate id)."""
        per = self.counts.setdefault(kind, {})
        per[action] = per.get(action, 0) + count
        ex = self.examples.setdefault(kind, [])
        if len(ex) < EXAMPLES_PER_KIND:
            ex.append(f"{format_where(None if path is None else str(path), line)}{message}")

    def merge(self, other: Problems | dict) -> None:
        data = other.to_dict() if isinstance(other, Problems) else other
        for kind, per in data.get("counts", {}).items():
            mine = self.counts.setdefault(kind, {})
            for action, n in per.items():
                mine[action] = mine.get(action, 0) + n
        for kind, ex in data.get("examples", {}).items():
            mine_ex = self.examples.setdefault(kind, [])
            mine_ex.extend(ex[: max(0, EXAMPLES_PER_KIND - len(mine_ex))])

    def total(self, action: str | None = None) -> int:
        return sum(n for per in self.counts.values() for a, n in per.items() if action in (None, a))

    def to_dict(self) -> dict:
        return {
            "policy": self.policy,
            "counts": {k: dict(sorted(v.items())) for k, v in sorted(self.counts.items())},
            "examples": {k: list(v) for k, v in sorted(self.examples.items())},
        }

    def reason(self) -> str:
        """The tally on one line, with one example per kind: why nothing was left to use."""
        if not self.counts:
            return f"input problems: none (policy {self.policy})"
        kinds = "; ".join(
            f"{kind}: " + ", ".join(f"{n} {a}" for a, n in sorted(per.items()))
            + (f" (e.g. {self.examples[kind][0]})" if self.examples.get(kind) else "")
            for kind, per in sorted(self.counts.items())
        )
        return f"input problems (policy {self.policy}): {kinds}"

    def summary_lines(self) -> list[str]:
        if not self.counts:
            return [f"input problems: none (policy {self.policy})"]
        lines = [
            f"input problems (policy {self.policy}): "
            f"{self.total('replaced')} replaced, {self.total('skipped')} skipped"
        ]
        for kind, per in sorted(self.counts.items()):
            acts = ", ".join(f"{n} {a}" for a, n in sorted(per.items()))
            lines.append(f"  {kind}: {acts}")
            for ex in self.examples.get(kind, [])[:3]:
                lines.append(f"    e.g. {ex}")
        return lines
