"""The daily campaign: every stage of the ladder for one day, in ladder order. Safe to re-run."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from campaigns.bootstrap import describe_gateways, ready_services
from campaigns.clock import refuse_a_future_day, resolve_clock
from flows.credentials import load_credentials
from campaigns.runs.summaries import daily_rows, decision_time
from flows.parameters import AsOf, DryRun, Now
from flows.stages import STAGE_FLOWS
from tasks.settlement_tasks import settle_day


@flow(name="daily_campaign", description="Run every stage of the ladder for one day.")
def daily_campaign(as_of: AsOf = None, now: Now = None, dry_run: DryRun = False) -> list[dict]:
    # A missing or outdated database fails here, once, before any stage starts.
    s = ready_services(load_credentials())
    as_of, now = resolve_clock(as_of, now, s.settings.lender_zone)
    if not dry_run:
        refuse_a_future_day(as_of, now, s.settings.lender_zone, "the daily campaign")
    # A stage that fails (a provider outage, say) must not keep the later stages,
    # escalation to people above all, from running: run them all, then fail loudly.
    summaries, failed = [], []
    # Before any stage: yesterday's promises and overdue plans break, expired offers close, aged accounts go
    # to the agency; so today's cohorts see them as they now are.
    settled = settle_day(as_of, now, dry_run)
    for stage in s.ladder.ordered_stages():
        # The summary comes back in memory, as the stage flow returned it: a state fetched back from the
        # API has no data when results are not persisted (Prefect's MissingResult, seen under load).
        try:
            summaries.append(STAGE_FLOWS[stage](as_of=as_of, now=now, dry_run=dry_run))
        except Exception as exc:  # the stage's own run and logs say what went wrong
            failed.append(stage.value)
            get_run_logger().error("stage %s failed (%s); the other stages still run", stage.value,
                                   type(exc).__name__)
    create_table_artifact(
        key="daily-campaign-summary",
        table=daily_rows(summaries),
        description=(
            f"**Daily campaign as of {as_of}** ({'dry run: nothing logged or sent' if dry_run else 'live'}). "
            f"Decided at {decision_time(now, s.settings.lender_zone)}. Channels: {describe_gateways(s.settings)}. "
            "Counts of contact attempts per stage; no personal data. "
            f"Settled first: {settled['offers_expired']} offer(s) expired, {settled['plans_broken']} plan(s) and "
            f"{settled['promises_broken']} promise(s) broken, {settled['accounts_placed']} account(s) placed."
            + (f" **Failed stages: {', '.join(failed)}** (re-run the day once fixed: nothing is sent twice)."
               if failed else "")
        ),
    )
    if failed:
        raise StagesFailed(failed, completed=[row["stage"] for row in summaries])
    return summaries


class StagesFailed(RuntimeError):
    def __init__(self, stages: list[str], completed: list[str] = ()):
        done = f"these completed: {', '.join(completed)}" if completed else "none completed"
        super().__init__(f"stage(s) failed: {', '.join(stages)}; {done}. Re-run the day once fixed.")
        self.stages = stages
