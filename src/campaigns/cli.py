"""The ``campaigns`` command.

This is the entry point, the one module of the package allowed to reach up into
``flows`` (lazily, inside commands): everything else in ``campaigns`` stays free
of Prefect. Errors are one line a person can act on, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timezone
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

# Prefect's telemetry cannot reach the network here and only adds noise.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

app = typer.Typer(help="Debt-collection contact campaigns: kind, lawful, and logged.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
hold_app = typer.Typer(help="Holds that stop all collection contact with a customer.", no_args_is_help=True)
app.add_typer(hold_app, name="hold")
dispute_app = typer.Typer(help="Disputes: an open one stops collection on the account.", no_args_is_help=True)
app.add_typer(dispute_app, name="dispute")
sms_app = typer.Typer(help="Inbound SMS: STOP and friends opt the sender out of SMS at once.", no_args_is_help=True)
app.add_typer(sms_app, name="sms")
call_app = typer.Typer(help="Agents' calls: check before calling, log every call.", no_args_is_help=True)
app.add_typer(call_app, name="call")
events_app = typer.Typer(help="Provider delivery events (delivered, bounce, unsubscribe, ...).", no_args_is_help=True)
app.add_typer(events_app, name="events")
templates_app = typer.Typer(help="Message templates.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
# Piped output (CI logs, `| less`) gets room for the tables instead of rich's 80 columns.
out = Console(width=None if sys.stdout.isatty() else 132, soft_wrap=True)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200, soft_wrap=True)


class CliError(Exception):
    pass


class StageName(str, Enum):
    pre_due = "pre_due"
    soft_nudge = "soft_nudge"
    plan_offer = "plan_offer"
    escalation = "escalation"


def _now_option(value: str | None) -> datetime | None:
    if value is None:
        return None
    from campaigns.clock import parse_now

    try:
        return parse_now(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


NowOpt = Annotated[
    str | None,
    typer.Option("--now", help="Decide as if it were this moment (ISO 8601 with offset, e.g. 2026-11-22T09:00:00-05:00). Default: the real clock."),
]
AsOfOpt = Annotated[
    datetime | None,
    typer.Option("--as-of", formats=["%Y-%m-%d"], help="The campaign day (YYYY-MM-DD). Default: today in the lender's time zone."),
]


def friendly_errors(fn: Callable) -> Callable:
    """Turn the errors a user can fix into one line on stderr and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        from pydantic import ValidationError
        from sqlalchemy.exc import OperationalError, ProgrammingError

        from campaigns.customers.calls import CallError
        from campaigns.customers.preferences import PreferenceError
        from campaigns.contact.ladder import LadderConfigError
        from campaigns.policy import PolicyConfigError
        from campaigns.portfolio.importer import PortfolioFileError
        from campaigns.settings import ConfigurationError

        try:
            return fn(*args, **kwargs)
        except (CliError, LadderConfigError, PolicyConfigError, PortfolioFileError, PreferenceError,
                CallError, ConfigurationError) as exc:
            err.print(f"error: {exc}", markup=False, highlight=False)
        except (OperationalError, ProgrammingError) as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            hint = " (run `campaigns db upgrade` first?)" if "no such table" in first or "does not exist" in first else ""
            err.print(f"error: database: {first}{hint}", markup=False, highlight=False)
        except ValidationError as exc:  # settings from the environment
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or exc.title
            err.print(f"error: setting {where}: {first['msg']}", markup=False, highlight=False)
        raise typer.Exit(1)

    return wrapper


def _services():
    from campaigns.bootstrap import services

    return services()


def _ensure_schema(engine) -> None:
    from campaigns.db.engine import schema_revision

    current, head = schema_revision(engine)
    if current != head:
        raise CliError(f"database schema is at {current or 'nothing'}, code expects {head}: run `campaigns db upgrade`")


def _migrated_services():
    """The services, once the database schema is known to be current (else a one-line error)."""
    s = _services()
    _ensure_schema(s.engine)
    return s


