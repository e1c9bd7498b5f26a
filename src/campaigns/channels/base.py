"""The gateway interface every channel adapter implements."""

from __future__ import annotations

from dataclasses import dataclass, field
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


class DeliveryGateway(Protocol):
    #: True when the provider recognises a repeat of the same attempt id and does not
    #: deliver it twice: after a crash its interrupted attempts are simply sent again.
    #: False (the default) parks them as ``unknown`` until the provider's events settle them.
    idempotent: bool

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        """Hand one message to the provider; return its message id."""
        ...
