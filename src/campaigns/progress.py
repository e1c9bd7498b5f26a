"""Progress of long work (an import, a stage run), for whoever is watching.

The domain and the flows report what they have done; a display decides whether
and how to show it. The CLI installs a progress bar that shows on a terminal
only; otherwise (a Prefect worker, a pipe, a test) nothing is shown. Reports
carry counts only, never personal data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Tracker(Protocol):
    def update(self, completed: int, note: str = "") -> None:
        """``completed`` of the total so far; ``note`` is a short count such as "12,000 rows"."""


class Silent:
    def update(self, completed: int, note: str = "") -> None:
        pass


Display = Callable[[str, "int | None"], AbstractContextManager[Tracker]]
_display: Display | None = None


def set_display(display: Display | None) -> None:
    """Install a display: ``display(label, total)`` is a context manager yielding a ``Tracker``."""
    global _display
    _display = display


@contextmanager
def track(label: str, total: int | None) -> Iterator[Tracker]:
    """Report the progress of one piece of work to the installed display, if any."""
    if _display is None:
        yield Silent()
        return
    with _display(label, total) as tracker:
        yield tracker
