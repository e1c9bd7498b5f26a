"""Tasks of a stage run. Each wraps one function of ``campaigns`` and adds retries and logs.

They take and return plain data (ids, dates, dicts), look their collaborators up
through ``campaigns.bootstrap``, and are never cached: idempotency lives in the
database (unique keys), not in Prefect's run records.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

from prefect import get_run_logger, task
from sqlalchemy.exc import InterfaceError, OperationalError
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

from campaigns.contact import cohorts, pipeline
from campaigns.delivery import fallback, recovery
from campaigns.runs import records as runs
from campaigns.bootstrap import describe_gateways, services
from campaigns.contact.cohorts import ChunkBounds
from campaigns.db.models import Stage
from campaigns.delivery.deliver import DeliveryInterrupted, deliver_queued
from campaigns.attempts.log import Tally
from campaigns.contact.figures import check_template_rules
from campaigns.runs.summaries import artifact_rows, decision_time, run_tally

def _database_trouble(task, task_run, state) -> bool:
    """Retry a database task only for errors a retry can fix (locks, dropped connections), not for bugs."""
    return isinstance(state.data, (OperationalError, InterfaceError))


DB_RETRIES = dict(retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=_database_trouble,
                  cache_policy=NO_CACHE)
# Provider calls back off exponentially with jitter; `with_delivery_retries` applies the settings.
PROVIDER_RETRIES = dict(retries=5, retry_delay_seconds=exponential_backoff(backoff_factor=2),
                        retry_jitter_factor=0.5, cache_policy=NO_CACHE)


def with_delivery_retries(provider_task, settings):
    """A provider task with the retry count and back-off from settings (CAMPAIGNS_DELIVERY_*)."""
    return provider_task.with_options(
        retries=settings.delivery_retries,
        retry_delay_seconds=exponential_backoff(settings.delivery_backoff_seconds)(settings.delivery_retries),
    )


def rate_limit_name(provider: str) -> str:
    return f"campaigns-provider-{provider}"


def provider_throttle(settings):
    """A throttle for ``deliver_queued`` that holds each provider to its rate (a Prefect global rate limit),
    across every task and flow run of the deployment; None when no limit is set."""
    limited = dict(settings.provider_rate_limits)
    if not limited:
        return None
    from prefect.concurrency.sync import rate_limit

    def throttle(provider: str, n: int) -> None:
        if provider in limited:
            rate_limit(rate_limit_name(provider), occupy=n, strict=True)

    return throttle


def ensure_provider_limits(settings, claim_size: int = 50) -> None:
    """Create or update the global rate limits from settings: ``rate`` slots free up each second, and a
    claimed group (up to ``claim_size`` messages) always fits in the bucket."""
    if not settings.provider_rate_limits:
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for provider, per_second in settings.provider_rate_limits.items():
            client.upsert_global_concurrency_limit_by_name(
                rate_limit_name(provider), limit=max(claim_size, math.ceil(per_second)),
                slot_decay_per_second=float(per_second))


class TemplateProblems(RuntimeError):
    """The templates break the content rules: nothing is decided or sent until they are fixed."""


@task(name="start-stage-run", tags=["campaigns", "db"], **DB_RETRIES)
def start_stage_run(stage: Stage, as_of: date, now: datetime, dry_run: bool) -> str:
    s = services()
    # Content rules are checked on the templates as loaded, before any message of the run.
    _, problems, _ = check_template_rules(s.templates, s.ladder, s.brand)
    if problems:
        raise TemplateProblems("templates break the content rules (campaigns templates check): "
                               + "; ".join(map(str, problems[:5])))
    ensure_provider_limits(s.settings)
    run_id = runs.start_run(
        services().engine, stage, as_of, now, started_at=datetime.now(timezone.utc),
        dry_run=dry_run, flow_run_id=str(flow_run.id) if flow_run.id else None,
        name=flow_run.name if flow_run.id else None,  # the review tells ad-hoc runs apart by it
    )
    get_run_logger().info("stage %s as of %s: run %s", stage.value, as_of, run_id)
    return run_id


@task(name="plan-cohort-chunks", tags=["campaigns", "db"], **DB_RETRIES)
def plan_cohort_chunks(stage: Stage, as_of: date) -> list[ChunkBounds]:
    s = services()
    chunks = pipeline.plan_stage_chunks(s.engine, s.ladder, stage, as_of, s.settings.chunk_size)
    get_run_logger().info("%s: %d chunk(s) of at most %d accounts", stage.value, len(chunks), s.settings.chunk_size)
    return chunks


@task(name="resolve-adhoc-cohort", tags=["campaigns", "db"], **DB_RETRIES)
def resolve_adhoc_chunks(stage: Stage, cohort, as_of: date) -> list[tuple[ChunkBounds, list[str]]]:
    """The ad-hoc cohort's account ids in chunks; a bad cohort fails here, before anything is logged or sent."""
    from campaigns.contact.adhoc import adhoc_rule, check_stage_days, describe_days, id_chunks, resolve_cohort

    s = services()
    rule = s.ladder.rule(stage)
    adhoc_rule(rule)  # a stage that takes no ad-hoc cohort is refused first
    ids = resolve_cohort(s.engine, cohort, as_of, s.ladder, s.review.adhoc_views)
    outside = check_stage_days(s.engine, ids, rule, as_of, cohort.describe())
    get_run_logger().info("ad-hoc cohort (%s): %d account(s) for %s; %d outside its days past due (%s), left out",
                          cohort.describe(), len(ids), stage.value, len(outside), describe_days(rule.day_bounds))
    return id_chunks(ids, s.settings.chunk_size)


