"""Commands for the database and the portfolio: ``db upgrade``, ``import``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from campaigns.cli.app import (
    NowOpt,
    app,
    creating_services,
    friendly_errors,
    migrated_services,
    out,
    parse_now_option,
    print_row_errors,
)

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@friendly_errors
def db_upgrade() -> None:
    """Create the database or bring it to the latest schema (Alembic)."""
    from campaigns.db.engine import schema_revision, upgrade_database

    s = creating_services()
    upgrade_database(s.engine)
    out.print(f"database at revision {schema_revision(s.engine)[0]}: {s.engine.url.render_as_string()}")


@app.command("import")
@friendly_errors
def import_command(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet portfolio export, one row per account.")],
    now: NowOpt = None,
) -> None:
    """Load a portfolio export, upserting customers and accounts. Bad rows are listed; good rows load."""
    from campaigns.portfolio import import_portfolio

    s = migrated_services()
    report = import_portfolio(s.engine, path, now=parse_now_option(now))
    print_row_errors(report.errors)
    out.print(
        f"{report.file}: {report.rows_read} rows read, {report.accounts_loaded} accounts and "
        f"{report.customers_loaded} customers loaded, {report.disputes_opened} disputes opened, "
        f"{report.rows_rejected} rows rejected",
        highlight=False,
    )
    if not report.ok:
        raise typer.Exit(1)
