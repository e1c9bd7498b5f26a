"""Commands for money coming back: ``payments``, ``plans``, ``promises``, ``agency``."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.app import (
    CliError,
    NowOpt,
    app,
    clock_now,
    friendly_errors,
    migrated_services,
    out,
    print_row_errors,
)

payments_app = typer.Typer(help="Payments: what came back. They lower what is owed, pay instalments, keep promises.",
                           no_args_is_help=True)
app.add_typer(payments_app, name="payments")
plans_app = typer.Typer(help="Instalment plans: accept an offer, see a schedule.", no_args_is_help=True)
app.add_typer(plans_app, name="plans")
promises_app = typer.Typer(help="Promises to pay: no reminders while one is open.", no_args_is_help=True)
app.add_typer(promises_app, name="promises")
agency_app = typer.Typer(help="Collection agency placement: hand aged accounts over, or take them back.",
                         no_args_is_help=True)
app.add_typer(agency_app, name="agency")


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CliError(f"{text!r} is not an amount (e.g. 120.50)") from None
    if not value.is_finite() or value <= 0:
        raise CliError(f"{text!r} is not a positive amount")
    return value


def _today(s, moment: datetime) -> date:
    return moment.astimezone(s.settings.lender_zone).date()


def _money(amounts: dict[str, Decimal]) -> str:
    from campaigns.contact.render import format_money

    return ", ".join(format_money(v, c, "en-US") for c, v in sorted(amounts.items())) or "nothing"


@payments_app.command("import")
@friendly_errors
def payments_import_command(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet: payment_id, account_id, amount, currency, paid_at "
                                              "(ISO 8601 with offset); optional method, reference.")],
    now: NowOpt = None,
) -> None:
    """Load payments. The same file twice changes nothing; bad rows are reported and the good ones load."""
    from campaigns.money.payments import import_payments

    s = migrated_services()
    report = import_payments(s.engine, path, clock_now(now), s.settings.lender_zone)
    print_row_errors(report.errors)
    out.print(f"{report.file}: {report.rows_read} rows read, {report.payments_loaded} payments loaded "
              f"({_money(report.applied)} applied), {report.already_recorded} already recorded, "
              f"{report.rows_rejected} rows rejected; {report.accounts_paid_off} account(s) paid in full, "
              f"{report.plans_completed} plan(s) completed, {report.promises_kept} promise(s) kept"
              + (f"; over-payments kept as credit: {_money(report.credit)}" if report.credit else ""),
              highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@payments_app.command("record")
@friendly_errors
def payments_record_command(
    account: Annotated[str, typer.Argument(help="Account id.")],
    amount: Annotated[str, typer.Argument(help="Amount, in the account's currency (e.g. 120.50).")],
    paid_at: Annotated[str, typer.Option("--paid-at", help="When it was paid, ISO 8601 with offset.")],
    reference: Annotated[str | None, typer.Option(help="The payer's or processor's reference.")] = None,
    payment_id: Annotated[str | None, typer.Option("--payment-id", help="The processor's id (default: made from "
                                                                         "account, time and amount).")] = None,
    now: NowOpt = None,
) -> None:
    """Record one payment (recording the same one twice records it once)."""
    from campaigns.clock import parse_now
    from campaigns.money.payments import record_payment

    s = migrated_services()
    try:
        when = parse_now(paid_at)
    except ValueError as exc:
        raise CliError(f"--paid-at: {exc}") from None
    report = record_payment(s.engine, account, _amount(amount), when, clock_now(now), s.settings.lender_zone,
                            reference=reference, payment_id=payment_id)
    if report.already_recorded:
        out.print(f"payment already recorded for account {account}; nothing changed", highlight=False)
        return
    with s.engine.connect() as conn:
        from sqlalchemy import select

        from campaigns.db.models import Account

        acc = conn.execute(select(Account.status, Account.balance, Account.amount_due, Account.credit,
                                  Account.currency).where(Account.id == account)).one()
    from campaigns.contact.render import format_money

    line = (f"account {account}: {_money(report.applied)} applied; balance {format_money(acc.balance, acc.currency, 'en-US')}, "
            f"amount due {format_money(acc.amount_due, acc.currency, 'en-US')}, status {acc.status}")
    if report.credit:
        line += f"; over-payment of {_money(report.credit)} kept as credit"
    if report.plans_completed:
        line += "; plan completed"
    if report.promises_kept:
        line += "; promise kept"
    out.print(line, highlight=False)


@plans_app.command("accept")
@friendly_errors
def plans_accept_command(
    account: Annotated[str, typer.Argument(help="Account id.")],
    option: Annotated[int, typer.Option("--option", min=1, help="The option number as the offer lists it (1, 2, ...).")],
    start: Annotated[datetime | None, typer.Option("--start", formats=["%Y-%m-%d"],
                                                   help="First instalment date (default: the offer's).")] = None,
    now: NowOpt = None,
) -> None:
    """Accept the account's open offer for the customer (e.g. on a call): the account leaves the dunning ladder."""
    from campaigns.money.offers import PlanError, accept_offer

    s = migrated_services()
    rules = s.ladder.plan_rules
    if rules is None:
        raise CliError("no stage of the ladder offers plans (a `plans` block in config/ladder.yaml)")
    moment = clock_now(now)
    try:
        plan = accept_offer(s.engine, account, option, moment, _today(s, moment), rules,
                            start=start.date() if start else None)
    except PlanError as exc:
        raise CliError(str(exc)) from None
    _print_schedule(account, plan.currency, [(n, d, a, Decimal(0)) for n, (d, a) in enumerate(plan.schedule, 1)],
                    f"plan accepted for account {account}: option {option}, {len(plan.schedule)} instalments"
                    + (f" (including a fee of {plan.fee})" if plan.fee else ""))


