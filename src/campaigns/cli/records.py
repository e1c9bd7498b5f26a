"""Commands that show what happened: ``outbox``, ``runs``, ``worklist`` (and what agents record on it)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.app import CliError, MessageChannel, NowOpt, app, clock_now, friendly_errors, migrated_services, out


@app.command("outbox")
@friendly_errors
def outbox_command(
    limit: Annotated[int, typer.Option(min=1, help="How many messages, newest first.")] = 10,
    account: Annotated[str | None, typer.Option(help="Only this account's messages.")] = None,
    channel: Annotated[MessageChannel | None, typer.Option(help="Only this channel.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Show the whole text of each message.")] = False,
) -> None:
    """Show messages the outbox channel stored instead of sending."""
    from sqlalchemy import func, select

    from campaigns.db.models import ContactAttempt, OutboxMessage

    s = migrated_services()
    o, a = OutboxMessage, ContactAttempt
    stmt = select(o.id, o.accepted_at, o.channel, o.recipient, o.subject, o.body_text,
                  a.account_id, a.stage, a.template).join(a, a.id == o.attempt_id)
    count = select(func.count()).select_from(o).join(a, a.id == o.attempt_id)
    if account:
        stmt, count = stmt.where(a.account_id == account), count.where(a.account_id == account)
    if channel:
        stmt, count = stmt.where(o.channel == channel.value), count.where(o.channel == channel.value)
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
    from campaigns.runs.records import recent_runs

    s = migrated_services()
    from campaigns.attempts.log import Tally
    from campaigns.runs.records import summary_row

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


worklist_app = typer.Typer(help="The agents' worklist: escalated accounts, highest priority first.")
app.add_typer(worklist_app, name="worklist")


@worklist_app.callback(invoke_without_command=True)
@friendly_errors
def worklist_command(
    ctx: typer.Context,
    csv: Annotated[Path | None, typer.Option(help="Write the open worklist to this CSV file (as `export`).")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    now: NowOpt = None,
) -> None:
    """The open worklist, highest priority first: why, what was tried, plans and promises made."""
    if ctx.invoked_subcommand is not None:
        return
    from campaigns.contact.render import format_money
    from campaigns.customers.worklist import export_worklist, open_worklist
    from campaigns.risk.model import latest_ready

    s = migrated_services()
    frame = open_worklist(s.engine, latest_ready(s.engine), s.review, clock_now(now))
    if csv:
        out.print(f"{export_worklist(frame, csv)} open worklist item(s) written to {csv}", highlight=False)
        return
    table = Table(title=f"{len(frame)} open worklist item(s), highest priority first", title_justify="left")
    scored = frame["pay_chance"].notna().any()
    for column in ("priority", "account", "days past due", "amount due", "reason",
                   *(("pays on its own (why)",) if scored else ()), "tried"):
        table.add_column(column)
    for r in frame.head(limit).itertuples(index=False):
        chance = (f"{r.pay_chance:.0%} ({r.pay_reasons})",) if scored else ()
        table.add_row(f"{r.priority:.0f}", r.account_id, str(r.days_past_due),
                      format_money(r.amount_due, r.currency, "en-US"), _reason(r), *chance,
                      r.tried + (f"; plans: {r.plans}" if r.plans else "") + (f"; promises: {r.promises}" if r.promises else ""))
    out.print(table)


def _reason(item) -> str:
    """Why the item is there; a reply's kind only (its words are in the export, not on a screen or in a log)."""
    if item.reason == "replied":
        return f"replied ({item.asked.split(':')[0]}; the text is in the export)"
    if item.reason == "asked_for_call":
        return f"asked_for_call ({item.asked})"
    return item.reason


@worklist_app.command("export")
@friendly_errors
def worklist_export_command(
    out_path: Annotated[Path, typer.Option("--out", help="CSV or Parquet file to write (0600).")],
    now: NowOpt = None,
) -> None:
    """Write the open worklist for agents, prioritised. CSV cells that would run as spreadsheet formulas are
    neutralised (a leading ')."""
    from campaigns.customers.worklist import export_worklist, open_worklist
    from campaigns.risk.model import latest_ready

    s = migrated_services()
    n = export_worklist(open_worklist(s.engine, latest_ready(s.engine), s.review, clock_now(now)), out_path)
    out.print(f"{n} open worklist item(s) written to {out_path}", highlight=False)


@worklist_app.command("record")
@friendly_errors
def worklist_record_command(
    account: Annotated[str, typer.Argument(help="Account id.")],
    outcome: Annotated[str, typer.Argument(help="reached, no_answer, promise, dispute, wrong_number, refused, paid")],
    amount: Annotated[str | None, typer.Option(help="promise: the amount promised.")] = None,
    by: Annotated[datetime | None, typer.Option("--by", formats=["%Y-%m-%d"], help="promise: by this day.")] = None,
    now: NowOpt = None,
) -> None:
    """Record what a call gave: it counts toward the call caps; a promise or a dispute is opened."""
    from decimal import Decimal, InvalidOperation

    from campaigns.customers.worklist import record_outcome

    s = migrated_services()
    moment = clock_now(now)
    value = None
    if amount is not None:
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise CliError(f"--amount {amount!r} is not an amount") from None
    followed = record_outcome(s.engine, s.policy, account, outcome, moment,
                              moment.astimezone(s.settings.lender_zone).date(), amount=value,
                              by=by.date() if by else None, max_promise_days=s.ladder.promises.max_days,
                              zone=s.settings.lender_zone)
    out.print(f"account {account}: {outcome} recorded" + (f"; {'; '.join(followed)}" if followed else ""),
              highlight=False)
