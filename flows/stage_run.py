"""The shape every stage flow shares: start, chunk the cohort, log and deliver each chunk, record."""

from __future__ import annotations

from collections import deque
from datetime import date, datetime

from campaigns.bootstrap import ready_services
from campaigns.clock import refuse_a_future_day, resolve_clock
from flows.credentials import load_credentials
from flows.runners import chunk_workers
from campaigns.db.models import Stage
from campaigns.contact.pipeline import StageRun
from campaigns.progress import track
from campaigns.contact.adhoc import AdhocCohort
from tasks.stage_tasks import (
    deliver_chunk,
    enqueue_chunk,
    finish_stage_run,
    plan_cohort_chunks,
    resolve_adhoc_chunks,
    start_stage_run,
)
from tasks.retries import with_delivery_retries


def run_stage(stage: Stage, as_of: date | None, now: datetime | None, dry_run: bool,
              cohort: AdhocCohort | None = None) -> dict:
    """One stage for a day: the ladder's cohort, or (ad hoc) the accounts of ``cohort``."""
    # Credentials from Secret blocks first; then one clear error if the database is missing or behind.
    settings = ready_services(load_credentials()).settings
    as_of, now = resolve_clock(as_of, now, settings.lender_zone)
    if not dry_run:
        refuse_a_future_day(as_of, now, settings.lender_zone, f"a live {stage.value} run")
    deliver = with_delivery_retries(deliver_chunk, settings)
    # An ad-hoc cohort is resolved before the run starts: a bad one is one error, and no run, nothing sent.
    chunks = resolve_adhoc_chunks(stage, cohort, as_of) if cohort is not None else None
    run = StageRun(run_id=start_stage_run(stage, as_of, now, dry_run), stage=stage, as_of=as_of, now=now,
                   adhoc=cohort is not None)
    cohort_size, tallies, previews, delivering = 0, [], [], []
    failure: BaseException | None = None

    def take(result, bounds) -> None:
        """Count what a chunk (or what lies beyond the chunks) decided, and deliver what waits for a provider."""
        nonlocal cohort_size
        cohort_size += result.cohort_size
        tallies.append(result.tally.as_dict())
        previews.extend(result.previews)
        if result.queued_ids:  # only what waits for a provider: the rest was written final
            delivering.append(deliver.submit(run, bounds, result.queued_ids))

    try:
        if chunks is None:
            planned, rest = plan_cohort_chunks(run, dry_run)
            chunks = [(bounds, None) for bounds in planned]
            if rest is not None:  # logged by an earlier run of the day: counted, and what it left due delivered
                take(rest[1], rest[0])
        # Chunks run side by side on the flow's task runner (flows.runners), a window of them at a time so
        # the pool always has work; a chunk with messages for a provider has its delivery submitted as soon
        # as its log is written (the outbox's and the worklist's are final in the log already).
        window = 2 * chunk_workers(settings)
        waiting, in_flight = deque(chunks), deque()

        def submit_more() -> None:
            while waiting and len(in_flight) < window:
                bounds, accounts = waiting.popleft()
                in_flight.append((enqueue_chunk.submit(run, bounds, dry_run, accounts), bounds))

        with track(stage.value, len(chunks)) as progress:  # a bar on the CLI's terminal; silent on a worker
            submit_more()
            done = 0
            while in_flight:
                logged, bounds = in_flight.popleft()
                # A chunk that fails (after its retries) costs that chunk: the others still finish, and the
                # run is then recorded as failed with everything they did.
                try:
                    take(logged.result(), bounds)
                except Exception as exc:  # noqa: BLE001 - raised below, once every chunk has settled
                    failure = failure or exc
                submit_more()
                done += 1
                progress.update(done, f"{cohort_size:,} accounts")
            for delivered in delivering:
                try:
                    delivered.result()
                except Exception as exc:  # noqa: BLE001
                    failure = failure or exc
    except BaseException as exc:
        failure = exc
    if failure is not None:
        finish_stage_run(run, cohort_size, tallies, dry_run, status="failed")
        raise failure
    summary = finish_stage_run(run, cohort_size, tallies, dry_run)
    if dry_run:
        summary["previews"] = previews[:3]
    return summary
