"""Commands that show what happened: ``outbox``, ``runs``, ``worklist``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.app import MessageChannel, app, friendly_errors, migrated_services, out


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
    from campaigns.review.runs import recent_runs

    s = migrated_services()
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
    """The agents' worklist: escalated accounts, why, and what was tried (day, stage, channel, outcome)."""
    import pandas as pd
    from sqlalchemy import select

    from campaigns.channels.agent import describe_tried
    from campaigns.contact.render import format_money
    from campaigns.db.models import AgentWorklistItem
    from campaigns.money.currency import in_currency

    s = migrated_services()
    w = AgentWorklistItem
    stmt = select(w.id, w.account_id, w.reason, w.days_past_due, w.amount_due, w.currency, w.tried,
                  w.status, w.created_at).where(w.status == "open").order_by(w.days_past_due.desc(), w.id)
    with s.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).mappings().all(),
                             columns=["id", "account_id", "reason", "days_past_due", "amount_due", "currency",
                                      "tried", "status", "created_at"])
    frame["tried"] = frame["tried"].map(describe_tried)
    if csv:
        # Amounts in the currency's own decimals (25.00, ¥2500, KD 1.250), not the database's four.
        frame.assign(amount_due=[in_currency(a, c) for a, c in zip(frame["amount_due"], frame["currency"])]) \
            .to_csv(csv, index=False)
        out.print(f"{len(frame)} open worklist item(s) written to {csv}", highlight=False)
        return
    table = Table(title=f"{len(frame)} open worklist item(s)", title_justify="left")
    for column in ("account", "days past due", "amount due", "reason", "tried"):
        table.add_column(column)
    for r in frame.head(limit).itertuples(index=False):
        table.add_row(r.account_id, str(r.days_past_due), format_money(r.amount_due, r.currency, "en-US"),
                      r.reason, r.tried)
    out.print(table)
