"""Run summaries from the attempt log, as rows for tables, artifacts and ``campaign_runs``."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, case, func, literal, or_, select

from campaigns.db.models import ContactAttempt
from campaigns.attempts.log import Tally


HANDED_OVER = "handled_by_other_run"


def run_tally(engine: Engine, run_id: str) -> Tally:
    """Where every attempt this run logged or delivered stands now, by status and reason.

    A run is credited with what it did itself: an attempt counts under its
    outcome for the run that delivered it (or, not yet delivered, for the run that
    logged it). An attempt this run logged but another run delivered (a backlog
    after an outage, or two overlapping runs of the same day) counts here as
    ``handled_by_other_run``, so two overlapping runs never both report the same
    sends.
    """
    a = ContactAttempt
    handed_over = and_(a.run_id == run_id, a.delivered_by_run_id.is_not(None), a.delivered_by_run_id != run_id)
    status = case((handed_over, literal(HANDED_OVER)), else_=a.status)
    reason = case((handed_over, literal(None)), else_=a.reason)
    stmt = (
        select(status, reason, func.count())
        .where(or_(a.run_id == run_id, a.delivered_by_run_id == run_id))
        .group_by(status, reason)
    )
    tally = Tally()
    with engine.connect() as conn:
        for status_, reason_, n in conn.execute(stmt):
            tally.add(status_, reason_, n)
    return tally


def artifact_rows(summary: dict) -> list[dict]:
    """The stage summary as table rows: one per outcome (and reason). Counts only, no personal data."""
    rows = [{"outcome": "cohort (accounts)", "count": summary["cohort"]}]
    for key in ("sent", "holdout", "already_recorded", HANDED_OVER, "queued", "would_send"):
        if summary.get(key):
            rows.append({"outcome": key, "count": summary[key]})
    for reason, n in summary["suppressed_by_reason"].items():
        rows.append({"outcome": f"suppressed: {reason}", "count": n})
    for reason, n in summary["deferred_by_reason"].items():
        rows.append({"outcome": f"deferred: {reason}", "count": n})
    for reason, n in summary["failed_by_reason"].items():
        rows.append({"outcome": f"failed: {reason}", "count": n})
    for reason, n in summary["unknown_by_reason"].items():
        rows.append({"outcome": f"unknown: {reason}", "count": n})
    return rows


def decision_time(now: datetime, zone: ZoneInfo) -> str:
    """A run's 'now' as ops read it: the lender's local time, and UTC (``2026-11-23 09:00 EST (14:00 UTC)``)."""
    return f"{now.astimezone(zone):%Y-%m-%d %H:%M %Z} ({now.astimezone(timezone.utc):%H:%M} UTC)"


DAILY_COLUMNS = {
    "stage": "Stage", "cohort": "Accounts", "sent": "Sent", "deferred": "Deferred (wait for window)",
    "suppressed": "Suppressed", "failed": "Failed", "unknown": "Unknown", "holdout": "Held out",
    "queued": "Queued (not yet sent)", "already_recorded": "Already recorded", HANDED_OVER: "Sent by another run",
    "would_send": "Would send (dry run)",
}
# Shown whatever their counts; the others only on a day when some stage has one.
ALWAYS_SHOWN = {"stage", "cohort", "sent", "deferred", "suppressed", "failed"}


def daily_rows(summaries: list[dict]) -> list[dict]:
    """One readable row per stage for the daily summary: counts under plain headings, and the reasons
    as one line of text (``suppressed: opted_out 4; deferred: outside_window 120``), not nested JSON.
    A count that is zero for every stage that day (held out, unknown, ...) is left out, so the table
    fits a screen."""
    shown = [key for key in DAILY_COLUMNS
             if key in ALWAYS_SHOWN or any(summary.get(key) for summary in summaries)]
    rows = []
    for summary in summaries:
        row = {DAILY_COLUMNS[key]: summary.get(key, 0) for key in shown}
        reasons = []
        for outcome in ("suppressed", "deferred", "failed", "unknown"):
            by_reason = summary.get(f"{outcome}_by_reason") or {}
            if by_reason:
                reasons.append(f"{outcome}: " + ", ".join(f"{r} {n}" for r, n in sorted(by_reason.items())))
        row["Reasons"] = "; ".join(reasons) or "none"  # a lone "-" is a list bullet in the UI's markdown
        row["Run"] = summary.get("run_id", "")
        rows.append(row)
    return rows
