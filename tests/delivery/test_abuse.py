"""Floods of the public endpoints (issue 13): a source over its budget is answered 429, unread and unverified,
in bounded memory; others are served as before."""

from __future__ import annotations

import json
from urllib.parse import quote

from starlette.testclient import TestClient

from campaigns.delivery.abuse import Budget, SourceLimits
from campaigns.delivery.webhooks import PlanLinks, create_app
from tests.conftest import NOW
from tests.factories import add_account
from tests.money.test_plan_lifecycle import RULES, SECRET, ZONE, offer
from tests.delivery.test_provider_events import STAMP, attempt, event, signed, signing_key  # noqa: F401 (fixture)

URL = "/webhooks/sendgrid/events"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_source_gets_its_burst_then_its_rate_and_waits_as_it_is_told():
    clock = Clock()
    limits = SourceLimits(Budget(rate=2.0, burst=3), Budget(rate=0.1, burst=2), clock=clock)
    assert [limits.refused("a") for _ in range(4)] == [None, None, None, 1]
    assert limits.refused("b") is None  # another source has its own budget
    clock.now += 0.5
    assert limits.refused("a") is None and limits.refused("a") == 1
    limits.failed("a"), limits.failed("a")
    clock.now += 5
    assert limits.refused("a") == 5  # out of failures: one comes back every 10 s
    clock.now += 5
    assert limits.refused("a") is None


def test_a_flood_from_many_addresses_keeps_memory_bounded():
    limits = SourceLimits(Budget(1.0, 1), Budget(1.0, 1), max_sources=100, clock=Clock())
    for n in range(10_000):
        source = f"127.{n // 65536}.{n // 256 % 256}.{n % 256}"
        limits.refused(source), limits.refused(source), limits.failed(source)
    assert len(limits.requests) == 100 and len(limits.failures) == 100


def test_a_flood_of_forged_events_is_answered_cheaply_and_a_provider_is_still_served(engine, signing_key,  # noqa: F811
                                                                                    monkeypatch):
    from sendgrid.helpers.eventwebhook import EventWebhook

    private, public = signing_key
    verified = []
    real_verify = EventWebhook.verify_signature
    monkeypatch.setattr(EventWebhook, "verify_signature",
                        lambda self, *a, **k: verified.append(1) or real_verify(self, *a, **k))
    limits = SourceLimits(Budget(100.0, 500), Budget(20 / 60, 20), clock=Clock())  # time stands still
    app = create_app(engine, public, clock=lambda: STAMP, limits=limits)
    flooder = TestClient(app, client=("127.0.0.1", 40000))
    a = attempt(engine, "A1")
    body = json.dumps([event("delivered", a)])
    forged = {**signed(private, body, STAMP), "X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ" + "A" * 90}
    answers = [flooder.post(URL, content=body, headers=forged).status_code for _ in range(300)]  # bounded
    assert answers[:20] == [403] * 20 and set(answers[20:]) == {429}
    assert len(verified) == 20  # the other 280 were answered before any signature check
    assert flooder.post(URL, content=body, headers=signed(private, body, STAMP)).status_code == 429
    retry = flooder.post(URL, content=body, headers=forged)
    assert retry.status_code == 429 and int(retry.headers["Retry-After"]) >= 1
    provider = TestClient(app, client=("127.0.0.2", 40001))
    ok = provider.post(URL, content=body, headers=signed(private, body, STAMP))
    assert ok.status_code == 200 and ok.json()["applied"]["delivered"] == 1


def test_forged_plan_links_from_one_source_stop_being_checked_and_a_customer_still_accepts(engine):
    add_account(engine, "A1", days_past_due=20)
    real = offer(engine, "A1")["tokens"][1]
    app = create_app(engine, plan_links=PlanLinks(SECRET, RULES, ZONE, clock=lambda: NOW),
                     limits=SourceLimits(Budget(100.0, 500), Budget(20 / 60, 5), clock=Clock()))
    guesser = TestClient(app, client=("127.0.0.1", 40000))
    guesses = [guesser.get(f"/plans/{quote(real[:-3] + f'{n:03d}', safe='')}").status_code for n in range(40)]
    assert guesses[:5] == [403] * 5 and set(guesses[5:]) == {429}, guesses
    customer = TestClient(app, client=("127.0.0.3", 40002))
    assert customer.get(f"/plans/{quote(real, safe='')}").status_code == 200
