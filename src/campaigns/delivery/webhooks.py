"""The provider webhook receiver: an ASGI app (``campaigns serve-webhooks``), and the plan-acceptance pages.

``GET /plans/{token}`` shows a plan offer's options; ``POST /plans/{token}``
accepts the option a signed token names (see ``campaigns.money.links``).

``POST /webhooks/twilio/status`` (delivery reports; our attempt id is in the
callback URL) and ``POST /webhooks/twilio/inbound`` (replies: STOP and friends
opt the sender out of SMS at once) verify Twilio's signature.

``POST /webhooks/sendgrid/events`` verifies SendGrid's ECDSA signature over the
*raw* body with the official ``EventWebhook`` helper, refuses unsigned requests
and stale timestamps (replays), then applies the events once each. Responses and
logs carry counts only.

``POST /webhooks/payments`` takes a lender's processor's payment notifications as they happen, signed with a
shared secret the way our push webhook signs (``X-Campaigns-Timestamp``, ``X-Campaigns-Signature``:
``sha256=`` + hex HMAC-SHA256 of ``"{timestamp}.{raw body}"``): one event or an array, each with a payments
file's fields, recorded once per ``payment_id`` (``campaigns.money.payments.record_notifications``).

Nothing is read before it has to be: the signature headers (and SendGrid's
timestamp) are checked first, then the body is read up to ``max_body_bytes``
(413 beyond, whatever Content-Length says), and only then is the signature
verified. A signed batch with bad events in it is answered 200 once the good
ones are applied and the bad ones recorded (``provider_event_problems``):
answering 5xx would make the provider redeliver the good ones for a day and
still never get past the bad one.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qsl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.middleware import Middleware
from starlette.routing import Route

from campaigns.channels.push_webhook import SIGNATURE as CAMPAIGNS_SIGNATURE
from campaigns.channels.push_webhook import TIMESTAMP as CAMPAIGNS_TIMESTAMP
from campaigns.channels.push_webhook import verify_signature
from campaigns.contact.brand import Brand
from campaigns.delivery.abuse import Budget, LimitSources, SourceLimits
from campaigns.delivery.bodies import BodyTooLarge, read_body
from campaigns.delivery.customer_page import (NO_BRAND, CustomerPages, LocalPage, account_locale, browser_locale,
                                               customer_routes, plan_offer_page, plan_set_up_page, refusal)
from campaigns.customers.preferences import PreferenceError
from campaigns.customers.replies import receive_email_reply, receive_sms_reply
from campaigns.money.links import LinkError, make_token, parse_token
from campaigns.money.offers import accept_link, offer_for_link, plan_chosen_with
from campaigns.money.payments import record_notifications
from campaigns.ladder.config import PlanRules
from campaigns.delivery.provider_events import (
    apply_sendgrid_events,
    apply_twilio_status,
    record_problem,
    split_json_array,
    twilio_attempt_id,
)

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


DEFAULT_MAX_BODY_BYTES = 1_048_576
STAMP = re.compile(r"^[0-9]{1,12}$")


def too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"body larger than {limit} bytes"}, status_code=413)


async def signed_body(request: Request, signature_header: str, timestamp_header: str, tolerance_seconds: int,
                      clock: Callable[[], float], limit: int) -> tuple[str, str, bytes] | Response:
    """(signature, timestamp, body) of a request signed over a timestamp, or the answer that refuses it: 401
    unsigned or stale (before the body is read), 413 too large. The signature itself is the caller's to verify."""
    signature, stamp = request.headers.get(signature_header), request.headers.get(timestamp_header)
    if not signature or not stamp:
        return JSONResponse({"error": "unsigned request"}, status_code=401)
    if not STAMP.match(stamp) or abs(clock() - int(stamp)) > tolerance_seconds:
        return JSONResponse({"error": "stale or malformed timestamp"}, status_code=401)
    try:
        return signature, stamp, await read_body(request, limit)
    except BodyTooLarge:
        return too_large(limit)


