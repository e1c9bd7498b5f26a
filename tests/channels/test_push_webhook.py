"""In-app push through httpx with its transport intercepted: signed body, idempotency key, answers."""

from __future__ import annotations

import json

import httpx
import pytest

from campaigns.channels import DeliveryOutcomeUnknown, OutgoingMessage, PermanentDeliveryError, TransientDeliveryError
from campaigns.channels.base import RateLimited
from campaigns.channels.push_webhook import SIGNATURE, TIMESTAMP, PushWebhookGateway, verify_signature
from tests.conftest import NOW

SECRET = "s3cret"
MESSAGE = OutgoingMessage(attempt_id=7, account_id="A1", channel="push", stage="pre_due", recipient="C-1",
                          subject="$120.50 due on Nov 25", text="Tap to pay", html=None,
                          payload={"deep_link": "https://pay.example.com/a/A1"})


def gateway(handler) -> tuple[PushWebhookGateway, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return PushWebhookGateway("https://wallet.example.com/notify", SECRET, transport=httpx.MockTransport(record),
                              clock=lambda: 1_795_000_000), seen


def test_the_body_is_signed_and_carries_an_idempotency_key():
    push, seen = gateway(lambda r: httpx.Response(202, json={"id": "n-1"}))
    assert push.send(MESSAGE, NOW) == "n-1"
    request = seen[0]
    assert json.loads(request.content) == {"attempt_id": 7, "user_id": "C-1", "stage": "pre_due",
                                           "title": "$120.50 due on Nov 25", "body": "Tap to pay",
                                           "deep_link": "https://pay.example.com/a/A1"}
    assert request.headers["Idempotency-Key"] == "attempt-7"
    assert verify_signature(SECRET, request.headers[TIMESTAMP], request.content, request.headers[SIGNATURE],
                            now=1_795_000_010)
    assert not verify_signature("other", request.headers[TIMESTAMP], request.content, request.headers[SIGNATURE],
                                now=1_795_000_010)
    assert not verify_signature(SECRET, request.headers[TIMESTAMP], request.content + b" ",
                                request.headers[SIGNATURE], now=1_795_000_010)
    assert not verify_signature(SECRET, request.headers[TIMESTAMP], request.content, request.headers[SIGNATURE],
                                now=1_795_000_000 + 301)  # a replay, too late


@pytest.mark.parametrize("status, error, reason", [
    (404, PermanentDeliveryError, "invalid_address"), (410, PermanentDeliveryError, "invalid_address"),
    (400, PermanentDeliveryError, "provider_rejected"), (401, PermanentDeliveryError, "provider_auth"),
    (500, TransientDeliveryError, None), (502, TransientDeliveryError, None),
])
def test_answers_map_onto_the_attempt_states(status, error, reason):
    push, _ = gateway(lambda r: httpx.Response(status))
    with pytest.raises(error) as info:
        push.send(MESSAGE, NOW)
    if reason:
        assert info.value.reason == reason


def test_429_says_when_to_come_back():
    push, _ = gateway(lambda r: httpx.Response(429, headers={"Retry-After": "3"}))
    with pytest.raises(RateLimited) as info:
        push.send(MESSAGE, NOW)
    assert info.value.retry_after == 3.0


def test_no_connection_is_transient_and_a_read_timeout_is_unknown():
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    def stall(request):
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(TransientDeliveryError):
        gateway(refuse)[0].send(MESSAGE, NOW)
    with pytest.raises(DeliveryOutcomeUnknown):
        gateway(stall)[0].send(MESSAGE, NOW)


def test_it_needs_a_url_and_a_secret():
    with pytest.raises(ValueError, match="URL"):
        PushWebhookGateway("", SECRET)
    with pytest.raises(ValueError, match="SECRET"):
        PushWebhookGateway("https://wallet.example.com/notify", "")
