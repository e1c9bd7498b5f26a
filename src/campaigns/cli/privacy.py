"""Commands for a customer's personal data and its retention: ``customer show|export|erase``, ``retention``.

Each customer command is logged as an access to personal data (who: ``--by``, default the operating-system
user; why: ``--reason``). Only ``show --reveal`` prints plain values.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.app import NowOpt, app, clock_now, friendly_errors, migrated_services, out

customer_app = typer.Typer(help="A customer's personal data: show (masked, or revealed with a reason), "
                                "subject-access export, erasure (every one is logged); and the link to their own "
                                "page (link).", no_args_is_help=True)
app.add_typer(customer_app, name="customer")

AccountArg = Annotated[str, typer.Argument(help="An account id of the customer.")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who asks (for the access log). Default: your user name.")]


def _actor(by: str | None) -> str:
    return by or getpass.getuser()


@customer_app.command("show")
@friendly_errors
def customer_show(
    account: AccountArg,
    reveal: Annotated[bool, typer.Option("--reveal", help="Print name, email and phone (logged; needs --reason).")
                      ] = False,
    reason: Annotated[str | None, typer.Option(help="Why they are needed, for the access log.")] = None,
    by: ByOpt = None,
    now: NowOpt = None,
) -> None:
    """The customer of ACCOUNT: preferences, zones, accounts; name, email and phone masked unless --reveal."""
    from campaigns.contact.render import format_money
    from campaigns.privacy.subject import show_customer

    s = migrated_services()
    view = show_customer(s.engine, account, clock_now(now), actor=_actor(by), reveal=reveal, reason=reason)
    table = Table(title=f"customer {view.customer_id}" + (" (revealed, logged)" if view.revealed else " (masked)"))
    table.add_column("field")
    table.add_column("value")
    for key, value in view.fields.items():
        table.add_row(key, "" if value is None else str(value))
    out.print(table)
    for acc in view.accounts:
        due, balance = (format_money(acc[k], acc["currency"], "en-US") for k in ("amount_due", "balance"))
        out.print(f"account {acc['id']}: {acc['status']}, {due} due {acc['due_date']}, balance {balance}",
                  highlight=False)


@customer_app.command("export")
@friendly_errors
def customer_export(
    account: AccountArg,
    out_path: Annotated[Path | None, typer.Option("--out", help="Where to write the JSON (0600). Default: "
                                                  "DATA_DIR/exports/<customer>-<time>.json")] = None,
    reason: Annotated[str | None, typer.Option(help="e.g. the request's reference, for the access log.")] = None,
    by: ByOpt = None,
    now: NowOpt = None,
) -> None:
    """Subject access: everything held about the customer of ACCOUNT, as one JSON file (logged)."""
    from campaigns.privacy.subject import customer_of, export_customer

    s = migrated_services()
    moment = clock_now(now)
    if out_path is None:
        with s.engine.connect() as conn:
            customer_id = customer_of(conn, account)
        out_path = s.settings.data_dir / "exports" / f"{customer_id}-{moment:%Y%m%dT%H%M%SZ}.json"
    path, counts = export_customer(s.engine, account, moment, actor=_actor(by), reason=reason, out=out_path)
    out.print(f"written {path} (0600): " + ", ".join(f"{k} {n}" for k, n in counts.items()), highlight=False)


@customer_app.command("erase")
@friendly_errors
def customer_erase(
    account: AccountArg,
    reason: Annotated[str, typer.Option(help="Why (e.g. the request's reference), for the access log.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do it (without it: say what would happen).")] = False,
    by: ByOpt = None,
    now: NowOpt = None,
) -> None:
    """Erase the customer of ACCOUNT: name, email, phone and message contents go; the contact log's facts,
    payments and opt-outs (as blind indexes) stay. Queued messages are stopped. Logged."""
    from campaigns.privacy.subject import customer_of, erase_customer

    s = migrated_services()
    if not yes:
        with s.engine.connect() as conn:
            customer_id = customer_of(conn, account)
        out.print(f"would erase customer {customer_id}'s name, email, phone and message contents; "
                  "run again with --yes", highlight=False)
        raise typer.Exit(1)
    counts = erase_customer(s.engine, account, clock_now(now), actor=_actor(by), reason=reason)
    out.print(f"erased: {counts['messages_reduced']} messages reduced to their hash, "
              f"{counts['attempts_stopped']} queued messages stopped; the contact log keeps the facts",
              highlight=False)


@app.command("retention")
@friendly_errors
def retention_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; change nothing.")] = False,
    now: NowOpt = None,
) -> None:
    """Reduce old messages to their hash and anonymise long-closed customers (what the daily `retention`
    deployment runs); the periods are CAMPAIGNS_RETENTION_MESSAGE_DAYS and _CLOSED_CUSTOMER_DAYS."""
    from campaigns.privacy.retention import apply_retention

    s = migrated_services()
    report = apply_retention(s.engine, clock_now(now), message_days=s.settings.retention_message_days,
                             closed_customer_days=s.settings.retention_closed_customer_days, dry_run=dry_run)
    verb = "would be" if dry_run else "were"
    out.print(f"messages before {report.messages_before[:10]}: {report.messages_reduced} {verb} reduced to their "
              f"hash, {report.outbox_deleted} outbox copies {verb} deleted; customers closed before "
              f"{report.closed_before[:10]}: {report.customers_anonymised} {verb} anonymised", highlight=False)
