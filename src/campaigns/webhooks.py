"""The provider webhook receiver: an ASGI app (``campaigns serve-webhooks``).

``POST /webhooks/sendgrid/events`` verifies SendGrid's ECDSA signature over the
*raw* body with the official ``EventWebhook`` helper, refuses unsigned requests
and stale timestamps (replays), then applies the events once each. Responses and
logs carry counts only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone

from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from campaigns.provider_events import apply_sendgrid_events

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def create_app(engine: Engine, sendgrid_public_key: str, tolerance_seconds: int = 300,
               clock: Callable[[], float] = time.time) -> Starlette:
    if not sendgrid_public_key:
        raise ValueError("the webhook receiver needs SendGrid's verification key (CAMPAIGNS_SENDGRID_WEBHOOK_PUBLIC_KEY)")
    verifier = EventWebhook(sendgrid_public_key)

    async def sendgrid_events(request: Request) -> JSONResponse:
        signature, stamp = request.headers.get(SIGNATURE), request.headers.get(TIMESTAMP)
        if not signature or not stamp:
            return JSONResponse({"error": "unsigned request"}, status_code=401)
        if not stamp.isdigit() or abs(clock() - int(stamp)) > tolerance_seconds:
            return JSONResponse({"error": "stale or malformed timestamp"}, status_code=401)
        raw = (await request.body()).decode("utf-8", errors="replace")
        try:
            valid = verifier.verify_signature(raw, signature, stamp)
        except (ValueError, TypeError):
            valid = False
        if not valid:
            return JSONResponse({"error": "bad signature"}, status_code=403)
        try:
            events = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if not isinstance(events, list):
            return JSONResponse({"error": "expected a JSON array of events"}, status_code=400)
        report = apply_sendgrid_events(engine, events, datetime.now(timezone.utc))
        return JSONResponse({"applied": report.as_dict()})

    return Starlette(routes=[Route("/webhooks/sendgrid/events", sendgrid_events, methods=["POST"])])
