"""SMS through the real ``twilio`` client, its HTTP layer (requests) intercepted with ``responses``."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
import requests
import responses
from sqlalchemy import select, update
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from campaigns.channels import DeliveryOutcomeUnknown, OutgoingMessage, PermanentDeliveryError, TransientDeliveryError
from campaigns.channels.base import RateLimited
from campaigns.channels.twilio_sms import TwilioSmsGateway
from campaigns.db.models import ContactAttempt, Customer, OptOutEvent
from campaigns.contact.sms_length import sms_length
from campaigns.delivery.webhooks import create_app
from tests.conftest import NOW
from tests.delivery.test_provider_events import attempt, status_of

SID, TOKEN = "AC" + "0" * 32, "test-token"
URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
MESSAGE = OutgoingMessage(attempt_id=42, account_id="A1", channel="sms", stage="soft_nudge",
                          recipient="+12125550123", subject=None, text="Acme: $120.50 was due. Reply STOP to opt out.",
                          html=None, payload={"segments": 1})


def gateway(**kwargs) -> TwilioSmsGateway:
    options = {"messaging_service_sid": "MG" + "1" * 32,
               "status_callback_url": "https://hooks.example.com/webhooks/twilio/status", **kwargs}
    return TwilioSmsGateway(SID, TOKEN, **options)


def created(sid="SM" + "a" * 32) -> dict:
    return {"sid": sid, "status": "accepted", "account_sid": SID}


@pytest.mark.parametrize("text, encoding, segments", [
    ("a" * 160, "GSM-7", 1), ("a" * 161, "GSM-7", 2), ("{" * 80, "GSM-7", 1), ("{" * 81, "GSM-7", 2),
    ("€" * 77, "GSM-7", 1), ("中" * 70, "UCS-2", 1), ("中" * 71, "UCS-2", 2), ("中" * 135, "UCS-2", 3),
    ("a" * 69 + "’", "UCS-2", 1), ("😀" * 36, "UCS-2", 2),
])
def test_sms_length_counts_gsm7_and_ucs2_segments(text, encoding, segments):
    assert (sms_length(text).encoding, sms_length(text).segments) == (encoding, segments)


@responses.activate
def test_a_message_is_created_with_the_callback_carrying_only_our_attempt_id():
    responses.post(URL, json=created(), status=201)
    assert gateway().send(MESSAGE, NOW) == "SM" + "a" * 32
    sent = parse_qs(responses.calls[0].request.body)
    assert sent == {"To": ["+12125550123"], "Body": [MESSAGE.text], "MessagingServiceSid": ["MG" + "1" * 32],
                    "StatusCallback": ["https://hooks.example.com/webhooks/twilio/status?attempt_id=42"]}
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_a_sender_number_is_used_when_there_is_no_messaging_service():
    responses.post(URL, json=created(), status=201)
    TwilioSmsGateway(SID, TOKEN, from_number="+1 212 555 0199").send(MESSAGE, NOW)
    assert parse_qs(responses.calls[0].request.body)["From"] == ["+12125550199"]


@pytest.mark.parametrize("status, code, error, reason", [
    (400, 21610, PermanentDeliveryError, "opted_out"),
    (400, 21211, PermanentDeliveryError, "invalid_address"),
    (400, 21602, PermanentDeliveryError, "provider_rejected"),
    (401, 20003, PermanentDeliveryError, "provider_auth"),
    (429, 20429, RateLimited, None),
    (500, None, TransientDeliveryError, None),
    (503, None, TransientDeliveryError, None),
])
@responses.activate
def test_error_answers_map_onto_the_attempt_states(status, code, error, reason):
    responses.post(URL, json={"code": code, "message": "nope +12125550123", "status": status}, status=status)
    with pytest.raises(error) as info:
        gateway().send(MESSAGE, NOW)
    if reason:
        assert info.value.reason == reason
        assert "+1212" not in str(info.value)  # the number in Twilio's message is not repeated


@responses.activate
def test_a_read_timeout_is_unknown_and_a_refused_connection_is_transient():
    responses.post(URL, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(DeliveryOutcomeUnknown):
        gateway().send(MESSAGE, NOW)
    responses.replace(responses.POST, URL, body=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(TransientDeliveryError):
        gateway().send(MESSAGE, NOW)


def test_a_number_that_is_not_e164_never_leaves():
    bad = OutgoingMessage(**{**MESSAGE.__dict__, "recipient": "555-0123"})
    with responses.RequestsMock() as mocked, pytest.raises(PermanentDeliveryError) as info:
        gateway().send(bad, NOW)
    assert info.value.reason == "invalid_address" and len(mocked.calls) == 0


def test_settings_must_name_credentials_and_a_sender():
    with pytest.raises(ValueError, match="ACCOUNT_SID"):
        TwilioSmsGateway("", "")
    with pytest.raises(ValueError, match="sender"):
        TwilioSmsGateway(SID, TOKEN)
    with pytest.raises(ValueError, match="FROM_NUMBER"):
        TwilioSmsGateway(SID, TOKEN, from_number="12")


def signed_post(client, path: str, form: dict, token: str = TOKEN):
    url = f"http://testserver{path}"
    signature = RequestValidator(token).compute_signature(url, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_status_callbacks_settle_attempts_and_a_stop_error_opts_the_number_out(engine):
    delivered, stopped = attempt(engine, "A1", "sent"), attempt(engine, "A2", "sent")
    with engine.begin() as conn:
        conn.execute(update(ContactAttempt).values(channel="sms"))
    client = TestClient(create_app(engine, twilio_auth_token=TOKEN))
    ok = signed_post(client, f"/webhooks/twilio/status?attempt_id={delivered}",
                     {"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert ok.status_code == 200 and ok.json() == {"applied": "delivered"}
    again = signed_post(client, f"/webhooks/twilio/status?attempt_id={delivered}",
                        {"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert again.json() == {"applied": "duplicate"}
    signed_post(client, f"/webhooks/twilio/status?attempt_id={stopped}",
                {"MessageSid": "SM2", "MessageStatus": "undelivered", "ErrorCode": "21610"})
    assert status_of(engine, delivered)[0] == "delivered"
    assert status_of(engine, stopped)[:2] == ("failed", "dropped")
    with engine.connect() as conn:
        assert conn.execute(select(Customer.sms_opt_out).where(Customer.id == "C-A2")).scalar_one() is True
        assert conn.execute(select(OptOutEvent.source)).scalars().all() == ["provider_event"]


def test_an_unsigned_or_forged_callback_is_refused(engine):
    a = attempt(engine, "A1", "sent")
    client = TestClient(create_app(engine, twilio_auth_token=TOKEN))
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    assert client.post(f"/webhooks/twilio/status?attempt_id={a}", data=form).status_code == 403
    forged = signed_post(client, f"/webhooks/twilio/status?attempt_id={a}", form, token="another-token")
    assert forged.status_code == 403 and status_of(engine, a)[0] == "sent"


def test_an_inbound_stop_reply_opts_the_sender_out_of_sms(engine):
    attempt(engine, "A1", "sent")
    client = TestClient(create_app(engine, twilio_auth_token=TOKEN))
    reply = signed_post(client, "/webhooks/twilio/inbound", {"From": "+12125550123", "Body": "STOP", "MessageSid": "SM9"})
    assert reply.status_code == 200 and reply.text == "<Response/>"
    with engine.connect() as conn:
        assert conn.execute(select(Customer.sms_opt_out).where(Customer.id == "C-A1")).scalar_one() is True
    ordinary = signed_post(client, "/webhooks/twilio/inbound", {"From": "+12125550123", "Body": "ok thanks"})
    assert ordinary.status_code == 200


def test_an_inbound_stop_that_twilio_delivers_twice_is_recorded_once(engine):
    """Issue 24 item 18: a redelivered STOP (the same MessageSid) gave the customer two opt-out events."""
    from sqlalchemy import func

    from campaigns.db.models import OptOutEvent, ProviderEvent

    attempt(engine, "A1", "sent")
    client = TestClient(create_app(engine, twilio_auth_token=TOKEN))
    form = {"From": "+12125550123", "Body": "STOP", "MessageSid": "SM-twice"}
    for _ in range(3):
        assert signed_post(client, "/webhooks/twilio/inbound", form).status_code == 200
    # A new STOP (its own MessageSid) is a new request, and is recorded.
    assert signed_post(client, "/webhooks/twilio/inbound", {**form, "MessageSid": "SM-again"}).status_code == 200
    with engine.connect() as conn:
        events = conn.execute(select(OptOutEvent.customer_id, OptOutEvent.channel, OptOutEvent.keyword)).all()
        kept = conn.execute(select(ProviderEvent.event_id, ProviderEvent.event, ProviderEvent.message_id)
                            .order_by(ProviderEvent.event_id)).all()
        assert conn.execute(select(func.count()).select_from(OptOutEvent)).scalar_one() == 2
    assert [tuple(e) for e in events] == [("C-A1", "sms", "stop")] * 2
    assert [tuple(k) for k in kept] == [("inbound:SM-again", "inbound_stop", "SM-again"),
                                        ("inbound:SM-twice", "inbound_stop", "SM-twice")]


def test_the_signature_is_checked_against_the_public_url_behind_a_proxy(engine):
    a = attempt(engine, "A1", "sent")
    client = TestClient(create_app(engine, twilio_auth_token=TOKEN, twilio_url_base="https://hooks.example.com"))
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    public = f"https://hooks.example.com/webhooks/twilio/status?attempt_id={a}"
    signature = RequestValidator(TOKEN).compute_signature(public, form)
    answer = client.post(f"/webhooks/twilio/status?attempt_id={a}", data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200 and json.loads(answer.text)["applied"] == "delivered"


def test_a_callback_with_an_attempt_id_that_is_not_ours_is_recorded_not_a_500(engine):
    from campaigns.db.models import ProviderEventProblem

    client = TestClient(create_app(engine, twilio_auth_token=TOKEN))
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    answer = signed_post(client, f"/webhooks/twilio/status?attempt_id={'9' * 30}", form)
    assert answer.status_code == 200 and answer.json() == {"applied": "rejected"}
    bad_code = signed_post(client, "/webhooks/twilio/status?attempt_id=1",
                           {**form, "ErrorCode": "1" * 5000})
    assert bad_code.status_code == 200 and bad_code.json() == {"applied": "rejected"}
    with engine.connect() as conn:
        assert conn.execute(select(ProviderEventProblem.problem)).scalars().all() == [
            "attempt_id: not one of our attempt ids", "ErrorCode: string_pattern_mismatch"]


def test_twilio_bodies_are_not_read_without_a_signature_nor_beyond_the_limit(engine):
    client = TestClient(create_app(engine, twilio_auth_token=TOKEN, max_body_bytes=4096))
    big = {"From": "+12125550123", "Body": "x" * 10_000}
    assert client.post("/webhooks/twilio/inbound", data=big).status_code == 403      # no signature: not read
    answer = signed_post(client, "/webhooks/twilio/inbound", big)
    assert answer.status_code == 413
    streamed = client.post("/webhooks/twilio/inbound", content=iter([b"Body=" + b"x" * 3000, b"x" * 3000]),
                           headers={"X-Twilio-Signature": "anything", "Content-Type": "application/x-www-form-urlencoded"})
    assert streamed.status_code == 413
