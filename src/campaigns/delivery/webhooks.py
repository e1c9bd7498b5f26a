"""The provider webhook receiver: an ASGI app (``campaigns serve-webhooks``).

``POST /webhooks/twilio/status`` (delivery reports; our attempt id is in the
callback URL) and ``POST /webhooks/twilio/inbound`` (replies: STOP and friends
opt the sender out of SMS at once) verify Twilio's signature.

``POST /webhooks/sendgrid/events`` verifies SendGrid's ECDSA signature over the
*raw* body with the official ``EventWebhook`` helper, refuses unsigned requests
and stale timestamps (replays), then applies the events once each. Responses and
logs carry counts only.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl
from collections.abc import Callable
from datetime import datetime, timezone

from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from campaigns.customers.preferences import PreferenceError, receive_sms
from campaigns.delivery.provider_events import apply_sendgrid_events, apply_twilio_status

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def create_app(engine: Engine, sendgrid_public_key: str = "", tolerance_seconds: int = 300,
               clock: Callable[[], float] = time.time, *, twilio_auth_token: str = "",
               twilio_url_base: str | None = None) -> Starlette:
    """The receiver; each provider's routes exist only when its verification secret is configured."""
    if not sendgrid_public_key and not twilio_auth_token:
        raise ValueError("the webhook receiver needs SendGrid's verification key (CAMPAIGNS_SENDGRID_WEBHOOK_PUBLIC_KEY) "
                         "and/or Twilio's auth token (CAMPAIGNS_TWILIO_AUTH_TOKEN)")
    routes = []
    if sendgrid_public_key:
        routes.append(_sendgrid_route(engine, sendgrid_public_key, tolerance_seconds, clock))
    if twilio_auth_token:
        routes.extend(_twilio_routes(engine, twilio_auth_token, twilio_url_base))
    return Starlette(routes=routes)


def _twilio_routes(engine: Engine, auth_token: str, url_base: str | None) -> list[Route]:
    """Twilio's status callbacks and inbound messages, checked with the official ``RequestValidator``.

    Twilio signs the exact public URL it called: behind a proxy, set
    CAMPAIGNS_TWILIO_WEBHOOK_URL_BASE to the public scheme and host.
    """
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(auth_token)

    async def verified_form(request: Request) -> dict[str, str] | None:
        # Twilio posts application/x-www-form-urlencoded; parsed here without a multipart dependency.
        form = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True))
        url = str(request.url)
        if url_base:
            url = url_base.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        signature = request.headers.get("X-Twilio-Signature", "")
        return form if signature and validator.validate(url, form, signature) else None

    async def status(request: Request) -> Response:
        form = await verified_form(request)
        if form is None:
            return JSONResponse({"error": "bad or missing signature"}, status_code=403)
        raw = request.query_params.get("attempt_id", "")
        outcome = apply_twilio_status(engine, form, int(raw) if raw.isdigit() else None, datetime.now(timezone.utc))
        return JSONResponse({"applied": outcome})

    async def inbound(request: Request) -> Response:
        form = await verified_form(request)
        if form is None:
            return JSONResponse({"error": "bad or missing signature"}, status_code=403)
        try:
            receive_sms(engine, form.get("From", ""), form.get("Body", ""), datetime.now(timezone.utc))
        except PreferenceError:
            pass  # not a phone number we could act on; Twilio needs no retry
        # An empty TwiML answer: the Messaging Service sends its own STOP confirmation.
        return Response("<Response/>", media_type="application/xml")

    return [Route("/webhooks/twilio/status", status, methods=["POST"]),
            Route("/webhooks/twilio/inbound", inbound, methods=["POST"])]


def _sendgrid_route(engine: Engine, sendgrid_public_key: str, tolerance_seconds: int,
                    clock: Callable[[], float]) -> Route:
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

    return Route("/webhooks/sendgrid/events", sendgrid_events, methods=["POST"])
