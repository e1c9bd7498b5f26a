"""The SendGrid adapter through the real ``sendgrid`` client, against an HTTP server on 127.0.0.1.

Nothing is mocked between the adapter and the socket: the official client builds
and sends the request with urllib, and the local server answers like SendGrid
(202, 400, 401, 413, 429, 500, or not in time). Every request body is validated
against SendGrid's own OpenAPI description of /v3/mail/send.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest

from campaigns.channels.base import OutgoingMessage, PermanentDeliveryError, TransientDeliveryError
from campaigns.channels.sendgrid_email import DeliveryOutcomeUnknown, RateLimited, SendGridEmailGateway
from campaigns.settings import PROJECT_ROOT

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)
SPEC_NAME = "sendgrid-mail-v3.openapi.json"
SPEC_PATH = next(p for p in (PROJECT_ROOT.parent / "shared" / "specs" / SPEC_NAME, Path(__file__).parent / "specs" / SPEC_NAME)
                 if p.is_file())
SPEC = json.loads(SPEC_PATH.read_text())
MAIL_SEND = {**SPEC, "$ref": "#/components/requestBodies/PostMailSend/content/application~1json/schema"}


def validate_against_spec(body: dict) -> None:
    jsonschema.Draft202012Validator(MAIL_SEND).validate(body)


class FakeSendGrid:
    """Answers the next request with the queued (status, headers, body, delay); records every request."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: list[tuple[int, dict, dict | None, float]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": json.loads(self.rfile.read(length) or b"{}")})
                status, headers, body, delay = outer.answers.pop(0) if outer.answers else (202, {}, None, 0)
                time.sleep(delay)
                payload = json.dumps(body).encode() if body is not None else b""
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout tests)

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, status: int, headers: dict | None = None, body: dict | None = None, delay: float = 0.0):
        self.answers.append((status, headers or {}, body, delay))


@pytest.fixture
def sendgrid_server():
    server = FakeSendGrid()
    yield server
    server.server.shutdown()
    server.server.server_close()


def gateway(server, **overrides) -> SendGridEmailGateway:
    options = dict(api_key="SG.test-key", from_email="collections@lender.example", from_name="Acme Lending",
                   asm_group_id=4242, sandbox=True, timeout_seconds=2.0, host=server.url)
    options.update(overrides)
    return SendGridEmailGateway(**options)


def message(**overrides) -> OutgoingMessage:
    values = dict(attempt_id=17, account_id="A0001234", channel="email", stage="soft_nudge",
                  recipient="ada.lovelace@example.com", subject="A quick note about your $120.50 payment",
                  text="Hi Ada, ... pay here https://pay.example.com/a/A0001234",
                  html="<p>Hi Ada, ... <a href='https://pay.example.com/a/A0001234'>pay</a></p>")
    values.update(overrides)
    return OutgoingMessage(**values)


def test_a_202_returns_the_message_id_and_the_request_is_what_sendgrid_expects(sendgrid_server):
    sendgrid_server.answer(202, {"X-Message-Id": "sg-abc123"})
    assert gateway(sendgrid_server).send(message(), NOW) == "sg-abc123"
    [request] = sendgrid_server.requests
    assert request["path"] == "/v3/mail/send"
    assert request["headers"]["Authorization"] == "Bearer SG.test-key"
    assert request["headers"]["Content-Type"] == "application/json"
    body = request["body"]
    validate_against_spec(body)
    assert body["personalizations"] == [{"to": [{"email": "ada.lovelace@example.com"}],
                                         "custom_args": {"attempt_id": "17"}}]
    assert body["from"] == {"email": "collections@lender.example", "name": "Acme Lending"}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["categories"] == ["stage-soft_nudge"]
    assert body["asm"] == {"group_id": 4242}
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}


def test_metadata_never_carries_personal_data(sendgrid_server):
    body = gateway(sendgrid_server).payload(message())
    metadata = json.dumps([body["personalizations"][0]["custom_args"], body["categories"]])
    assert "ada" not in metadata.lower() and "@" not in metadata and "A0001234" not in metadata


@pytest.mark.parametrize("overrides", [{"html": None}, {"asm_group_id": None, "sandbox": False, "from_name": None}])
def test_every_payload_shape_we_build_is_valid_for_the_spec(sendgrid_server, overrides):
    msg_overrides = {k: v for k, v in overrides.items() if k == "html"}
    gw_overrides = {k: v for k, v in overrides.items() if k != "html"}
    validate_against_spec(gateway(sendgrid_server, **gw_overrides).payload(message(**msg_overrides)))


def test_the_spec_check_does_reject_a_bad_payload():
    with pytest.raises(jsonschema.ValidationError):
        validate_against_spec({"personalizations": [{"to": [{"email": "x@example.com"}]}]})  # no "from"


