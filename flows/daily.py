"""The daily campaign: every stage of the ladder for one day, in ladder order. Safe to re-run."""

from __future__ import annotations

from datetime import date, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from campaigns.bootstrap import services
from campaigns.clock import resolve_clock
from flows.stages import STAGE_FLOWS


@flow(name="daily_campaign", description="Run every stage of the ladder for one day.")
def daily_campaign(as_of: date | None = None, now: datetime | None = None, dry_run: bool = False) -> list[dict]:
    s = services()
    as_of, now = resolve_clock(as_of, now, s.settings.lender_zone)
    # A stage that fails (a provider outage, say) must not keep the later stages,
    # escalation to people above all, from running: run them all, then fail loudly.
    summaries, failed = [], []
    for stage in s.ladder.ordered_stages():
        state = STAGE_FLOWS[stage](as_of=as_of, now=now, dry_run=dry_run, return_state=True)
        if state.is_completed():
            summaries.append(state.result())
        else:
            failed.append(stage.value)
            get_run_logger().error("stage %s ended %s; the other stages still run", stage.value, state.name)
    create_table_artifact(
        key="daily-campaign-summary",
        table=[
            {k: v for k, v in row.items() if k not in ("suppressed_by_reason", "failed_by_reason", "previews")}
            for row in summaries
        ],
        description=f"Daily campaign as of {as_of}: attempts per stage. No personal data."
        + (f" **Failed stages: {', '.join(failed)}** (re-run the day once fixed: nothing is sent twice)." if failed else ""),
    )
    if failed:
        raise StagesFailed(failed)
    return summaries


class StagesFailed(RuntimeError):
    def __init__(self, stages: list[str]):
        super().__init__(f"stage(s) failed: {', '.join(stages)}; the others completed. Re-run the day once fixed.")
        self.stages = stages
