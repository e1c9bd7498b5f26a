"""How tasks retry: database tasks for the errors a retry can fix (locks, dropped connections), provider tasks with
exponential back-off and jitter, their count and delay from settings (CAMPAIGNS_DELIVERY_*)."""

from __future__ import annotations

from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import InterfaceError, OperationalError


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
