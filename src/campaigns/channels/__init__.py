"""Channels: a small gateway interface, and the adapters behind it.

A gateway takes one rendered message and either returns the provider's message
id, or raises ``TransientDeliveryError`` (the provider did not take it; safe to
try again later) or ``PermanentDeliveryError`` (it never will; the attempt fails
with the reason). Any other exception means "we do not know whether it went
out", and the attempt is parked as ``unknown`` rather than sent again.
"""

from campaigns.channels.base import (
    DeliveryGateway,
    DeliveryOutcomeUnknown,
    RateLimited,
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from campaigns.channels.agent import AgentWorklistGateway
from campaigns.channels.outbox import OutboxGateway

__all__ = [
    "AgentWorklistGateway",
    "DeliveryGateway",
    "DeliveryOutcomeUnknown",
    "RateLimited",
    "OutboxGateway",
    "OutgoingMessage",
    "PermanentDeliveryError",
    "TransientDeliveryError",
]