@db_app.command("upgrade")
@friendly_errors
def db_upgrade() -> None:
    """Create the database or bring it to the latest schema (Alembic)."""
    from campaigns.db.engine import schema_revision, upgrade_database

    s = _services()
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

    s = _migrated_services()
    report = import_portfolio(s.engine, path, now=_now_option(now))
    for error in report.errors[:200]:
        err.print(str(error), markup=False, highlight=False)
    if len(report.errors) > 200:
        err.print(f"... and {len(report.errors) - 200} more errors", markup=False)
    out.print(
        f"{report.file}: {report.rows_read} rows read, {report.accounts_loaded} accounts and "
        f"{report.customers_loaded} customers loaded, {report.disputes_opened} disputes opened, "
        f"{report.rows_rejected} rows rejected",
        highlight=False,
    )
    if not report.ok:
        raise typer.Exit(1)


def _summary_table(summaries: list[dict], title: str) -> Table:
    """Per stage: cohort (accounts) and attempts by outcome; reasons on the lines below."""
    table = Table(title=title, title_justify="left")
    for column in ("stage", "cohort", "sent", "deferred", "suppressed", "holdout", "failed", "already logged"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in summaries:
        sent = f"{s['would_send']} (dry run)" if s.get("dry_run") else str(s["sent"])
        table.add_row(s["stage"], str(s["cohort"]), sent, str(s.get("deferred", 0)), str(s["suppressed"]),
                      str(s["holdout"]), str(s["failed"]), str(s["already_recorded"]), style="bold")
        for reason, n in s.get("deferred_by_reason", {}).items():
            table.add_row(f"  {reason}", "", "", str(n), "", "", "", "", style="dim")
        for reason, n in s["suppressed_by_reason"].items():
            table.add_row(f"  {reason}", "", "", "", str(n), "", "", "", style="dim")
        for reason, n in s["failed_by_reason"].items():
            table.add_row(f"  {reason}", "", "", "", "", "", str(n), "", style="dim")
        if s["unknown"]:
            table.add_row("  unknown outcome", "", "", "", "", "", str(s["unknown"]), "", style="dim")
        if s["queued"]:
            table.add_row("  queued, not yet delivered", "", str(s["queued"]), "", "", "", "", "", style="dim")
    return table


def _print_previews(summaries: list[dict]) -> None:
    for s in summaries:
        for p in s.get("previews", []):
            out.rule(f"{s['stage']} · {p['channel']} · {p['template']} · account {p['account_id']}")
            if p.get("subject"):
                out.print(f"Subject: {p['subject']}", markup=False, highlight=False)
            out.print(p["text"], markup=False, highlight=False)


@app.command("run")
@friendly_errors
def run_command(
    stage: Annotated[StageName, typer.Argument(help="The stage to run.")],
    as_of: AsOfOpt = None,
    now: NowOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and render, show a preview, log and send nothing.")] = False,
) -> None:
    """Run one stage of the ladder for a day through Prefect."""
    _migrated_services()  # a one-line error if the schema is behind
    from campaigns.db.models import Stage
    from flows.stages import STAGE_FLOWS

    summary = STAGE_FLOWS[Stage(stage.value)](as_of=as_of.date() if as_of else None, now=_now_option(now), dry_run=dry_run)
    out.print(_summary_table([summary], f"{stage.value} as of {summary['as_of']}"))
    if dry_run:
        _print_previews([summary])


@app.command("daily")
@friendly_errors
def daily_command(
    as_of: AsOfOpt = None,
    now: NowOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and render, log and send nothing.")] = False,
) -> None:
    """Run the whole ladder for one day (the daily_campaign flow). Safe to re-run: nothing is sent twice."""
    _migrated_services()  # a one-line error if the schema is behind
    from flows.daily import daily_campaign

    summaries = daily_campaign(as_of=as_of.date() if as_of else None, now=_now_option(now), dry_run=dry_run)
    out.print(_summary_table(summaries, f"daily campaign as of {summaries[0]['as_of'] if summaries else as_of}"))
    if dry_run:
        _print_previews(summaries)


@app.command("dispatch")
@friendly_errors
def dispatch_command(now: NowOpt = None) -> None:
    """Release deferred messages whose customers' contact window has opened (the 15-minute dispatch flow)."""
    _migrated_services()  # a one-line error if the schema is behind
    from flows.dispatch import dispatch

    summary = dispatch(now=_now_option(now))
    out.print(f"released {summary['sent']}, deferred again {summary['deferred']}, stopped {summary['suppressed']}"
              + (f" ({', '.join(f'{r} {n}' for r, n in summary['suppressed_by_reason'].items())})"
                 if summary["suppressed"] else ""), highlight=False)


@app.command("recover")
@friendly_errors
def recover_command(
    lease_seconds: Annotated[int | None, typer.Option(
        min=0, help="Treat claims older than this as a dead deliverer's (default CAMPAIGNS_CLAIM_LEASE_SECONDS). "
                    "0 once you know no run is in progress.")] = None,
    now: NowOpt = None,
) -> None:
    """Settle what a crashed run left half-sent (the dispatch flow does this every 15 minutes)."""
    from datetime import timedelta

    from campaigns.delivery.recovery import recover

    s = _migrated_services()
    lease = s.settings.claim_lease_seconds if lease_seconds is None else lease_seconds
    hours = s.settings.resend_unconfirmed_after_hours
    tally = recover(s.engine, s.gateways, now=_clock(now), wall_now=datetime.now(timezone.utc),
                    lease=timedelta(seconds=lease), unconfirmed_after=timedelta(hours=hours) if hours else None)
    counts = tally.as_dict()
    out.print("recovered: " + (", ".join(f"{k} {v}" for k, v in counts.items()) if counts else "nothing to do")
              + ("; `campaigns dispatch` sends what was queued again" if tally.total("deferred") else ""),
              highlight=False)


@app.command("demo")
@friendly_errors
def demo_command(
    accounts: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many synthetic accounts.")] = 3000,
    as_of: AsOfOpt = None,
    now: NowOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic portfolio.")] = 20261122,
) -> None:
    """The main job on the embedded default: database, synthetic portfolio, daily campaign, summary.

    Without --now it runs as the scheduled daily run would: at 09:00 in the lender's time zone.
    """
    from campaigns.clock import resolve_clock
    from campaigns.db.engine import upgrade_database
    from campaigns.portfolio import import_portfolio
    from campaigns.portfolio.demo import DemoSpec, generate_portfolio, record_demo_payments, write_demo_file

    s = _services()
    upgrade_database(s.engine)
    day, moment = resolve_clock(as_of.date() if as_of else None, _now_option(now), s.settings.lender_zone)
    if now is None:
        # Simulate the scheduled daily run: 09:00 in the lender's zone (prefect.yaml), not whatever time it is.
        moment = datetime.combine(day, time(9, 0), tzinfo=s.settings.lender_zone).astimezone(timezone.utc)
    frame = generate_portfolio(day, DemoSpec(accounts=accounts, seed=seed))
    path = write_demo_file(frame, s.settings.data_dir / "demo" / "portfolio.csv")
    report = import_portfolio(s.engine, path, now=moment)
    if not report.ok:
        raise CliError(f"the demo portfolio did not import cleanly: {report.errors[0]}")
    record_demo_payments(s.engine, frame, moment)
    out.print(f"demo portfolio: {report.accounts_loaded} accounts, {report.customers_loaded} customers ({path})")

    from flows.daily import daily_campaign

    summaries = daily_campaign(as_of=day, now=moment)
    out.print()
    out.print(_summary_table(summaries, f"daily campaign as of {day}, "
                                        f"{moment.astimezone(s.settings.lender_zone):%H:%M} {s.settings.lender_timezone} "
                                        "(counts of contact attempts)"))
    if now is None:
        _simulate_dispatch(s, day)
    _print_where(s)


def _simulate_dispatch(s, day: date) -> None:
    """The rest of the demo day: the dispatcher releases what waited for the customers' morning."""
    from flows.dispatch import dispatch

    zone = s.settings.lender_zone
    # 13:00 New York is 08:00 in Hawaii; 19:00 is 08:00 the next morning in Shanghai.
    for hour in (13, 19):
        moment = datetime.combine(day, time(hour, 0), tzinfo=zone).astimezone(timezone.utc)
        result = dispatch(now=moment)
        out.print(f"dispatch at {hour:02d}:00 {s.settings.lender_timezone}: released {result['sent']}, "
                  f"deferred again {result['deferred']}, stopped {result['suppressed']}", highlight=False)


def _print_where(s) -> None:
    from sqlalchemy import func, select

    from campaigns.db.models import AgentWorklistItem, ContactAttempt, OutboxMessage

    with s.engine.connect() as conn:
        outbox = conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
        worklist = conn.execute(select(func.count()).select_from(AgentWorklistItem)).scalar_one()
    with s.engine.connect() as conn:
        deferred = conn.execute(select(func.count()).where(ContactAttempt.status == "deferred")).scalar_one()
    out.print(f"messages in the outbox (stored, not sent): {outbox}   → campaigns outbox", highlight=False)
    if deferred:
        out.print(f"messages waiting for their customer's contact window: {deferred}   → campaigns dispatch "
                  "(the dispatch deployment runs it every 15 minutes)", highlight=False)
    out.print(f"accounts on the agents' worklist: {worklist}   → campaigns worklist", highlight=False)
    out.print(f"every attempt, sent or not, is in contact_attempts: {s.engine.url.render_as_string()}", highlight=False)
    out.print("runs and their counts → campaigns runs", highlight=False)


@app.command("outbox")
@friendly_errors
def outbox_command(
    limit: Annotated[int, typer.Option(min=1, help="How many messages, newest first.")] = 10,
    account: Annotated[str | None, typer.Option(help="Only this account's messages.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only this channel (email, sms).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Show the whole text of each message.")] = False,
) -> None:
    """Show messages the outbox channel stored instead of sending."""
    from sqlalchemy import func, select

    from campaigns.db.models import ContactAttempt, OutboxMessage

    s = _migrated_services()
    o, a = OutboxMessage, ContactAttempt
    stmt = select(o.id, o.accepted_at, o.channel, o.recipient, o.subject, o.body_text,
                  a.account_id, a.stage, a.template).join(a, a.id == o.attempt_id)
    count = select(func.count()).select_from(o).join(a, a.id == o.attempt_id)
    if account:
        stmt, count = stmt.where(a.account_id == account), count.where(a.account_id == account)
    if channel:
        stmt, count = stmt.where(o.channel == channel), count.where(o.channel == channel)
    with s.engine.connect() as conn:
        total = conn.execute(count).scalar_one()
        rows = conn.execute(stmt.order_by(o.id.desc()).limit(limit)).all()
    out.print(f"{total} message(s) in the outbox; showing {len(rows)}", highlight=False)
    for msg in rows:
        out.rule(f"#{msg.id} · {msg.accepted_at:%Y-%m-%d %H:%M}Z · {msg.stage} · {msg.channel} · account {msg.account_id} · {msg.template}")
        out.print(f"To: {msg.recipient}", markup=False, highlight=False)
        if msg.subject:
            out.print(f"Subject: {msg.subject}", markup=False, highlight=False)
        text = msg.body_text if full or len(msg.body_text) < 400 else msg.body_text[:400] + " …"
        out.print(text, markup=False, highlight=False)


@app.command("runs")
@friendly_errors
def runs_command(limit: Annotated[int, typer.Option(min=1)] = 20) -> None:
    """Recent stage runs and their counts."""
    from campaigns.review.runs import recent_runs

    s = _migrated_services()
    from campaigns.contact.outcomes import Tally
    from campaigns.review.runs import summary_row

    table = Table(title="recent runs (newest first)", title_justify="left")
    for column in ("started UTC", "stage", "as of", "status", "cohort", "sent", "supp.", "hold", "failed", "run"):
        table.add_column(column, justify="right" if column in ("cohort", "sent", "supp.", "hold", "failed") else "left")
    for r in recent_runs(s.engine, limit):
        row = summary_row(r["stage"], r["cohort_size"], Tally().merge(r["counts"]))
        sent = f"{row['would_send']}*" if r["dry_run"] else str(row["sent"])
        table.add_row(f"{r['started_at']:%m-%d %H:%M}", r["stage"], str(r["as_of"]), r["status"],
                      str(r["cohort_size"]), sent, str(row["suppressed"]), str(row["holdout"]),
                      str(row["failed"]), r["id"][:8])
    out.print(table)
    out.print("* dry run: would have sent, nothing was logged or sent", highlight=False)


@app.command("worklist")
@friendly_errors
def worklist_command(
    csv: Annotated[Path | None, typer.Option(help="Write the open worklist to this CSV file.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """The agents' worklist: escalated accounts, why, and what was tried."""
    import json

    import pandas as pd
    from sqlalchemy import select

    from campaigns.db.models import AgentWorklistItem
    from campaigns.contact.render import format_money

    s = _migrated_services()
    w = AgentWorklistItem
    stmt = select(w.id, w.account_id, w.reason, w.days_past_due, w.amount_due, w.currency, w.tried,
                  w.status, w.created_at).where(w.status == "open").order_by(w.days_past_due.desc(), w.id)
    with s.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).mappings().all(),
                             columns=["id", "account_id", "reason", "days_past_due", "amount_due", "currency",
                                      "tried", "status", "created_at"])
    frame["tried"] = frame["tried"].map(lambda t: json.dumps(t, sort_keys=True))
    if csv:
        frame.to_csv(csv, index=False)
        out.print(f"{len(frame)} open worklist item(s) written to {csv}", highlight=False)
        return
    table = Table(title=f"{len(frame)} open worklist item(s)", title_justify="left")
    for column in ("account", "days past due", "amount due", "reason", "tried"):
        table.add_column(column)
    for r in frame.head(limit).itertuples(index=False):
        table.add_row(r.account_id, str(r.days_past_due), format_money(r.amount_due, r.currency, "en-US"),
                      r.reason, r.tried)
    out.print(table)


def _clock(now: str | None) -> datetime:
    from campaigns.clock import resolve_clock

    return resolve_clock(None, _now_option(now), _services().settings.lender_zone)[1]


@app.command("optout")
@friendly_errors
def optout_command(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    channel: Annotated[str, typer.Option(help="email, sms, or all.")] = "all",
    now: NowOpt = None,
) -> None:
    """Opt a customer out of a channel, at once: nothing queued or deferred on it goes out after this."""
    from campaigns.customers.preferences import OPT_OUT_CHANNELS, opt_out

    s = _migrated_services()
    channels = list(OPT_OUT_CHANNELS) if channel == "all" else [channel]
    opt_out(s.engine, customer, channels, _clock(now), source="cli")
    out.print(f"customer {customer} opted out of {', '.join(channels)}", highlight=False)


@sms_app.command("inbound")
@friendly_errors
def sms_inbound_command(
    sender: Annotated[str, typer.Option("--from", help="The sender's number, +<country code> form.")],
    body: Annotated[str, typer.Option(help="The message text.")],
    now: NowOpt = None,
) -> None:
    """Apply one inbound SMS (e.g. from a provider webhook): an opt-out request stops SMS at once."""
    from campaigns.customers.preferences import receive_sms

    s = _migrated_services()
    result = receive_sms(s.engine, sender, body, _clock(now))
    if result.keyword is None:
        out.print("not an opt-out request; nothing changed", highlight=False)
    else:
        out.print(f"opt-out ({result.keyword}): {result.matched_customers} customer(s) opted out of SMS",
                  highlight=False)


@sms_app.command("ingest")
@friendly_errors
def sms_ingest_command(
    path: Annotated[Path, typer.Argument(help="CSV with columns from, body, received_at (ISO 8601 with offset).")],
) -> None:
    """Apply a saved batch of inbound SMS (a back-fill): every opt-out request in it takes effect."""
    import csv

    from campaigns.clock import parse_now
    from campaigns.customers.preferences import PreferenceError, receive_sms

    s = _migrated_services()
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    opted = requests = bad = 0
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"from", "body", "received_at"} - set(reader.fieldnames or [])
        if missing:
            raise CliError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row_number, row in enumerate(reader, start=2):
            try:
                result = receive_sms(s.engine, row["from"], row["body"], parse_now(row["received_at"]))
            except (PreferenceError, ValueError) as exc:
                bad += 1
                field = "from" if isinstance(exc, PreferenceError) else "received_at"
                err.print(f"{path}: row {row_number}, field {field}: {exc}", markup=False, highlight=False)
                continue
            requests += result.keyword is not None
            opted += result.matched_customers
    out.print(f"{path}: {requests} opt-out request(s), {opted} customer(s) opted out of SMS, {bad} bad row(s)",
              highlight=False)
    if bad:
        raise typer.Exit(1)


@hold_app.command("set")
@friendly_errors
def hold_set_command(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    kind: Annotated[str, typer.Option(help="cease_and_desist, attorney_represented, bankruptcy, deceased, "
                                           "mental_capacity, breathing_space.")],
    until: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="End date (breathing space).")] = None,
    now: NowOpt = None,
) -> None:
    """Stop all collection contact with a customer, at once (messages already queued are stopped too)."""
    from datetime import timezone

    from campaigns.customers.preferences import set_hold

    s = _migrated_services()
    ends = until.replace(tzinfo=timezone.utc) if until else None
    created = set_hold(s.engine, customer, kind, _clock(now), ends_at=ends)
    out.print(f"hold {kind} {'set' if created else 'was already open'} for customer {customer}", highlight=False)