def create_app(engine: Engine, sendgrid_public_key: str = "", tolerance_seconds: int = 300,
               clock: Callable[[], float] = time.time, *, twilio_auth_token: str = "",
               twilio_url_base: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               plan_links: PlanLinks | None = None, limits: SourceLimits | None = None,
               payments: PaymentNotifications | None = None,
               customer_pages: CustomerPages | None = None,
               inbound_email: InboundEmail | None = None) -> Starlette:
    """The receiver; each provider's routes exist only when its verification secret is configured, the
    plan-acceptance pages only when plans are (``plan_links``), the customers' own pages with their key
    (``customer_pages``), payment notifications only with their secret (``payments``), and email replies only
    with their path and password (``inbound_email``). Every route is behind ``limits`` (per source address:
    requests, and answers that refused a signature or a link; default ``default_limits()``)."""
    if (not sendgrid_public_key and not twilio_auth_token and plan_links is None and payments is None
            and customer_pages is None and inbound_email is None):
        raise ValueError("the webhook receiver needs SendGrid's verification key (CAMPAIGNS_SENDGRID_WEBHOOK_PUBLIC_KEY) "
                         "and/or Twilio's auth token (CAMPAIGNS_TWILIO_AUTH_TOKEN), plans to accept, the customer "
                         "pages' key, the payment notifications' secret (CAMPAIGNS_PAYMENT_WEBHOOK_SECRET), or the "
                         "inbound email's path and password")
    routes = []
    if payments is not None:
        routes.append(_payments_route(engine, payments, tolerance_seconds, clock, max_body_bytes))
    if plan_links is not None:
        routes.extend(_plan_routes(engine, plan_links))
    if customer_pages is not None:
        routes.extend(customer_routes(engine, customer_pages))
    if inbound_email is not None:
        routes.append(_inbound_email_route(engine, inbound_email))
    if sendgrid_public_key:
        routes.append(_sendgrid_route(engine, sendgrid_public_key, tolerance_seconds, clock, max_body_bytes))
    if twilio_auth_token:
        routes.extend(_twilio_routes(engine, twilio_auth_token, twilio_url_base, max_body_bytes))
    return Starlette(routes=routes, middleware=[Middleware(LimitSources, limits=limits or default_limits())])


def default_limits(requests_per_second: float = 100.0, burst: int = 500, failures_per_minute: float = 20.0,
                   failure_burst: int = 20, max_sources: int = 10_000) -> SourceLimits:
    """Per source: 100 requests a second (bursts of 500: a provider's retries after an outage come at once)
    and 20 refused signatures or links (then one more every 3 seconds)."""
    return SourceLimits(Budget(requests_per_second, burst), Budget(failures_per_minute / 60.0, failure_burst),
                        max_sources)


@dataclass(frozen=True)
class PlanLinks:
    """What the plan pages need: the signing key, the plan rules, the lender's zone, and the clock."""

    secret: bytes
    rules: PlanRules
    zone: ZoneInfo
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    brand: Brand | None = None  # the lender's name, colour and contacts on the pages


@dataclass(frozen=True)
class PaymentNotifications:
    """What the payment notifications need: the shared secret and the lender's zone (for the ledger's days)."""

    secret: str = field(repr=False)
    zone: ZoneInfo


@dataclass(frozen=True)
class InboundEmail:
    """SendGrid Inbound Parse: the secret part of its path and the basic-auth password in its URL
    (``https://inbound:<password>@hooks.example.com/webhooks/email/inbound/<path token>``)."""

    path_token: str = field(repr=False)
    password: str = field(repr=False)
    # A reply is a few lines; with the quoted message and its HTML, rarely over 30 KB. Larger (attachments,
    # floods) is refused unread: what the customer wrote is never in an attachment we would read anyway.
    max_body_bytes: int = 65_536


INBOUND_USER = "inbound"


def _multipart_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The text fields of a multipart/form-data body, read with the standard library's MIME parser (attachments
    are left out), so no multipart package is needed for one endpoint."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)
    fields: dict[str, str] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name or part.get_filename():
            continue
        payload = part.get_payload(decode=True) or b""
        fields[str(name)] = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return fields


