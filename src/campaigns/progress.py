"""Progress of long work (an import, a stage run), for whoever is watching.

The domain and the flows report what they have done; a display decides whether
and how to show it. The CLI installs a progress bar that shows on a terminal
only; otherwise (a Prefect worker, a pipe, a test) nothing is shown. Reports
carry counts only, never personal data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Protocol


class Tracker(Protocol):
    def update(self, completed: int, note: str = "") -> None:
        """``completed`` of the total so far; ``note`` is a short count such as "12,000 rows"."""


class Silent:
    def update(self, completed: int, note: str = "") -> None:
        pass


Display = Callable[[str, "int | None"], AbstractContextManager[Tracker]]
# The display of the work running in this context (a CLI command and what it runs in its thread), not of the
# process: a worker's other runs, in contexts of their own, show nothing.
_display: ContextVar[Display | None] = ContextVar("campaigns_progress_display", default=None)


def set_display(display: Display | None) -> None:
    """Install a display for this context: ``display(label, total)`` is a context manager yielding a ``Tracker``."""
    _display.set(display)


@contextmanager
def track(label: str, total: int | None) -> Iterator[Tracker]:
    """Report the progress of one piece of work to the display installed in this context, if any."""
    display = _display.get()
    if display is None:
        yield Silent()
        return
    with display(label, total) as tracker:
        yield tracker
