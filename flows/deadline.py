"""The daily deadline: by this hour every stage of today's ladder must have completed, or a person is told.

Scheduled in prefect.yaml (``daily-deadline``) at the lender's cut-off hour. It
reads ``campaign_runs``, the project's own record of what ran, so it catches a
daily run that failed, crashed, is still stuck, or never started (a worker that
is down, a schedule that was paused). It fails when work is missing; the failure
automation (``campaigns ops alerts``) turns that failure into a notification.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from campaigns.bootstrap import ready_services
from campaigns.clock import resolve_clock
from flows.credentials import load_credentials
from campaigns.review.runs import stages_completed
from flows.parameters import AsOf


class DailyNotCompleted(RuntimeError):
    pass


@flow(name="daily_deadline", description="Fail (and so alert) when today's daily campaign has not completed.")
def daily_deadline(as_of: AsOf = None) -> list[str]:
    s = ready_services(load_credentials())
    as_of, _ = resolve_clock(as_of, None, s.settings.lender_zone)
    expected = [stage.value for stage in s.ladder.ordered_stages()]
    done = stages_completed(s.engine, as_of)
    missing = [stage for stage in expected if stage not in done]
    if missing:
        raise DailyNotCompleted(f"the daily campaign for {as_of} has not completed: no completed live run of "
                                f"{', '.join(missing)}. Check the daily run's state, then re-run the day "
                                "(nothing is sent twice).")
    get_run_logger().info("daily campaign for %s completed: %s", as_of, ", ".join(expected))
    return expected
