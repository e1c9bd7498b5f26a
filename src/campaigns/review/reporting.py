"""Run summaries from the attempt log, as rows for tables, artifacts and ``campaign_runs``."""

from __future__ import annotations

from sqlalchemy import Engine, func, or_, select

from campaigns.db.models import ContactAttempt
from campaigns.contact.outcomes import Tally


def run_tally(engine: Engine, run_id: str) -> Tally:
    """Where every attempt this run logged or delivered stands now, by status and reason.

    An attempt logged by an earlier run and delivered by this one (a backlog after
    an outage) counts here, under its outcome; the earlier run keeps it as queued.
    """
    a = ContactAttempt
    stmt = (
        select(a.status, a.reason, func.count())
        .where(or_(a.run_id == run_id, a.delivered_by_run_id == run_id))
        .group_by(a.status, a.reason)
    )
    tally = Tally()
    with engine.connect() as conn:
        for status, reason, n in conn.execute(stmt):
            tally.add(status, reason, n)
    return tally


def artifact_rows(summary: dict) -> list[dict]:
    """The stage summary as table rows: one per outcome (and reason). Counts only, no personal data."""
    rows = [{"outcome": "cohort (accounts)", "count": summary["cohort"]}]
    for key in ("sent", "holdout", "already_recorded", "queued", "would_send"):
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
