"""The daily deadline: by this hour every stage of today's ladder must have completed, or a person is told.

Scheduled in prefect.yaml (``daily-deadline``) at the lender's cut-off hour. It
reads ``campaign_runs``, the project's own record of what ran, so it catches a
daily run that failed, crashed, is still stuck, or never started (a worker that
is down, a schedule that was paused). It fails when work is missing; the failure
automation (``campaigns ops alerts``) turns that failure into a notification.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger

from campaigns.bootstrap import ready_services
from campaigns.clock import resolve_clock
from flows.credentials import load_credentials
from campaigns.runs.records import stages_completed
from flows.parameters import AsOf


class DailyNotCompleted(RuntimeError):
    pass


def failed_daily_runs(as_of: date, zone: ZoneInfo) -> list[str]:
    """The names of the daily runs for ``as_of`` that ended Failed, Crashed or TimedOut (each alerted when it
    did): a run with ``as_of`` as its parameter, or without one that started on that day in the lender's zone."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )

    since = datetime.combine(as_of - timedelta(days=1), time.min, zone)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["daily_campaign"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Failed", "Crashed", "TimedOut"])),
                expected_start_time=FlowRunFilterExpectedStartTime(after_=since)),
            limit=50)
    names = []
    for run in runs:
        given = (run.parameters or {}).get("as_of")
        began = run.start_time or run.expected_start_time
        day = str(given) if given else (began.astimezone(zone).date().isoformat() if began else None)
        if day == as_of.isoformat():
            names.append(run.name)
    return sorted(names)


@flow(name="daily_deadline", description="Fail (and so alert) when today's daily campaign has not completed.")
def daily_deadline(as_of: AsOf = None) -> list[str]:
    s = ready_services(load_credentials())
    as_of, _ = resolve_clock(as_of, None, s.settings.lender_zone)
    expected = [stage.value for stage in s.ladder.ordered_stages()]
    done = stages_completed(s.engine, as_of)
    missing = [stage for stage in expected if stage not in done]
    if missing:
        failed = failed_daily_runs(as_of, s.settings.lender_zone)
        same = (f" This is the problem the failed daily run {', '.join(failed)} already alerted about, not a new "
                "one." if failed else "")
        raise DailyNotCompleted(f"the daily campaign for {as_of} has not completed: no completed live run of "
                                f"{', '.join(missing)}.{same} Check the daily run's state, then re-run the day "
                                "(nothing is sent twice).")
    get_run_logger().info("daily campaign for %s completed: %s", as_of, ", ".join(expected))
    return expected
