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
    err,
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


# "-5" reaches the amount argument (and is refused with a reason) instead of "No such option: -5".
AMOUNT_MAY_LOOK_LIKE_AN_OPTION = {"ignore_unknown_options": True}


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CliError(f"{text!r} is not an amount (e.g. 120.50)") from None
    if not value.is_finite() or value <= 0:
        raise CliError(f"{text!r} is not a positive amount (to undo a payment: campaigns payments reverse "
                       "PAYMENT_ID --reason CODE)")
    return value


def _moment(text: str | None, option: str) -> datetime | None:
    """An option's ISO 8601 timestamp (with its offset), or a one-line error naming the option."""
    from campaigns.clock import parse_now

    if text is None:
        return None
    try:
        return parse_now(text)
    except ValueError as exc:
        raise CliError(f"{option}: {exc}") from None


def _today(s, moment: datetime) -> date:
    return moment.astimezone(s.settings.lender_zone).date()


def _money(amounts: dict[str, Decimal]) -> str:
    return ", ".join(_in(v, c) for c, v in sorted(amounts.items())) or "nothing"


def _in(amount, currency: str) -> str:
    """One amount as every command prints it: $354.06, CN¥1,200.00."""
    from campaigns.contact.render import format_money

    return format_money(Decimal(str(amount)), currency, "en-US")


def _summary(report) -> str:
    """What a payments file or a single event did, in one line (amounts per currency, never a name)."""
    parts = [f"{report.payments_loaded} payments loaded ({_money(report.applied)} applied)"]
    if report.reversals_loaded:
        parts.append(f"{report.reversals_loaded} reversed")
    if report.refunds_loaded:
        parts.append(f"{report.refunds_loaded} refunds")
    parts.append(f"{report.already_recorded} already recorded")
    line = (", ".join(parts) + f", {report.rows_rejected} rows rejected; {report.accounts_paid_off} account(s) paid "
            f"in full, {report.plans_completed} plan(s) completed, {report.promises_kept} promise(s) kept")
    if report.accounts_reopened:
        line += f"; {report.accounts_reopened} account(s) owe again"
    if report.plans_reopened or report.promises_reopened:
        line += f" ({report.plans_reopened} plan(s), {report.promises_reopened} promise(s) reopened)"
    if report.credit:
        line += f"; over-payments kept as credit: {_money(report.credit)}"
    if report.in_statement:
        line += (f"; {report.in_statement} payment(s) dated before their account's latest statement, taken as "
                 "included in it")
    return line


