"""In-app push through the wallet's own notification service: one signed JSON POST per message (httpx).

The request, which the receiving service is expected to honour:

- body: ``{"attempt_id", "user_id" (our customer id, which is the wallet's user), "stage",
  "title", "body", "deep_link"}``;
- ``X-Campaigns-Timestamp``: Unix seconds; ``X-Campaigns-Signature``:
  ``sha256=`` + hex HMAC-SHA256 of ``"{timestamp}.{raw body}"`` with the shared
  secret (``verify_signature`` below is the reference check for the receiver);
- ``Idempotency-Key``: ``attempt-{id}``: a repeat is answered as the first and not
  shown twice. That is what makes this channel *idempotent* for crash recovery.

Answers: 2xx → sent (the service's ``id`` if it returns one); 404/410 → the user
has no app or device (``invalid_address``); 429 (``Retry-After``) and 5xx, or no
connection → transient; other 4xx → permanent; a timeout after the request went
out → unknown (settled by re-sending under the same idempotency key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from campaigns.channels.base import (
    DeliveryOutcomeUnknown,
    OutgoingMessage,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
    retry_after_seconds,
)

SIGNATURE = "X-Campaigns-Signature"
TIMESTAMP = "X-Campaigns-Timestamp"


def sign(secret: str, timestamp: str, raw_body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str, raw_body: bytes, signature: str, *, now: float,
                     tolerance_seconds: int = 300) -> bool:
    """What the receiving service should check: a fresh timestamp and a matching HMAC (constant-time)."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, raw_body), signature)


class PushWebhookGateway:
    provider = "push"
    idempotent = True  # the service honours Idempotency-Key

    def __init__(self, url: str, secret: str, *, timeout_seconds: float = 5.0,
                 transport: httpx.BaseTransport | None = None, clock: Callable[[], float] = time.time):
        if not url:
            raise ValueError("the push gateway needs CAMPAIGNS_PUSH_WEBHOOK_URL")
        if not secret:
            raise ValueError("the push gateway needs a signing secret (CAMPAIGNS_PUSH_WEBHOOK_SECRET)")
        self.url, self.secret, self.clock = url, secret, clock
        self.client = httpx.Client(timeout=timeout_seconds, transport=transport)

    def body(self, message: OutgoingMessage) -> dict[str, Any]:
        return {"attempt_id": message.attempt_id, "user_id": message.recipient, "stage": message.stage,
                "title": message.subject or "", "body": message.text,
                "deep_link": message.payload.get("deep_link")}

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        if not message.recipient:
            raise PermanentDeliveryError("invalid_address", "no user id")
        raw = json.dumps(self.body(message), separators=(",", ":"), ensure_ascii=False).encode()
        stamp = str(int(self.clock()))
        headers = {"Content-Type": "application/json", TIMESTAMP: stamp, SIGNATURE: sign(self.secret, stamp, raw),
                   "Idempotency-Key": f"attempt-{message.attempt_id}"}
        try:
            response = self.client.post(self.url, content=raw, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            raise TransientDeliveryError("cannot reach the push service") from None
        except httpx.TransportError as exc:  # read/write timeout, broken connection: it may have arrived
            raise DeliveryOutcomeUnknown(f"push service: {type(exc).__name__}") from exc
        status = response.status_code
        if 200 <= status < 300:
            try:
                provider_id = response.json().get("id")
            except (ValueError, AttributeError):
                provider_id = None
            return str(provider_id or f"push-{message.attempt_id}")[:128]
        if status == 429:
            raise RateLimited("push service rate limit (429)", retry_after_seconds(response.headers))
        if status >= 500:
            raise TransientDeliveryError(f"push service {status}")
        reason = {404: "invalid_address", 410: "invalid_address", 401: "provider_auth",
                  403: "provider_auth"}.get(status, "provider_rejected")
        raise PermanentDeliveryError(reason, f"push service {status}")


__all__ = ["PushWebhookGateway", "SIGNATURE", "TIMESTAMP", "sign", "verify_signature"]
