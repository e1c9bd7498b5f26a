"""Long work shows progress with counts on a terminal, and nothing when output is not one (issue 8: 19)."""

from __future__ import annotations

import io

from rich.console import Console

from campaigns import progress
from campaigns.cli.progress import progress_display
from campaigns.portfolio.importer import import_portfolio
from tests.conftest import NOW
from tests.portfolio.test_import import row, write_csv


def test_a_terminal_gets_a_bar_with_counts():
    screen = io.StringIO()
    progress.set_display(progress_display(Console(file=screen, force_terminal=True, width=100)))
    try:
        with progress.track("soft_nudge", 4) as tracker:
            tracker.update(3, "2,345 accounts")
    finally:
        progress.set_display(None)
    shown = screen.getvalue()
    assert "soft_nudge" in shown and "2,345 accounts" in shown and "75%" in shown


def test_no_terminal_no_progress():
    pipe = io.StringIO()
    progress.set_display(progress_display(Console(file=pipe, force_terminal=False)))
    try:
        with progress.track("soft_nudge", 4) as tracker:
            tracker.update(3, "2,345 accounts")
    finally:
        progress.set_display(None)
    assert pipe.getvalue() == ""


def test_an_import_reports_rows_to_a_terminal(engine, tmp_path):
    screen = io.StringIO()
    progress.set_display(progress_display(Console(file=screen, force_terminal=True, width=120)))
    try:
        import_portfolio(engine, write_csv(tmp_path / "p.csv", [row(), row(account_id="A2")]), now=NOW)
    finally:
        progress.set_display(None)
    assert "import p.csv" in screen.getvalue() and "2 rows, 0 errors" in screen.getvalue()
    assert "Ada" not in screen.getvalue()  # counts only


def test_the_cli_shows_no_bar_when_piped(engine, tmp_path):
    from typer.testing import CliRunner

    from campaigns.cli import app

    result = CliRunner().invoke(app, ["import", str(write_csv(tmp_path / "p.csv", [row()]))])
    assert result.exit_code == 0 and "━" not in result.output and "%" not in result.output