@payments_app.command("import")
@friendly_errors
def payments_import_command(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet: payment_id, account_id, amount, currency, paid_at "
                                              "(ISO 8601 with offset); optional method, reference, type (payment, "
                                              "reversal, refund), reverses (a reversal's payment), reason.")],
    now: NowOpt = None,
    processes: Annotated[int | None, typer.Option(
        min=0, help="Processes that store the rows, each holding its own accounts (PostgreSQL only). Default: one "
                    "per core, at most 4, for a file of 50,000 rows or more; 0: this process.")] = None,
) -> None:
    """Load payments (and reversals, refunds). The same file twice changes nothing; bad rows are reported and the
    good ones load."""
    from campaigns.money.payments import import_payments

    s = migrated_services()
    report = import_payments(s.engine, path, clock_now(now), s.settings.lender_zone, processes=processes)
    print_row_errors(report.errors)
    out.print(f"{report.file}: {report.rows_read} rows read, {_summary(report)}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def _account_line(s, account: str) -> str:
    from sqlalchemy import select

    from campaigns.contact.render import format_money
    from campaigns.db.models import Account

    with s.engine.connect() as conn:
        acc = conn.execute(select(Account.status, Account.balance, Account.amount_due, Account.credit,
                                  Account.currency).where(Account.id == account)).one()
    line = (f"balance {format_money(acc.balance, acc.currency, 'en-US')}, amount due "
            f"{format_money(acc.amount_due, acc.currency, 'en-US')}, status {acc.status}")
    if acc.credit:
        line += f", credit {format_money(acc.credit, acc.currency, 'en-US')}"
    return line


@payments_app.command("record", context_settings=AMOUNT_MAY_LOOK_LIKE_AN_OPTION)
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
    from campaigns.money.payments import record_payment

    s = migrated_services()
    when = _moment(paid_at, "--paid-at")
    report = record_payment(s.engine, account, _amount(amount), when, clock_now(now), s.settings.lender_zone,
                            reference=reference, payment_id=payment_id)
    if report.already_recorded:
        out.print(f"payment already recorded for account {account}; nothing changed", highlight=False)
        return
    line = f"account {account}: {_money(report.applied)} applied; {_account_line(s, account)}"
    if report.credit:
        line += f"; over-payment of {_money(report.credit)} kept as credit"
    if report.in_statement:
        line += "; dated before the account's latest statement: taken as included in it"
    if report.plans_completed:
        line += "; plan completed"
    if report.promises_kept:
        line += "; promise kept"
    out.print(line, highlight=False)


@payments_app.command("reverse")
@friendly_errors
def payments_reverse_command(
    payment_id: Annotated[str, typer.Argument(help="The payment_id of the payment to undo.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, as a short code: chargeback, returned, "
                                                         "recorded_in_error, duplicate, ...")],
    reversal_id: Annotated[str | None, typer.Option("--reversal-id", help="The reversal's own id, e.g. the "
                                                                          "chargeback's (default: rev-PAYMENT_ID).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="When it was reversed, ISO 8601 with offset "
                                                        "(default: now).")] = None,
    now: NowOpt = None,
) -> None:
    """Reverse a payment: what it paid is owed again, its plan instalments and promise are judged again, a
    payoff it made is undone (the next payoff is thanked once). Reversing it again changes nothing."""
    from campaigns.money.payments import PaymentError, reverse_payment

    s = migrated_services()
    when = _moment(at, "--at")
    try:
        report = reverse_payment(s.engine, payment_id, reason, clock_now(now), s.settings.lender_zone,
                                 reversed_at=when, reversal_id=reversal_id)
    except PaymentError as exc:
        raise CliError(str(exc)) from None
    if report.already_recorded:
        out.print(f"payment {payment_id} is already reversed; nothing changed", highlight=False)
        return
    from sqlalchemy import select

    from campaigns.db.models import Payment

    with s.engine.connect() as conn:
        account = conn.execute(select(Payment.account_id).where(Payment.payment_id == payment_id)).scalar_one()
    extra = "; it owes again" if report.accounts_reopened else ""
    if report.plans_reopened:
        extra += "; its plan is open again"
    if report.promises_reopened:
        extra += "; its promise is open again"
    out.print(f"payment {payment_id} reversed ({reason}); account {account}: {_account_line(s, account)}{extra}",
              highlight=False)


@payments_app.command("refund", context_settings=AMOUNT_MAY_LOOK_LIKE_AN_OPTION)
@friendly_errors
def payments_refund_command(
    account: Annotated[str, typer.Argument(help="Account id.")],
    amount: Annotated[str, typer.Argument(help="What is paid back, at most the account's credit.")],
    reference: Annotated[str, typer.Option("--reference", help="The refund's own id (the processor's): recording "
                                                               "it twice records it once.")],
    at: Annotated[str | None, typer.Option("--at", help="When it was paid back, ISO 8601 with offset "
                                                        "(default: now).")] = None,
    now: NowOpt = None,
) -> None:
    """Pay an account's credit back (an over-payment): recorded in its ledger, once per reference."""
    from campaigns.money.payments import PaymentError, currency_of, refund_credit

    s = migrated_services()
    when = _moment(at, "--at")
    try:
        report = refund_credit(s.engine, account, _amount(amount), reference, clock_now(now), s.settings.lender_zone,
                               refunded_at=when)
    except PaymentError as exc:
        raise CliError(str(exc)) from None
    if report.already_recorded:
        out.print(f"refund {reference} already recorded for account {account}; nothing changed", highlight=False)
        return
    out.print(f"refund {reference} of {_in(amount, currency_of(s.engine, account))} recorded; account {account}: "
              f"{_account_line(s, account)}",
              highlight=False)


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
                            start=start.date() if start else None, zone=s.settings.lender_zone)
    except PlanError as exc:
        raise CliError(str(exc)) from None
    _print_schedule(account, plan.currency, [(n, d, a, Decimal(0)) for n, (d, a) in enumerate(plan.schedule, 1)],
                    f"plan accepted for account {account}: option {option}, {len(plan.schedule)} instalments"
                    + (f" (including a fee of {_in(plan.fee, plan.currency)})" if plan.fee else ""))


