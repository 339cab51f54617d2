"""A ``Plan`` as a Rich table and as JSON.

The table's rows are built in ``report_rows``; the small PNG is ``report_plot``'s."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .report_rows import rows
from .units import human_bytes


def print_table(p: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console = Console(width=170)  # piped or captured: don't squeeze it into 80 columns
    title = (
        f"dualmind plan — {p['model']['name']} on {human_bytes(p['corpus']['given_bytes'])} "
        f"({p['corpus']['kind']}), {p['gpu']['count']} x {p['gpu']['key'].upper()}"
    )
    table = Table(title=title, show_lines=False, expand=False)
    for col, style in (
        ("section", "bold cyan"),
        ("quantity", ""),
        ("value", "bold"),
        ("basis / provenance", "dim"),
    ):
        table.add_column(col, style=style, overflow="fold")
    last = None
    for section, quantity, value, basis in rows(p):
        if last is not None and section != last:
            table.add_section()
        table.add_row(section if section != last else "", quantity, value, basis)
        last = section
    console.print(table)


def to_json(p: dict) -> str:
    return json.dumps(p, indent=2, default=_jsonable)


def _jsonable(x):
    if isinstance(x, tuple):
        return list(x)
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")
