"""The work pool, the deployments' concurrency limits, and what is deployed, on the server at PREFECT_API_URL."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool ``name`` if it does not exist (True if it was created). Never
    overwrites an existing pool: ops may have tuned its job template or concurrency in the UI."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            pass
        client.create_work_pool(WorkPoolCreate(
            name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template(),
            description="Collection campaigns: the ladder's flow runs, each in its own process.",
        ))
        return True


def limit_name(deployment_name: str) -> str:
    return f"deployment:{deployment_name}"


def name_concurrency_limits() -> dict[str, str]:
    """Give each deployment's concurrency limit the deployment's name instead of Prefect's
    ``deployment:<uuid>``, so the UI's concurrency page says whose limit it is.

    The server links a deployment to its limit by id, never by name, so renaming is
    safe; a later ``prefect deploy`` with the same limit leaves it as it is.
    """
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    renamed = {}
    with get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            limit = deployment.global_concurrency_limit
            wanted = limit_name(deployment.name)
            if limit is None or limit.name == wanted:
                continue
            try:  # a limit left by an earlier deployment of that name, since deleted
                stale = client.read_global_concurrency_limit_by_name(wanted)
                if stale.id != limit.id:
                    client.delete_global_concurrency_limit_by_name(wanted)
            except ObjectNotFound:
                pass
            client.update_global_concurrency_limit(limit.name, GlobalConcurrencyLimitUpdate(name=wanted))
            renamed[limit.name] = wanted
    return renamed


def describe_schedule(schedule: Any) -> str:
    if getattr(schedule, "cron", None):
        return f"cron {schedule.cron} ({schedule.timezone or 'UTC'})"
    if getattr(schedule, "interval", None):
        return f"every {int(schedule.interval.total_seconds())} s"
    return str(schedule)


def deployed() -> list[dict[str, Any]]:
    """Each deployment on the server: its schedules (with time zone), whether they are active, and its next
    scheduled run (UTC), as the server's scheduler created it."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    rows = []
    with get_client(sync_client=True) as client:
        flows = {}
        for deployment in sorted(client.read_deployments(), key=lambda d: d.name):
            if deployment.flow_id not in flows:
                flows[deployment.flow_id] = client.read_flow(deployment.flow_id).name
            schedules = [describe_schedule(s.schedule) + ("" if s.active else " [paused]")
                         for s in deployment.schedules]
            upcoming = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=1,
            )
            next_run = upcoming[0].expected_start_time if upcoming else None
            rows.append({
                "deployment": f"{flows[deployment.flow_id]}/{deployment.name}",
                "id": str(deployment.id),
                "schedule": "; ".join(schedules) or "by hand",
                "next_run": next_run.astimezone(timezone.utc).isoformat() if isinstance(next_run, datetime) else "-",
                "concurrency_limit": getattr(deployment.global_concurrency_limit, "name", None),
            })
    return rows