@plans_app.command("show")
@friendly_errors
def plans_show_command(account: Annotated[str, typer.Argument(help="Account id.")]) -> None:
    """The account's plan: each instalment, what was paid or waived, and the account's money events; or its open
    offer."""
    from campaigns.money.offers import PlanError, plan_schedule

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
            out.print(f"  option {opt['option']}: {opt['count']} instalments, {_in(opt['total'], plan.currency)}, "
                      f"first on {opt['instalments'][0]['due']}", highlight=False)
        _print_events(s, account)
        return
    title = (f"account {account}: plan {plan.status} ({plan.instalments} instalments, "
             f"{_in(plan.total, plan.currency)} in total, accepted {plan.accepted_at:%Y-%m-%d} via {plan.accepted_via})"
             + (f"; {plan.close_reason}" if plan.close_reason else ""))
    _print_schedule(account, plan.currency, rows, title)
    out.print(f"account {account}: {_account_line(s, account)}", highlight=False)
    _print_events(s, account)


def _print_events(s, account: str) -> None:
    from campaigns.money.payments import money_events

    events = money_events(s.engine, account)
    if events:
        out.print("money: " + "; ".join(_event_words(e) for e in events), highlight=False)


def _event_words(e: dict) -> str:
    day = f"{e['at']:%Y-%m-%d}"
    if e["kind"] == "statement":
        closed = ", closed" if e.get("lender_status") == "closed" else ""
        return (f"{day} statement: balance {_in(e['balance'], e['currency'])}, {_in(e['amount_due'], e['currency'])} "
                f"due {e['due_date']}{closed}")
    words = f"{day} {e['kind']} {_in(e['amount'], e['currency'])}"
    if e.get("payment_id"):
        words += f" ({e['payment_id']}{', reversed' if e.get('reversed') else ''})"
    if e["kind"] in ("reversal", "refund") and e.get("reason"):
        words += f" [{e['reason']}]"
    return words


def _print_schedule(account: str, currency: str, rows, title: str) -> None:
    """Rows: (seq, due, amount, paid) tuples, or instalment rows (with what was waived and added)."""

    table = Table(title=title, title_justify="left")
    for column in ("#", "due", "amount", "paid", "left"):
        table.add_column(column, justify="right" if column != "due" else "left")
    for r in rows:
        seq, due, amount, paid = (r if isinstance(r, tuple) else (r.seq, r.due_date, r.amount, r.paid))
        waived = Decimal(0) if isinstance(r, tuple) else Decimal(r.waived or 0)
        left = amount - paid - waived
        note = "paid" if left <= 0 and not waived else (_in(left, currency) if left > 0 else "waived")
        if waived and left > 0:
            note += f" ({_in(waived, currency)} waived)"
        if not isinstance(r, tuple) and r.added_at is not None:
            note += f", added {r.added_at:%Y-%m-%d}: the balance went up"
        table.add_row(str(seq), due.isoformat(), _in(amount, currency), _in(paid, currency), note)
    out.print(table)