@hold_app.command("clear")
@friendly_errors
def hold_clear_command(
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    kind: Annotated[str, typer.Option(help="The hold to clear.")],
    now: NowOpt = None,
) -> None:
    """Clear a hold: collection contact may resume on the next run."""
    from campaigns.customers.preferences import clear_hold

    s = _migrated_services()
    n = clear_hold(s.engine, customer, kind, _clock(now))
    out.print(f"{n} open {kind} hold(s) cleared for customer {customer}", highlight=False)


@dispute_app.command("open")
@friendly_errors
def dispute_open_command(account: Annotated[str, typer.Argument(help="Account id.")], now: NowOpt = None) -> None:
    """Open a dispute: collection on the account stops until it is resolved."""
    from campaigns.customers.preferences import open_dispute

    s = _migrated_services()
    created = open_dispute(s.engine, account, _clock(now))
    out.print(f"dispute {'opened' if created else 'was already open'} on account {account}", highlight=False)


@dispute_app.command("resolve")
@friendly_errors
def dispute_resolve_command(account: Annotated[str, typer.Argument(help="Account id.")], now: NowOpt = None) -> None:
    """Resolve the open dispute on an account: collection may resume."""
    from campaigns.customers.preferences import resolve_dispute

    s = _migrated_services()
    n = resolve_dispute(s.engine, account, _clock(now))
    out.print(f"{n} open dispute(s) resolved on account {account}", highlight=False)


