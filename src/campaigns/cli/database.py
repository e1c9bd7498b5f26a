"""Commands for the database and the portfolio: ``db upgrade``, ``import``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from campaigns.cli.app import (
    CliError,
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
    from campaigns.db.engine import schema_revision
    from campaigns.schema_upgrade import upgrade_database

    s = creating_services()
    upgrade_database(s.engine, lender_zone=s.settings.lender_zone)
    out.print(f"database at revision {schema_revision(s.engine)[0]}: {s.engine.url.render_as_string()}")


@app.command("import")
@friendly_errors
def import_command(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet portfolio export, one row per account.")],
    balance_as_of: Annotated[str | None, typer.Option(
        "--balance-as-of", help="When the file's figures were taken (ISO 8601 with offset), for rows without a "
                                "balance_as_of of their own: payments recorded here after it apply on top, those "
                                "before it are taken as included. Default: the import's moment.")] = None,
    now: NowOpt = None,
) -> None:
    """Load a portfolio export: customers and accounts upserted, each row's figures a statement in the account's
    ledger. Bad rows are listed; good rows load."""
    from campaigns.clock import parse_now
    from campaigns.portfolio import import_portfolio

    as_of = None
    if balance_as_of is not None:
        try:
            as_of = parse_now(balance_as_of)
        except ValueError as exc:
            raise CliError(f"--balance-as-of: {exc}") from None
    s = migrated_services()
    report = import_portfolio(s.engine, path, now=parse_now_option(now), zone=s.settings.lender_zone,
                              balance_as_of=as_of)
    print_row_errors(report.errors)
    older = f" ({report.statements_older} older than the account's latest: kept, no effect)" \
        if report.statements_older else ""
    out.print(
        f"{report.file}: {report.rows_read} rows read, {report.accounts_loaded} accounts and "
        f"{report.customers_loaded} customers loaded, {report.disputes_opened} disputes opened, "
        f"{report.rows_rejected} rows rejected; statements: {report.statements_recorded} new{older}, "
        f"{report.statements_unchanged} unchanged; opt-outs: {report.opt_outs_recorded} from the file, "
        f"{report.opt_outs_carried} carried from another record of the same address",
        highlight=False,
    )
    if report.erased_kept:
        shown = ", ".join(report.erased_kept[:5]) + (" ..." if len(report.erased_kept) > 5 else "")
        out.print(f"{len(report.erased_kept)} account(s) of erased customers ({shown}): their figures are loaded, "
                  "the customer stays erased (the file's name, email, phone and preferences for them are ignored)",
                  highlight=False)
    if not report.ok:
        raise typer.Exit(1)
