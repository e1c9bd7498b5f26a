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

from campaigns.settings import Settings, get_settings


def chunk_workers(settings: Settings) -> int:
    return settings.chunk_workers or os.cpu_count() or 1


def chunk_task_runner(settings: Settings) -> TaskRunner:
    """The task runner the stage flows submit their chunks to, as ``settings`` say."""
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


class RunnerFromSettings(TaskRunner):
    """The stage flows' task runner, chosen when a flow run starts rather than when the flows are imported: Prefect
    asks a flow's task runner for a ``duplicate()`` to run each flow run with, and this one answers with the runner
    the settings say at that moment (``chunk_task_runner``). It runs nothing itself."""

    def duplicate(self) -> TaskRunner:
        return chunk_task_runner(get_settings())

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        raise RuntimeError("RunnerFromSettings only chooses a flow run's task runner; use the one duplicate() gives")
