"""The daily campaign: every stage of the ladder for one day, in ladder order. Safe to re-run."""

from __future__ import annotations

from datetime import date, datetime

from prefect import flow
from prefect.artifacts import create_table_artifact

from campaigns.bootstrap import services
from campaigns.clock import resolve_clock
from flows.stages import STAGE_FLOWS


@flow(name="daily_campaign", description="Run every stage of the ladder for one day.")
def daily_campaign(as_of: date | None = None, now: datetime | None = None, dry_run: bool = False) -> list[dict]:
    s = services()
    as_of, now = resolve_clock(as_of, now, s.settings.lender_zone)
    summaries = [STAGE_FLOWS[stage](as_of=as_of, now=now, dry_run=dry_run) for stage in s.ladder.ordered_stages()]
    create_table_artifact(
        key="daily-campaign-summary",
        table=[
            {k: v for k, v in row.items() if k not in ("suppressed_by_reason", "failed_by_reason", "previews")}
            for row in summaries
        ],
        description=f"Daily campaign as of {as_of}: attempts per stage. No personal data.",
    )
    return summaries
