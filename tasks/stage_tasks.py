"""Tasks of a stage run (the dispatcher's are in ``dispatch_tasks``, the day's settlement in ``settlement_tasks``, retry
policy in ``retries``, provider rate limits in ``provider_limits``). Each wraps one function of ``campaigns`` and adds
retries and logs.

They take and return plain data (ids, dates, dicts), look their collaborators up
through ``campaigns.bootstrap``, and are never cached: idempotency lives in the
database (unique keys), not in Prefect's run records.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from campaigns.contact import pipeline
from campaigns.runs import records as runs
from campaigns.bootstrap import describe_gateways, services
from campaigns.channels.base import stored_in
from campaigns.contact.cohorts import ChunkBounds
from campaigns.db.engine import refresh_statistics
from campaigns.db.models import Stage
from campaigns.delivery.deliver import DeliveryInterrupted, deliver_queued
from campaigns.attempts.log import Tally
from campaigns.contact.template_figures_check import check_template_rules
from campaigns.runs.summaries import artifact_rows, decision_time, run_tally
from tasks.provider_limits import ensure_provider_limits, provider_throttle
from tasks.retries import DB_RETRIES, PROVIDER_RETRIES

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
def plan_cohort_chunks(run: pipeline.StageRun, dry_run: bool) -> tuple[list[ChunkBounds],
                                                                      tuple[ChunkBounds, pipeline.ChunkResult] | None]:
    """The cohort's chunks. A live run plans only accounts the stage has not logged that day (a re-run of a
    finished day plans none), and returns what lies beyond its last chunk, logged already: counted, with what
    an earlier run left due there. A dry run previews the whole cohort."""
    s = services()
    chunks = pipeline.plan_stage_chunks(s.engine, s.ladder, run.stage, run.as_of, s.settings.chunk_size,
                                        unlogged_only=not dry_run)
    rest = None if dry_run else pipeline.recorded_beyond(s.engine, run, chunks)
    get_run_logger().info("%s: %d chunk(s) of at most %d accounts%s", run.stage.value, len(chunks),
                          s.settings.chunk_size, f"; {rest[1].cohort_size} account(s) logged already beyond them"
                          if rest and rest[1].cohort_size else "")
    return chunks, rest


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
    if dry_run:
        result = pipeline.preview_chunk(s.engine, s.ladder, s.templates, s.brand, run, bounds, s.policy,
                                        accounts=accounts)
    else:  # the outbox and the worklist are written final here; providers' messages wait for deliver-chunk
        result = pipeline.enqueue_chunk(s.engine, s.ladder, s.templates, s.brand, run, bounds, s.policy,
                                        accounts=accounts, stores=stored_in(s.gateways, s.engine,
                                                                            s.settings.provider_rate_limits))
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
        # The run may have logged a million rows: the next queries (the review's, the dispatcher's, tomorrow's
        # cohort) are planned on statistics that know it.
        refresh_statistics(s.engine, ("contact_attempts", "outbox_messages", "rendered_messages"))
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