# No tags on the chunk tasks but `provider`: Prefect asks its API for tag concurrency slots before every
# tagged task run (issue 12's profile: most of the orchestration time), and only `provider` is capped.
@task(name="enqueue-chunk", **DB_RETRIES)
def enqueue_chunk(run: pipeline.StageRun, bounds: ChunkBounds, dry_run: bool,
                  accounts: list[str] | None = None) -> pipeline.ChunkResult:
    """Decide, render and log one chunk (one transaction: a retry redoes it whole or finds it done);
    for an ad-hoc run, only ``accounts`` of it."""
    s = services()
    step = pipeline.preview_chunk if dry_run else pipeline.enqueue_chunk
    result = step(s.engine, s.ladder, s.templates, s.brand, run, bounds, s.policy, accounts=accounts)
    get_run_logger().info("chunk of %s: %d accounts, %s", bounds,
                          result.cohort_size, result.tally.as_dict())
    return result


@task(
    name="deliver-chunk",
    tags=["provider"],
    **PROVIDER_RETRIES,
)
def deliver_chunk(run: pipeline.StageRun, bounds: ChunkBounds, attempt_ids: list[int] | None = None) -> dict[str, int]:
    """Send what the chunk queued (``attempt_ids``, as its log returned them; None: whatever is due in its
    bounds). A transient provider error re-queues the rest and retries the task."""
    s = services()
    logger = get_run_logger()
    try:
        tally = deliver_queued(s.engine, s.gateways, stage=run.stage.value, as_of=run.as_of,
                               now=run.now, policy=s.policy, run_id=run.run_id, bounds=bounds,
                               throttle=provider_throttle(s.settings), attempt_ids=attempt_ids)
    except DeliveryInterrupted as exc:
        logger.warning("delivery interrupted after %s; retrying the rest", exc.tally.as_dict())
        raise
    logger.info("delivered the chunk of %s: %s", bounds, tally.as_dict())
    return tally.as_dict()


@task(name="finish-stage-run", tags=["campaigns", "db"], **DB_RETRIES)
def finish_stage_run(run: pipeline.StageRun, cohort_size: int, enqueue_tallies: list[dict[str, int]],
                     dry_run: bool, status: str = "completed") -> dict:
    """Record the run's outcome in ``campaign_runs`` and as a Prefect table artifact."""
    s = services()
    if dry_run:
        tally = Tally()
        for t in enqueue_tallies:
            tally.merge(t)
    else:
        tally = run_tally(s.engine, run.run_id)
        tally.add("already_recorded", n=sum(t.get("already_recorded", 0) for t in enqueue_tallies))
    runs.finish_run(s.engine, run.run_id, cohort_size=cohort_size, tally=tally,
                    finished_at=datetime.now(timezone.utc), status=status)
    summary = runs.summary_row(run.stage.value, cohort_size, tally)
    summary["run_id"] = run.run_id
    summary["as_of"] = run.as_of.isoformat()
    summary["dry_run"] = dry_run
    create_table_artifact(
        key=f"{run.stage.value.replace('_', '-')}-summary",
        table=artifact_rows(summary),
        description=(
            f"**{run.stage.value}** as of {run.as_of} ({'dry run, nothing sent' if dry_run else 'live'}); "
            f"decided at {decision_time(run.now, s.settings.lender_zone)}; channels: {describe_gateways(s.settings)}; "
            f"run `{run.run_id}`. Counts of contact attempts; personal data is never shown here."
        ),
    )
    return summary


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


@task(name="settle-day", tags=["campaigns", "db"], **DB_RETRIES)
def settle_day(as_of: date, now: datetime, dry_run: bool) -> dict:
    """Expire offers, break overdue plans and promises, place aged accounts with the agency (idempotent)."""
    from campaigns.money.settlement import settle_day as settle

    s = services()
    done = settle(s.engine, s.ladder, as_of, now, s.settings.data_dir / "agency", dry_run=dry_run,
                  zone=s.settings.lender_zone)
    if any(v for k, v in done.as_dict().items() if k not in ("placement_file", "activity_file")):
        get_run_logger().info("settled %s: %s", as_of, {k: v for k, v in done.as_dict().items() if v})
    return done.as_dict()
