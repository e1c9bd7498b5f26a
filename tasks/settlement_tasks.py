"""The day's settlement as a task: offers expired, plans and promises broken, agency placements and their feed."""

from __future__ import annotations

from datetime import date, datetime

from prefect import get_run_logger, task

from campaigns.bootstrap import services
from campaigns.money.settlement import settle_day as settle
from tasks.retries import DB_RETRIES


@task(name="settle-day", tags=["campaigns", "db"], **DB_RETRIES)
def settle_day(as_of: date, now: datetime, dry_run: bool) -> dict:
    """Expire offers, break overdue plans and promises, place aged accounts with the agency (idempotent)."""
    s = services()
    done = settle(s.engine, s.ladder, as_of, now, s.settings.data_dir / "agency", dry_run=dry_run,
                  zone=s.settings.lender_zone)
    if any(v for k, v in done.as_dict().items() if k not in ("placement_file", "activity_file")):
        get_run_logger().info("settled %s: %s", as_of, {k: v for k, v in done.as_dict().items() if v})
    return done.as_dict()
