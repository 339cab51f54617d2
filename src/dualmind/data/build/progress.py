"""The build's progress bars (rich), one per step; `enabled=False` keeps them silent for
library callers and tests while the steps report exactly as they would on a terminal."""

from __future__ import annotations


def progress_display(enabled: bool):
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}", markup=False),
        disable=not enabled,
    )