@plans_app.command("show")
@friendly_errors
def plans_show_command(account: Annotated[str, typer.Argument(help="Account id.")]) -> None:
    """The account's plan: each instalment, what was paid, and the payments; or its open offer."""
    from campaigns.money.offers import PlanError, plan_schedule
    from campaigns.money.payments import payments_of

    s = migrated_services()
    try:
        plan, rows = plan_schedule(s.engine, account)
    except PlanError as exc:
        raise CliError(str(exc)) from None
    if plan.accepted_at is None:
        out.print(f"account {account}: offer of {plan.offered_on} is {plan.status}"
                  + (f" (until {plan.expires_at:%Y-%m-%d %H:%M} UTC)" if plan.status == "offered" else ""),
                  highlight=False)
        for opt in plan.options or []:
            out.print(f"  option {opt['option']}: {opt['count']} instalments, {opt['total']} {plan.currency}, "
                      f"first on {opt['instalments'][0]['due']}", highlight=False)
        return
    from campaigns.money.currency import in_currency

    title = (f"account {account}: plan {plan.status} ({plan.instalments} instalments, "
             f"{in_currency(plan.total, plan.currency)} {plan.currency} in total, accepted {plan.accepted_at:%Y-%m-%d} via {plan.accepted_via})"
             + (f"; {plan.close_reason}" if plan.close_reason else ""))
    _print_schedule(account, plan.currency, [(r.seq, r.due_date, r.amount, r.paid) for r in rows], title)
    payments = payments_of(s.engine, account)
    if payments:
        out.print("payments: " + "; ".join(f"{p.paid_at:%Y-%m-%d} {in_currency(p.amount, p.currency)} {p.currency}"
                                           for p in payments), highlight=False)


def _print_schedule(account: str, currency: str, rows, title: str) -> None:
    from campaigns.money.currency import in_currency

    table = Table(title=title, title_justify="left")
    for column in ("#", "due", "amount", "paid", "left"):
        table.add_column(column, justify="right" if column != "due" else "left")
    for seq, due, amount, paid in rows:
        left = amount - paid
        table.add_row(str(seq), due.isoformat(), str(in_currency(amount, currency)), str(in_currency(paid, currency)),
                      "paid" if left <= 0 else str(in_currency(left, currency)))
    out.print(table)


@promises_app.command("record")
@friendly_errors
def promises_record_command(
    account: Annotated[str, typer.Argument(help="Account id.")],
    amount: Annotated[str, typer.Argument(help="The amount promised, in the account's currency.")],
    by: Annotated[datetime, typer.Option("--by", formats=["%Y-%m-%d"], help="Promised by this day (YYYY-MM-DD).")],
    channel: Annotated[str | None, typer.Option(help="Where it was made: call, email, sms, web, agent.")] = None,
    now: NowOpt = None,
) -> None:
    """Record a promise to pay: no reminders while it is open; kept by payments in time, broken the day after."""
    from campaigns.money.promises import PromiseError, record_promise

    s = migrated_services()
    moment = clock_now(now)
    try:
        record_promise(s.engine, account, _amount(amount), by.date(), moment, _today(s, moment), channel=channel,
                       max_days=s.ladder.promises.max_days)
    except PromiseError as exc:
        raise CliError(str(exc)) from None
    out.print(f"promise recorded for account {account}: {amount} by {by:%Y-%m-%d}; no reminders until then",
              highlight=False)


@agency_app.command("place")
@friendly_errors
def agency_place_command(
    as_of: Annotated[datetime | None, typer.Option("--as-of", formats=["%Y-%m-%d"], help="The day (default: today).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Where the placement file goes "
                                                                   "(default: DATA_DIR/agency).")] = None,
    now: NowOpt = None,
) -> None:
    """Place every account the ladder's `agency` rules select (the daily run does this too)."""
    from campaigns.money.agency import place_with_agency

    s = migrated_services()
    if s.ladder.agency is None:
        raise CliError("no `agency` block in the ladder config")
    moment = clock_now(now)
    day = as_of.date() if as_of else _today(s, moment)
    placement = place_with_agency(s.engine, s.ladder.agency, day, moment, out_dir or s.settings.data_dir / "agency")
    if not placement.accounts:
        out.print(f"no account to place with {placement.agency} on {day}", highlight=False)
        return
    out.print(f"{placement.accounts} account(s) placed with {placement.agency}; placement file: {placement.file}",
              highlight=False)


@agency_app.command("recall")
@friendly_errors
def agency_recall_command(account: Annotated[str, typer.Argument(help="Account id.")], now: NowOpt = None) -> None:
    """Take an account back from the agency: the ladder may contact it again."""
    from campaigns.money.agency import AgencyError, recall

    s = migrated_services()
    try:
        agency = recall(s.engine, account, clock_now(now))
    except AgencyError as exc:
        raise CliError(str(exc)) from None
    out.print(f"account {account} recalled from {agency}", highlight=False)
