"""Tasks of the dispatcher: recover what a crashed run left, fall back to the next channel, release deferred messages
whose contact window has opened, and record the run. Plain data in and out, as every task."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from campaigns.attempts.log import Tally
from campaigns.bootstrap import describe_gateways, services
from campaigns.contact import cohorts
from campaigns.contact.cohorts import ChunkBounds
from campaigns.delivery import fallback, recovery
from campaigns.delivery.deliver import deliver_queued
from campaigns.runs import records as runs
from campaigns.runs.summaries import artifact_rows, decision_time
from tasks.provider_limits import ensure_provider_limits, provider_throttle
from tasks.retries import DB_RETRIES, PROVIDER_RETRIES


@task(name="recover-interrupted", tags=["campaigns", "db"], **DB_RETRIES)
def recover_interrupted(now: datetime) -> dict[str, int]:
    """Settle what a crashed deliverer left ``sending``, and re-queue what no provider ever confirmed."""
    s = services()
    hours = s.settings.resend_unconfirmed_after_hours
    tally = recovery.recover(
        s.engine, s.gateways, now=now, wall_now=datetime.now(timezone.utc),
        lease=timedelta(seconds=s.settings.claim_lease_seconds),
        unconfirmed_after=timedelta(hours=hours) if hours else None,
    )
    if tally.counts:
        get_run_logger().warning("recovered after an interruption: %s", tally.as_dict())
    return tally.as_dict()


@task(name="fall-back-channels", tags=["campaigns", "provider"], **PROVIDER_RETRIES)
def fall_back_channels(run_id: str, now: datetime, today: date) -> dict[str, int]:
    """Where the chosen channel turned out unusable (bounce, STOP, no app), try the stage's next channel."""
    s = services()
    ensure_provider_limits(s.settings)
    tally = fallback.fall_back(s.engine, s.ladder, s.templates, s.brand, s.policy, s.gateways, run_id=run_id,
                               now=now, today=today, chunk_size=s.settings.chunk_size)
    if tally.counts:
        get_run_logger().info("channel fallback: %s", tally.as_dict())
    return tally.as_dict()


@task(name="plan-due-chunks", tags=["campaigns", "db"], **DB_RETRIES)
def plan_due_chunks(now: datetime) -> list[ChunkBounds]:
    s = services()
    with s.engine.connect() as conn:
        chunks = cohorts.plan_due_chunks(conn, now, s.settings.chunk_size, queued_before=_left_behind(now))
    get_run_logger().info("%d chunk(s) of deferred messages are due", len(chunks))
    return chunks


def _left_behind(now: datetime) -> datetime:
    """Queued attempts decided longer ago than the claim lease belong to a run that stopped."""
    return now - timedelta(seconds=services().settings.claim_lease_seconds)


@task(
    name="release-due-chunk",
    tags=["campaigns", "provider"],
    **PROVIDER_RETRIES,
)
def release_due_chunk(run_id: str, now: datetime, bounds: ChunkBounds) -> dict[str, int]:
    """Re-check every rule for the due deferred messages of a chunk, and send those now allowed."""
    s = services()
    tally = deliver_queued(s.engine, s.gateways, now=now, policy=s.policy, run_id=run_id, bounds=bounds,
                           include_queued=False, queued_before=_left_behind(now), throttle=provider_throttle(s.settings))
    get_run_logger().info("released the chunk of %s: %s", bounds, tally.as_dict())
    return tally.as_dict()


@task(name="finish-dispatch-run", tags=["campaigns", "db"], **DB_RETRIES)
def finish_dispatch_run(run_id: str, now: datetime, tallies: list[dict[str, int]],
                        status: str = "completed") -> dict:
    s = services()
    tally = Tally()
    for t in tallies:
        tally.merge(t)
    runs.finish_run(s.engine, run_id, cohort_size=0, tally=tally, finished_at=datetime.now(timezone.utc),
                    status=status)
    summary = runs.summary_row("dispatch", 0, tally)
    create_table_artifact(
        key="dispatch-summary",
        table=artifact_rows(summary)[1:],
        description=(f"Deferred messages released, deferred again or stopped at {decision_time(now, s.settings.lender_zone)}; "
                     f"channels: {describe_gateways(s.settings)}; run `{run_id}`. No personal data."),
    )
    return summary