@promises_app.command("record", context_settings=AMOUNT_MAY_LOOK_LIKE_AN_OPTION)
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
                       max_days=s.ladder.promises.max_days, zone=s.settings.lender_zone)
    except PromiseError as exc:
        raise CliError(str(exc)) from None
    out.print(f"promise recorded for account {account}: {amount} by {by:%Y-%m-%d}; no reminders until then",
              highlight=False)


@agency_app.command("place")
@friendly_errors
def agency_place_command(
    as_of: Annotated[datetime | None, typer.Option("--as-of", formats=["%Y-%m-%d"], help="The day (default: today; "
                                                                                          "never a day to come).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Where the placement file goes "
                                                                   "(default: DATA_DIR/agency).")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Place them and write the placement file (without it: only "
                                                    "say how many would be placed).")] = False,
    now: NowOpt = None,
) -> None:
    """Place every account the ladder's `agency` rules select (the daily run does this too). Without --yes it only
    says how many it would place: a placement hands the customers' details to the agency."""
    from campaigns.clock import refuse_a_future_day
    from campaigns.money.agency import place_with_agency

    s = migrated_services()
    if s.ladder.agency is None:
        raise CliError("no `agency` block in the ladder config")
    moment = clock_now(now)
    day = as_of.date() if as_of else _today(s, moment)
    refuse_a_future_day(day, moment, s.settings.lender_zone, "placing accounts with the agency")
    placement = place_with_agency(s.engine, s.ladder.agency, day, moment, out_dir or s.settings.data_dir / "agency",
                                  s.settings.lender_zone, dry_run=not yes)
    if not placement.accounts:
        out.print(f"no account to place with {placement.agency} on {day}", highlight=False)
        return
    if not yes:
        out.print(f"{placement.accounts} account(s) would be placed with {placement.agency} on {day}; nothing was "
                  "written. Run again with --yes to place them and write the placement file (undo: campaigns "
                  f"agency recall --placed-on {_today(s, moment)} --yes)", highlight=False)
        return
    out.print(f"{placement.accounts} account(s) placed with {placement.agency}; placement file: {placement.file}",
              highlight=False)


@agency_app.command("feed")
@friendly_errors
def agency_feed_command(
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Where the activity file goes "
                                                                   "(default: DATA_DIR/agency).")] = None,
    now: NowOpt = None,
) -> None:
    """Write what happened to placed accounts' money since the last activity file (the daily run does this too)."""
    from campaigns.money.agency import report_to_agency

    s = migrated_services()
    if s.ladder.agency is None:
        raise CliError("no `agency` block in the ladder config")
    feed = report_to_agency(s.engine, s.ladder.agency.name, clock_now(now), out_dir or s.settings.data_dir / "agency")
    if not feed.rows:
        out.print(f"nothing new to report to {feed.agency}", highlight=False)
        return
    out.print(f"{feed.rows} event(s) reported to {feed.agency}: {feed.file}", highlight=False)


