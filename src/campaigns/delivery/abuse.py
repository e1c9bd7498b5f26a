"""Floods of the public endpoints answered cheaply: per-source request and failure budgets, in bounded memory.

The webhook receiver and the plan links face the internet. A source (the peer
address) gets a token bucket of requests (``rate`` per second, ``burst`` at once)
and a smaller one of *failures*: requests answered 401 or 403 (unsigned, forged,
stale, a forged plan link). A source over either budget is answered 429 before
anything of its request is read or verified, so a flood of forged requests costs a
dictionary look-up each, not a signature check. Both tables keep at most
``max_sources`` addresses (the least recently seen go first), so a flood from
many spoofed addresses cannot grow memory either; an evicted source starts again
with a full budget, which is the safe side for providers.

Hand-written rather than a rate-limit package: the need is two token buckets and
an LRU bound; the common packages keep one entry per key until a timer expires it,
which a flood of distinct addresses grows without limit.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FAILURE_STATUSES = (401, 403)


@dataclass(frozen=True)
class Budget:
    rate: float  # tokens per second
    burst: float  # tokens at most


class Buckets:
    """Token buckets per key, at most ``size`` keys (least recently used evicted)."""

    def __init__(self, budget: Budget, size: int, clock: Callable[[], float]):
        self.budget, self.size, self.clock = budget, size, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.budget.burst, now))
        return min(self.budget.burst, tokens + (now - at) * self.budget.rate)

    def take(self, key: str) -> bool:
        """Take a token: False (and nothing taken) when the key has none left."""
        now = self.clock()
        level = self._level(key, now)
        ok = level >= 1.0
        self._buckets[key] = (level - 1.0 if ok else level, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.size:
            self._buckets.popitem(last=False)
        return ok

    def empty(self, key: str) -> bool:
        return key in self._buckets and self._level(key, self.clock()) < 1.0

    def seconds_to_next(self, key: str) -> int:
        missing = max(1.0 - self._level(key, self.clock()), 0.0)
        return max(1, int(missing / self.budget.rate + 0.999)) if self.budget.rate > 0 else 3600


class SourceLimits:
    """The request budget and the failure budget of every source."""

    def __init__(self, requests: Budget, failures: Budget, max_sources: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.requests = Buckets(requests, max_sources, clock)
        self.failures = Buckets(failures, max_sources, clock)

    def refused(self, source: str) -> int | None:
        """None if ``source`` may be served now (one request counted), else the seconds it should wait."""
        if self.failures.empty(source):
            return self.failures.seconds_to_next(source)
        if not self.requests.take(source):
            return self.requests.seconds_to_next(source)
        return None

    def failed(self, source: str) -> None:
        self.failures.take(source)


class LimitSources:
    """ASGI middleware: 429 for a source over its budget; 401/403 answers count against its failure budget."""

    def __init__(self, app: ASGIApp, limits: SourceLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        source = (scope.get("client") or ("unknown", 0))[0]
        wait = self.limits.refused(source)
        if wait is not None:
            await JSONResponse({"error": "too many requests"}, status_code=429,
                               headers={"Retry-After": str(wait)})(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in FAILURE_STATUSES:
                self.limits.failed(source)
            await send(message)

        await self.app(scope, receive, counted)
