"""Provider rate limits (CAMPAIGNS_PROVIDER_RATE_LIMITS) as Prefect global rate limits: they hold across every task,
flow run and worker of the deployment."""

from __future__ import annotations

import math


def rate_limit_name(provider: str) -> str:
    return f"campaigns-provider-{provider}"


def provider_throttle(settings):
    """A throttle for ``deliver_queued`` that holds each provider to its rate (a Prefect global rate limit),
    across every task and flow run of the deployment; None when no limit is set."""
    limited = dict(settings.provider_rate_limits)
    if not limited:
        return None
    from prefect.concurrency.sync import rate_limit

    def throttle(provider: str, n: int) -> None:
        if provider in limited:
            rate_limit(rate_limit_name(provider), occupy=n, strict=True)

    return throttle


def ensure_provider_limits(settings, claim_size: int = 50) -> None:
    """Create or update the global rate limits from settings: ``rate`` slots free up each second, and a
    claimed group (up to ``claim_size`` messages) always fits in the bucket."""
    if not settings.provider_rate_limits:
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for provider, per_second in settings.provider_rate_limits.items():
            client.upsert_global_concurrency_limit_by_name(
                rate_limit_name(provider), limit=max(claim_size, math.ceil(per_second)),
                slot_decay_per_second=float(per_second))