@call_app.command("check")
@friendly_errors
def call_check_command(account: Annotated[str, typer.Argument(help="Account id.")], now: NowOpt = None) -> None:
    """May I call this customer now? (local window, Sundays, holidays, Reg F 7-in-7, quiet after a conversation)"""
    from campaigns.customers.calls import check_call

    s = _migrated_services()
    decision = check_call(s.engine, s.policy, account, _clock(now))
    if decision.allowed:
        out.print(f"yes: you may call account {account} now ({', '.join(decision.trace.get('local_times', []))})",
                  highlight=False)
        return
    when = f"; next allowed {decision.next_allowed:%Y-%m-%d %H:%M} UTC" if decision.next_allowed else ""
    out.print(f"no: {decision.reason}{when}", highlight=False)
    raise typer.Exit(3)


@call_app.command("log")
@friendly_errors
def call_log_command(
    account: Annotated[str, typer.Argument(help="Account id.")],
    outcome: Annotated[str, typer.Option(help="connected, no_answer, voicemail, wrong_number.")],
    now: NowOpt = None,
) -> None:
    """Record a call that was made; it counts against the call caps from now on."""
    from campaigns.customers.calls import log_call

    s = _migrated_services()
    decision = log_call(s.engine, s.policy, account, outcome, _clock(now))
    out.print(f"call logged for account {account}: {outcome}", highlight=False)
    if not decision.allowed:
        err.print(f"warning: this call was not allowed ({decision.reason}); it is logged as such",
                  markup=False, highlight=False)