def _inbound_email_route(engine: Engine, inbound: InboundEmail) -> Route:
    """Email replies (SendGrid Inbound Parse, "POST the parsed message"): on a secret path, with basic auth; 404 for
    another path, 401 without the password, 413 when too large (before it is read whole). Answered 200 once
    recorded, also when the sender is no customer of ours (SendGrid would retry a 5xx for days)."""
    import base64
    import hmac

    expected = "Basic " + base64.b64encode(f"{INBOUND_USER}:{inbound.password}".encode()).decode()

    async def inbound_email(request: Request) -> Response:
        if not hmac.compare_digest(request.path_params["path_token"].encode(), inbound.path_token.encode()):
            return JSONResponse({"error": "not found"}, status_code=404)
        if not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected.encode()):
            return JSONResponse({"error": "unauthorised"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="inbound"'})
        try:
            body = await read_body(request, inbound.max_body_bytes)
        except BodyTooLarge:
            return too_large(inbound.max_body_bytes)
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            return JSONResponse({"error": "expected multipart/form-data (SendGrid Inbound Parse)"}, status_code=400)
        fields = _multipart_fields(content_type, body)
        if "from" not in fields:
            return JSONResponse({"error": "no sender (from)"}, status_code=400)
        message_id = None
        for line in fields.get("headers", "").splitlines():
            if line.lower().startswith("message-id:"):
                message_id = line.split(":", 1)[1].strip()[:100] or None
        text = fields.get("text") or re.sub(r"<[^>]+>", " ", fields.get("html", ""))  # an HTML-only email
        result = await run_in_threadpool(receive_email_reply, engine, fields["from"], fields.get("subject", ""),
                                         text, datetime.now(timezone.utc), message_id=message_id)
        return JSONResponse({"kind": result.kind, "items": result.items, "duplicate": result.duplicate})

    return Route("/webhooks/email/inbound/{path_token}", inbound_email, methods=["POST"])


def _payments_route(engine: Engine, payments: PaymentNotifications, tolerance_seconds: int,
                    clock: Callable[[], float], max_body_bytes: int) -> Route:
    """A processor's payment notifications. Unsigned or stale: 401 before the body is read; too large: 413; a bad
    signature: 403; not JSON or not events: 400. Then every event is checked as a payments file's row: 200 when
    each was recorded (or already was), 422 with each refused event's place, field and message (ids and codes
    only) when any was refused; the good ones are recorded either way, so sending the whole batch again is safe."""

    async def notified(request: Request) -> JSONResponse:
        signed = await signed_body(request, CAMPAIGNS_SIGNATURE, CAMPAIGNS_TIMESTAMP, tolerance_seconds, clock,
                                   max_body_bytes)
        if isinstance(signed, Response):
            return signed
        signature, stamp, body = signed
        if not verify_signature(payments.secret, stamp, body, signature, now=clock(),
                                tolerance_seconds=tolerance_seconds):
            return JSONResponse({"error": "bad signature"}, status_code=403)
        try:
            # Amounts as Decimal from the start: a JSON number is never a float on its way to the ledger.
            events = json.loads(body, parse_float=Decimal)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's decoder goes
            return JSONResponse({"error": "expected a JSON object or array of payment events"}, status_code=400)
        if isinstance(events, dict):
            events = [events]
        if not isinstance(events, list) or not events:
            return JSONResponse({"error": "expected a JSON object or array of payment events"}, status_code=400)
        now = datetime.fromtimestamp(clock(), timezone.utc)  # the clock the signature's timestamp is checked by
        report = await run_in_threadpool(record_notifications, engine, events, now, payments.zone)
        answer = {"recorded": report.payments_loaded + report.reversals_loaded + report.refunds_loaded,
                  "already_recorded": report.already_recorded,
                  "refused": [{"event": e.row, "field": e.field, "error": e.message} for e in report.errors]}
        return JSONResponse(answer, status_code=422 if report.errors else 200)

    return Route("/webhooks/payments", notified, methods=["POST"])


def _plan_routes(engine: Engine, links: PlanLinks) -> list[Route]:
    """``GET /plans/{token}`` shows the offer (and changes nothing: mail scanners open links); ``POST`` accepts the
    option the token names. A forged, expired or used link is refused (403, 410, 409) and says only that. Both
    in the account's customer's language, with the brand of ``links`` (``campaigns.delivery.customer_page``)."""
    brand = links.brand or NO_BRAND

    def page_for(account_id: str | None, request: Request) -> LocalPage:
        locale = (account_locale(engine, account_id) if account_id
                  else browser_locale(request.headers.get("accept-language", "")))
        return LocalPage(locale, brand)

    def account_of(token: str) -> str | None:
        try:
            return parse_token(token).account_id
        except LinkError:
            return None

    async def show(request: Request) -> Response:
        token = request.path_params["token"]
        now = links.clock()
        try:
            offer = await run_in_threadpool(offer_for_link, engine, token, now, links.secret, links.rules)
        except LinkError as exc:
            return await _refused(exc, token, request)
        link = parse_token(token)
        accept = {o["option"]: "/plans/" + make_token(links.secret, offer["account_id"], link.offered_on,
                                                        o["option"], offer["expires_at"]) for o in offer["options"]}
        # Links work until the end of the last valid day, in the lender's time zone.
        last_day = (offer["expires_at"].astimezone(links.zone) - timedelta(days=1)).date()
        page = await run_in_threadpool(page_for, offer["account_id"], request)
        return plan_offer_page(page, offer, accept, last_day)

    async def accept(request: Request) -> Response:
        token = request.path_params["token"]
        now = links.clock()
        try:
            plan = await run_in_threadpool(accept_link, engine, token, now, now.astimezone(links.zone).date(),
                                           links.rules, links.secret, links.zone)
        except LinkError as exc:
            return await _refused(exc, token, request)
        return plan_set_up_page(await run_in_threadpool(page_for, plan.account_id, request), plan)

    async def _refused(exc: LinkError, token: str, request: Request) -> Response:
        # A second click on the button, or the email's link opened again, after the plan was chosen with it:
        # the customer sees their plan, not an error.
        chosen = (await run_in_threadpool(plan_chosen_with, engine, token, links.secret)
                  if exc.status == 409 else None)
        if chosen is not None:
            return plan_set_up_page(await run_in_threadpool(page_for, chosen.account_id, request), chosen, again=True)
        # Only a link that is genuinely ours (used or expired) is answered in its customer's language.
        account = account_of(token) if exc.status in (409, 410) else None
        page = await run_in_threadpool(page_for, account, request)
        if exc.status == 409 and "Nothing is owed" in str(exc):
            return page.message(page._("Nothing is owed on this account"),
                                [page._("Thank you. There is nothing more to pay.")], 409)
        if exc.status == 409:
            return page.message(page._("This offer cannot be accepted any more"),
                                [page._("Call us and we will find a way together.")], 409)
        return refusal(page, exc)

    return [Route("/plans/{token}", show, methods=["GET"]), Route("/plans/{token}", accept, methods=["POST"])]


def _twilio_routes(engine: Engine, auth_token: str, url_base: str | None, max_body_bytes: int) -> list[Route]:
    """Twilio's status callbacks and inbound messages, checked with the official ``RequestValidator``.

    Twilio signs the exact public URL it called: behind a proxy, set
    CAMPAIGNS_TWILIO_WEBHOOK_URL_BASE to the public scheme and host.
    """
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(auth_token)

    async def verified_form(request: Request) -> dict[str, str] | Response:
        """The signed form, or the response that refuses the request (nothing is read without a signature)."""
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            return JSONResponse({"error": "bad or missing signature"}, status_code=403)
        try:
            body = await read_body(request, max_body_bytes)
        except BodyTooLarge:
            return too_large(max_body_bytes)
        # Twilio posts application/x-www-form-urlencoded; parsed here without a multipart dependency.
        form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        url = str(request.url)
        if url_base:
            url = url_base.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not validator.validate(url, form, signature):
            return JSONResponse({"error": "bad or missing signature"}, status_code=403)
        return form

    async def status(request: Request) -> Response:
        form = await verified_form(request)
        if isinstance(form, Response):
            return form
        now = datetime.now(timezone.utc)
        raw = request.query_params.get("attempt_id")
        attempt_id = twilio_attempt_id(raw)
        if raw and attempt_id is None:  # signed by Twilio, so our callback URL carried it: record, do not retry
            record_problem(engine, "twilio", now, "attempt_id: not one of our attempt ids")
            return JSONResponse({"applied": "rejected"})
        return JSONResponse({"applied": apply_twilio_status(engine, form, attempt_id, now)})

    async def inbound(request: Request) -> Response:
        form = await verified_form(request)
        if isinstance(form, Response):
            return form
        try:
            # A stop opts out at once; anything else (HELP, 帮助, free text) reaches a person on the worklist.
            await run_in_threadpool(receive_sms_reply, engine, form.get("From", ""), form.get("Body", ""),
                                    datetime.now(timezone.utc),
                                    message_id=form.get("MessageSid") or form.get("SmsSid") or None)
        except PreferenceError:
            pass  # not a phone number we could act on; Twilio needs no retry
        # An empty TwiML answer: the Messaging Service sends its own STOP confirmation.
        return Response("<Response/>", media_type="application/xml")

    return [Route("/webhooks/twilio/status", status, methods=["POST"]),
            Route("/webhooks/twilio/inbound", inbound, methods=["POST"])]


def _sendgrid_route(engine: Engine, sendgrid_public_key: str, tolerance_seconds: int,
                    clock: Callable[[], float], max_body_bytes: int) -> Route:
    verifier = EventWebhook(sendgrid_public_key)

    async def sendgrid_events(request: Request) -> JSONResponse:
        signed = await signed_body(request, SIGNATURE, TIMESTAMP, tolerance_seconds, clock, max_body_bytes)
        if isinstance(signed, Response):
            return signed
        signature, stamp, body = signed
        raw = body.decode("utf-8", errors="replace")
        try:
            valid = verifier.verify_signature(raw, signature, stamp)
        except (ValueError, TypeError):
            valid = False
        if not valid:
            return JSONResponse({"error": "bad signature"}, status_code=403)
        try:
            events = split_json_array(raw)
        except ValueError:
            return JSONResponse({"error": "expected a JSON array of events"}, status_code=400)
        report = apply_sendgrid_events(engine, events, datetime.now(timezone.utc))
        return JSONResponse({"applied": report.as_dict()})

    return Route("/webhooks/sendgrid/events", sendgrid_events, methods=["POST"])
