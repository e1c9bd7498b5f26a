"""A rich progress bar for long commands, on a terminal only: piped output and logs stay quiet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from campaigns import progress


class _Bar:
    def __init__(self, bar: Progress, task_id):
        self.bar, self.task_id = bar, task_id

    def update(self, completed: int, note: str = "") -> None:
        self.bar.update(self.task_id, completed=completed, note=note)


def progress_display(console: Console):
    """A display for ``campaigns.progress``: a transient bar per piece of work while ``console`` is a terminal."""

    @contextmanager
    def display(label: str, total: int | None) -> Iterator[progress.Tracker]:
        if not console.is_terminal:
            yield progress.Silent()
            return
        columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[note]}"), TimeElapsedColumn()]
        with Progress(*columns, console=console, transient=True) as bar:
            yield _Bar(bar, bar.add_task(label, total=total, note=""))

    return display


def install(console: Console) -> None:
    progress.set_display(progress_display(console))