@pytest.mark.parametrize(("status", "reason"), [(400, "provider_rejected"), (401, "provider_auth"),
                                                (403, "provider_auth"), (413, "message_too_large")])
def test_client_errors_fail_the_message_with_the_providers_reason_and_no_address(sendgrid_server, status, reason):
    sendgrid_server.answer(status, body={"errors": [
        {"field": "personalizations.0.to.0.email", "message": "ada.lovelace@example.com is not a valid address"}]})
    with pytest.raises(PermanentDeliveryError) as info:
        gateway(sendgrid_server).send(message(), NOW)
    assert info.value.reason == reason
    assert info.value.detail == f"SendGrid {status}: field personalizations.0.to.0.email"
    assert len(sendgrid_server.requests) == 1  # no retry of a 4xx


def test_429_is_transient_and_carries_retry_after(sendgrid_server):
    sendgrid_server.answer(429, {"Retry-After": "7"}, {"errors": [{"message": "too many requests"}]})
    with pytest.raises(RateLimited) as info:
        gateway(sendgrid_server).send(message(), NOW)
    assert isinstance(info.value, TransientDeliveryError) and info.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(sendgrid_server, status):
    sendgrid_server.answer(status)
    with pytest.raises(TransientDeliveryError):
        gateway(sendgrid_server).send(message(), NOW)


def test_a_timeout_after_the_request_went_out_is_an_unknown_outcome(sendgrid_server):
    sendgrid_server.answer(202, {"X-Message-Id": "late"}, delay=1.0)
    with pytest.raises(DeliveryOutcomeUnknown):
        gateway(sendgrid_server, timeout_seconds=0.2).send(message(), NOW)
    assert len(sendgrid_server.requests) == 1  # it did reach the server


def test_a_refused_connection_is_transient():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientDeliveryError, match="cannot reach SendGrid"):
        SendGridEmailGateway(api_key="k", from_email="a@b.example", host=f"http://127.0.0.1:{port}").send(message(), NOW)


def test_through_delivery_each_answer_ends_in_the_right_state(engine, sendgrid_server, ladder_file):
    from sqlalchemy import select

    from campaigns.db.models import ContactAttempt, Stage
    from campaigns.delivery.deliver import DeliveryInterrupted, deliver_queued
    from campaigns.ladder.config import load_ladder
    from campaigns.contact.pipeline import StageRun, enqueue_chunk, plan_stage_chunks
    from campaigns.runs.records import start_run
    from tests.conftest import AS_OF
    from tests.factories import add_account
    from tests.contact.test_pipeline import BRAND, POLICY, TEMPLATES

    for n in range(4):
        add_account(engine, f"A{n}", days_past_due=5)
    ladder = load_ladder(ladder_file)
    run = StageRun(start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW), Stage.soft_nudge, AS_OF, NOW)
    [bounds] = plan_stage_chunks(engine, ladder, Stage.soft_nudge, AS_OF, 100)
    enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, POLICY)
    sendgrid_server.answer(202, {"X-Message-Id": "m-0"})
    sendgrid_server.answer(400, body={"errors": [{"field": "from", "message": "bad sender"}]})
    sendgrid_server.answer(202, {"X-Message-Id": "m-2"}, delay=1.0)      # answered too late
    sendgrid_server.answer(503)                                          # provider down: stop, retry later
    gw = gateway(sendgrid_server, timeout_seconds=0.3)
    with pytest.raises(DeliveryInterrupted):
        deliver_queued(engine, {"email": gw}, stage="soft_nudge", as_of=AS_OF, now=NOW, policy=POLICY)
    with engine.connect() as conn:
        rows = conn.execute(select(ContactAttempt.account_id, ContactAttempt.status, ContactAttempt.reason,
                                   ContactAttempt.provider_message_id).order_by(ContactAttempt.id)).all()
    assert [tuple(r) for r in rows] == [
        ("A0", "sent", None, "m-0"),
        ("A1", "failed", "provider_rejected", None),
        ("A2", "unknown", "provider_error", None),
        ("A3", "deferred", "provider_retry", None),
    ]
    for request in sendgrid_server.requests:
        validate_against_spec(request["body"])


def test_a_rejection_that_quotes_the_content_keeps_only_the_field(sendgrid_server):
    """SendGrid's text can echo the message (``content 'Hi Avery Allen,' flagged``): only the field is kept."""
    sendgrid_server.answer(400, body={"errors": [
        {"field": "content.0.value", "message": "content 'Hi Avery Allen,' flagged"}, {"message": "Ada said no"}]})
    with pytest.raises(PermanentDeliveryError) as info:
        gateway(sendgrid_server).send(message(), NOW)
    assert info.value.detail == "SendGrid 400: field content.0.value"
