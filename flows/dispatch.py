"""Release deferred messages when their customers' contact window opens (every 15 minutes).

It also finishes what a crashed run left behind: stale ``sending`` claims are
recovered first (``campaigns.delivery.recovery``), and queued attempts older than the
claim lease are sent with the deferred ones. Then, where a channel turned out
unusable (a hard bounce, an SMS STOP at the provider, no app), the stage's next
channel is tried (``campaigns.delivery.fallback``).

A daily run at 09:00 in the lender's zone reaches a customer three zones west
at a decent hour this way: the message is queued in the morning, deferred, and
released here once it is 08:00 where the customer is, with every rule checked
again at that moment.
"""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import flow

from campaigns.runs import records as runs
from campaigns.bootstrap import ready_services
from campaigns.clock import resolve_clock
from flows.credentials import load_credentials
from flows.parameters import Now
from tasks.dispatch_tasks import (
    fall_back_channels,
    finish_dispatch_run,
    plan_due_chunks,
    recover_interrupted,
    release_due_chunk,
)
from tasks.retries import with_delivery_retries


@flow(name="dispatch", description="Release deferred messages whose contact window has opened.")
def dispatch(now: Now = None) -> dict:
    s = ready_services(load_credentials())  # a missing or outdated database fails here, once
    as_of, now = resolve_clock(None, now, s.settings.lender_zone)
    run_id = runs.start_run(s.engine, "dispatch", as_of, now, started_at=datetime.now(timezone.utc))
    release = with_delivery_retries(release_due_chunk, s.settings)
    tallies = []
    try:
        tallies.append(recover_interrupted(now))
        tallies.append(with_delivery_retries(fall_back_channels, s.settings)(run_id, now, as_of))
        for bounds in plan_due_chunks(now):
            tallies.append(release(run_id, now, bounds))
    except BaseException:
        finish_dispatch_run(run_id, now, tallies, status="failed")
        raise
    return finish_dispatch_run(run_id, now, tallies)