@agency_app.command("recall")
@friendly_errors
def agency_recall_command(
    accounts: Annotated[list[str] | None, typer.Argument(help="Account id(s).")] = None,
    placed_on: Annotated[datetime | None, typer.Option("--placed-on", formats=["%Y-%m-%d"],
                                                       help="Every account placed on this day (in the lender's "
                                                            "zone) and still placed: a placement undone.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Recall more than one account (without it: only say which "
                                                    "would be).")] = False,
    now: NowOpt = None,
) -> None:
    """Take accounts back from the agency: the ladder may contact them again. One account at once; more (several
    ids, or --placed-on) with --yes."""
    from campaigns.money.agency import AgencyError, placed_on as placed_that_day, recall, recall_many

    s = migrated_services()
    ids = list(accounts or [])
    if placed_on is not None:
        ids += [i for i in placed_that_day(s.engine, placed_on.date(), s.settings.lender_zone) if i not in ids]
    if not ids:
        raise CliError("name the account(s) to recall, or --placed-on DAY" if placed_on is None else
                       f"no account placed on {placed_on:%Y-%m-%d} is still with the agency")
    if len(ids) == 1 and placed_on is None:
        try:
            agency = recall(s.engine, ids[0], clock_now(now), s.settings.lender_zone)
        except AgencyError as exc:
            raise CliError(str(exc)) from None
        out.print(f"account {ids[0]} recalled from {agency}", highlight=False)
        return
    if not yes:
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        out.print(f"{len(ids)} account(s) would be recalled ({shown}); nothing changed. Run again with --yes",
                  highlight=False)
        return
    recalled, refused = recall_many(s.engine, ids, clock_now(now), s.settings.lender_zone)
    for line in refused:
        err.print(f"error: {line}", markup=False, highlight=False)
    out.print(f"{len(recalled)} account(s) recalled, {len(refused)} refused", highlight=False)
    if refused:
        raise typer.Exit(1)


ledger_app = typer.Typer(help="The money ledger: every statement, payment, reversal, refund and fee, and the "
                              "figures derived from them.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("show")
@friendly_errors
def ledger_show_command(account: Annotated[str, typer.Argument(help="Account id.")]) -> None:
    """An account's money events in the order of their moment, and what it owes now."""
    from campaigns.money.payments import money_events

    s = migrated_services()
    events = money_events(s.engine, account)
    if not events:
        raise CliError(f"no ledger for account {account!r}")
    table = Table(title=f"account {account}: ledger", title_justify="left")
    for column in ("#", "moment (UTC)", "kind", "amount", "balance", "due", "due date", "id / reason", "recorded"):
        table.add_column(column, justify="right" if column in ("#", "amount", "balance", "due") else "left")
    for e in events:
        note = ", ".join(x for x in (e.get("payment_id"), "reversed" if e.get("reversed") else None,
                                     e.get("reason") if e["kind"] != "payment" else None) if x)
        table.add_row(str(e["entry"]), f"{e['at']:%Y-%m-%d %H:%M:%S}", e["kind"],
                      str(e.get("amount", "")), str(e.get("balance", "")), str(e.get("amount_due", "")),
                      str(e.get("due_date") or "") + (" closed" if e.get("lender_status") == "closed" else ""),
                      note, f"{e['recorded_at']:%Y-%m-%d} {e['source'] or ''}")
    out.print(table)
    out.print(f"account {account}: {_account_line(s, account)} (derived from {len(events)} event(s))",
              highlight=False)


@ledger_app.command("check")
@friendly_errors
def ledger_check_command(
    fix: Annotated[bool, typer.Option("--fix", help="Write what the ledger says where a cache disagrees.")] = False,
    account: Annotated[list[str] | None, typer.Option("--account", help="Only this account (repeatable).")] = None,
    now: NowOpt = None,
) -> None:
    """Derive every account's figures again from its ledger and compare them with what is stored (balance,
    amount due, credit, status, payoff, next instalment, plans, promises). Exit 1 if any disagree."""
    from campaigns.money.ledger import check

    s = migrated_services()
    report = check(s.engine, s.settings.lender_zone, clock_now(now), fix=fix, account_ids=account or None)
    for account_id, columns in list(report.mismatched.items())[:50]:
        out.print(f"account {account_id}: {', '.join(columns)} disagree with its ledger"
                  + (" (fixed)" if fix else ""), highlight=False)
    more = len(report.mismatched) - 50
    if more > 0:
        out.print(f"... and {more} more", highlight=False)
    out.print(f"{report.accounts} account(s) checked, {len(report.mismatched)} disagree with their ledger"
              + ("; fixed" if fix and report.mismatched else ""), highlight=False)
    if report.mismatched and not fix:
        raise typer.Exit(1)