@events_app.command("ingest")
@friendly_errors
def events_ingest_command(
    path: Annotated[Path, typer.Argument(help="A saved batch of SendGrid events: a JSON array, or JSON lines.")],
    now: NowOpt = None,
) -> None:
    """Apply saved provider events (a back-fill), exactly as the webhook would: each event once."""
    import json

    from campaigns.delivery.provider_events import apply_sendgrid_events

    s = _migrated_services()
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8").strip()
    try:
        events = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]
    except ValueError as exc:
        raise CliError(f"{path}: not a JSON array nor JSON lines: {exc}") from None
    report = apply_sendgrid_events(s.engine, events, _clock(now))
    for problem in report.problems[:50]:
        err.print(f"{path}: {problem}", markup=False, highlight=False)
    out.print(f"{path}: {len(events)} event(s): " + ", ".join(f"{k} {v}" for k, v in report.as_dict().items()),
              highlight=False)
    if report.problems:
        raise typer.Exit(1)


@app.command("serve-webhooks")
@friendly_errors
def serve_webhooks_command(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8085,
) -> None:
    """Run the provider webhook receiver (ASGI, uvicorn): SendGrid events, Twilio status reports and replies."""
    import uvicorn

    from campaigns.delivery.webhooks import create_app

    s = _migrated_services()
    if not (s.settings.sendgrid_webhook_public_key or s.settings.twilio_auth_token):
        raise CliError("nothing to receive: set CAMPAIGNS_SENDGRID_WEBHOOK_PUBLIC_KEY and/or CAMPAIGNS_TWILIO_AUTH_TOKEN")
    app_ = create_app(s.engine, s.settings.sendgrid_webhook_public_key, s.settings.webhook_tolerance_seconds,
                      twilio_auth_token=s.settings.twilio_auth_token, twilio_url_base=s.settings.twilio_webhook_url_base)
    uvicorn.run(app_, host=host, port=port, log_level="info")


@templates_app.command("check")
@friendly_errors
def templates_check_command() -> None:
    """Check every template: blocks, amount, due date, pay link, opt-out; flag any that mention suing."""
    from campaigns.policy.content import check_templates

    s = _services()
    names, problems, litigious = check_templates(s.settings.templates_dir)
    for problem in problems:
        err.print(str(problem), markup=False, highlight=False)
    for template in sorted(litigious):  # template paths, e.g. soft_nudge/email.en-US.j2
        out.print(f"{template}: mentions legal action: never used for time-barred accounts", highlight=False)
    out.print(f"{len(names)} template(s) checked, {len(problems)} problem(s)", highlight=False)
    if problems:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
