"""``campaign_runs``: one row per stage run, with what happened, by status and reason."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from campaigns.db.models import CampaignRun, Stage
from campaigns.attempts.log import Tally
from campaigns.runs.summaries import HANDED_OVER


OTHER_RUNS = ("dispatch", "call")  # runs that are not a stage: the dispatcher, an agent's logged call


def start_run(
    engine: Engine, stage: Stage, as_of: date, now: datetime, *, started_at: datetime,
    dry_run: bool = False, flow_run_id: str | None = None, name: str | None = None,
) -> str:
    run_id = str(uuid.uuid4())
    stage = stage if stage in OTHER_RUNS else Stage(stage)
    with engine.begin() as conn:
        conn.execute(insert(CampaignRun.__table__), {
            "id": run_id, "stage": getattr(stage, "value", stage), "as_of": as_of, "decided_at": now,
            "started_at": started_at, "finished_at": None, "status": "running", "dry_run": dry_run,
            "flow_run_id": flow_run_id, "cohort_size": 0, "counts": {}, "name": name,
        })
    return run_id


def finish_run(
    engine: Engine, run_id: str, *, cohort_size: int, tally: Tally, finished_at: datetime, status: str = "completed"
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(CampaignRun.__table__)
            .where(CampaignRun.__table__.c.id == run_id)
            .values(cohort_size=cohort_size, counts=tally.as_dict(), finished_at=finished_at, status=status)
        )


def recent_runs(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    run = CampaignRun
    stmt = select(run).order_by(run.started_at.desc(), run.id).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def summary_row(stage: str, cohort_size: int, tally: Tally) -> dict[str, Any]:
    """One line of the stage summary: cohort size (accounts) and attempts by outcome.

    ``deferred`` waits for its contact window (the dispatcher releases it);
    ``queued`` is what the run logged but could not deliver (it waits for a re-run).
    """
    return {
        "stage": stage,
        "cohort": cohort_size,
        "sent": tally.total("sent"),
        "suppressed": tally.total("suppressed"),
        "suppressed_by_reason": tally.reasons("suppressed"),
        "holdout": tally.total("holdout"),
        "deferred": tally.total("deferred"),
        "deferred_by_reason": tally.reasons("deferred"),
        "failed": tally.total("failed"),
        "failed_by_reason": tally.reasons("failed"),
        "unknown": tally.total("unknown"),
        "unknown_by_reason": tally.reasons("unknown"),
        "queued": tally.total("queued") + tally.total("sending"),
        "already_recorded": tally.total("already_recorded"),
        HANDED_OVER: tally.total(HANDED_OVER),
        "would_send": tally.total("would_send"),
    }


def stages_completed(engine: Engine, as_of: date) -> set[str]:
    """The stages with a completed live (not dry) run for ``as_of``: the day's work that is done."""
    run = CampaignRun
    stmt = select(run.stage).where(run.as_of == as_of, run.status == "completed", run.dry_run.is_(False)).distinct()
    with engine.connect() as conn:
        return set(conn.scalars(stmt))
