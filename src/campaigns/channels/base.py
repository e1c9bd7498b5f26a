"""The gateway interface every channel adapter implements."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    attempt_id: int
    account_id: str
    channel: str
    stage: str
    recipient: str | None
    subject: str | None
    text: str
    html: str | None
    payload: dict[str, Any] = field(default_factory=dict)


class TransientDeliveryError(Exception):
    """The provider did not accept the message (429, 5xx, connection refused): try again later."""


class PermanentDeliveryError(Exception):
    """The provider refused the message for good; ``reason`` is logged on the attempt."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class RateLimited(TransientDeliveryError):
    """429: the provider said to slow down, and perhaps when to come back (seconds)."""

    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryOutcomeUnknown(Exception):
    """The request may have reached the provider; whether it was accepted is unknown."""


def retry_after_seconds(headers, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date) or ``X-RateLimit-Reset`` (Unix time)."""
    if not headers:
        return None
    now = time.time() if now is None else now
    value = str(headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    if value:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            pass
    reset = str(headers.get("X-RateLimit-Reset") or "").strip()
    if reset.isdigit():
        return max(0.0, float(reset) - now)
    return None


class DeliveryGateway(Protocol):
    #: True when the provider recognises a repeat of the same attempt id and does not
    #: deliver it twice: after a crash its interrupted attempts are simply sent again.
    #: False (the default) parks them as ``unknown`` until the provider's events settle them.
    idempotent: bool
    #: The name a provider's rate limit is kept under (``CAMPAIGNS_PROVIDER_RATE_LIMITS``).
    provider: str

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        """Hand one message to the provider; return its message id."""
        ...


class StoringGateway(DeliveryGateway, Protocol):
    """A channel that is a table of our own database (the outbox, the agents' worklist).

    The deliverer has it store a whole group inside the transaction that marks the
    attempts sent: a message is stored and logged as sent together, or not at all,
    so there is no claim to leave behind and no second copy after a crash. ``send``
    remains for one message at a time (a group whose store failed is sent that way,
    so a bad message costs only itself).
    """

    engine: Any  # the database it stores in: only the deliverer's own is stored in its transaction

    def message_id(self, attempt_id: int) -> str:
        """The message id a stored attempt is logged with (known before it is stored)."""
        ...

    def store(self, conn: Any, attempt_ids: list[int], now: datetime) -> None:
        """Store the rendered messages of ``attempt_ids`` in ``conn``'s transaction; a repeat stores nothing."""
        ...

    def stored_row(self, attempt: dict[str, Any], message: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The row of ``table`` that stores ``message`` for ``attempt`` (its id already given): how a stage
        writes a message for this channel in the very transaction that logs its attempt, the one copy of it."""
        ...

    table: Any  # where ``stored_row``'s rows go


def is_table_of(gateway: Any, engine: Any) -> bool:
    """Whether ``gateway`` is a table of this very database (a ``StoringGateway`` on ``engine``): what it stores
    is written in the transaction that logs it."""
    return (gateway is not None and all(hasattr(gateway, a) for a in ("store", "stored_row", "message_id"))
            and getattr(gateway, "engine", None) is engine)


def stored_in(gateways: Any, engine: Any, rate_limited: Any = ()) -> dict[str, "StoringGateway"]:
    """The channels of ``gateways`` that are tables of ``engine``'s database and under no provider rate limit:
    an attempt on one of them is final when it is logged (its message stored, itself ``sent``), in one write."""
    limited = set(rate_limited)
    return {channel: gateway for channel, gateway in gateways.items()
            if is_table_of(gateway, engine) and getattr(gateway, "provider", channel) not in limited}
