"""Which engine runs a stage's chunk tasks side by side (``CAMPAIGNS_TASK_RUNNER``).

Chunks are independent: each is one transaction keyed by idempotency keys, so they
can run in any order, on any core or machine. Threads overlap database waits;
processes (or Dask workers) also use every core for rendering. Prefect's own task
runners and prefect-dask's ``DaskTaskRunner`` do the work: there is no scheduler
of our own.
"""

from __future__ import annotations

import os

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from campaigns.settings import Settings


def chunk_workers(settings: Settings) -> int:
    return settings.chunk_workers or os.cpu_count() or 1


def chunk_task_runner(settings: Settings | None = None) -> TaskRunner:
    """The task runner the stage flows submit their chunks to, from settings (read when the flows load)."""
    settings = settings or Settings()
    workers = chunk_workers(settings)
    if settings.task_runner == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        # One single-threaded process per worker: rendering holds the GIL, so threads would not add cores.
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=workers)
