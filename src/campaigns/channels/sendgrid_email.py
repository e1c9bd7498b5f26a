"""Email through SendGrid's v3 Mail Send API, with the official ``sendgrid`` client.

One message per request: our rendered subject, text and HTML; the attempt id in
the personalization's ``custom_args`` (the only metadata that leaves us: never a
name or an address in metadata); a category per stage; the unsubscribe group;
sandbox mode and a request timeout from settings (the client has none by default).

Outcomes map onto the gateway contract:
202 → the ``X-Message-Id``; 429 and 5xx, or a refused connection → transient
(retried later); any other 4xx → permanent, with the fields the provider named (never its text);
a timeout once the request may have gone out → re-raised as ``DeliveryOutcomeUnknown``,
so the attempt is parked as ``unknown`` and never blindly re-sent.
"""

from __future__ import annotations

import json
import logging
import socket
from datetime import datetime
from typing import Any
from urllib.error import URLError

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from campaigns.channels.base import (
    DeliveryOutcomeUnknown,
    OutgoingMessage,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
    retry_after_seconds,
)

# python_http_client logs whole payloads (addresses, bodies) at DEBUG: never let that through.
logging.getLogger("python_http_client.client").setLevel(logging.INFO)


def _provider_reason(body: bytes | str | None) -> str:
    """Which fields SendGrid objected to, never its message text: that can quote the content or the address."""
    try:
        errors = json.loads(body or b"{}").get("errors", [])
        fields = sorted({str(e.get("field"))[:80] for e in errors if isinstance(e, dict) and e.get("field")})
    except (ValueError, AttributeError, TypeError):
        return "unreadable error body"
    return f"field {', '.join(fields)}"[:500] if fields else "no field named"


class SendGridEmailGateway:
    provider = "sendgrid"
    idempotent = False  # Mail Send has no idempotency key: a repeat is a second email

    def __init__(
        self,
        api_key: str,
        from_email: str,
        from_name: str | None = None,
        asm_group_id: int | None = None,
        sandbox: bool = False,
        timeout_seconds: float = 10.0,
        host: str = "https://api.sendgrid.com",
    ):
        if not api_key:
            raise ValueError("the SendGrid gateway needs an API key (CAMPAIGNS_SENDGRID_API_KEY)")
        self.client = SendGridAPIClient(api_key=api_key, host=host)
        self.from_email, self.from_name = from_email, from_name
        self.asm_group_id, self.sandbox, self.timeout = asm_group_id, sandbox, timeout_seconds

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        """The Mail Send request body (validated against SendGrid's OpenAPI spec in the tests)."""
        sender = {"email": self.from_email, **({"name": self.from_name} if self.from_name else {})}
        content = [{"type": "text/plain", "value": message.text}]
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        body: dict[str, Any] = {
            "personalizations": [{
                "to": [{"email": message.recipient}],
                "custom_args": {"attempt_id": str(message.attempt_id)},
            }],
            "from": sender,
            "subject": message.subject or "",
            "content": content,
            "categories": [f"stage-{message.stage}"],
            "mail_settings": {"sandbox_mode": {"enable": self.sandbox}},
        }
        if self.asm_group_id is not None:
            body["asm"] = {"group_id": self.asm_group_id}
        return body

    def send(self, message: OutgoingMessage, now: datetime) -> str:
        if not message.recipient:
            raise PermanentDeliveryError("invalid_address", "no recipient")
        try:
            response = self.client.client.mail.send.post(request_body=self.payload(message), timeout=self.timeout)
        except HTTPError as exc:
            status = exc.status_code
            if status == 429:
                raise RateLimited("SendGrid rate limit (429)", retry_after_seconds(exc.headers)) from None
            if status >= 500:
                raise TransientDeliveryError(f"SendGrid {status}") from None
            reason = {400: "provider_rejected", 401: "provider_auth", 403: "provider_auth",
                      413: "message_too_large"}.get(status, "provider_rejected")
            raise PermanentDeliveryError(reason, f"SendGrid {status}: {_provider_reason(exc.body)}") from None
        except (TimeoutError, socket.timeout) as exc:
            raise DeliveryOutcomeUnknown("timed out waiting for SendGrid's answer") from exc
        except URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise DeliveryOutcomeUnknown("timed out waiting for SendGrid's answer") from exc
            raise TransientDeliveryError(f"cannot reach SendGrid: {type(exc.reason).__name__}") from None
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return message_id or f"sendgrid-{message.attempt_id}"
