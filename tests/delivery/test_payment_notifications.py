"""A processor's payment notifications as they happen: signed, checked like a payments file's rows, once each."""

from __future__ import annotations

import json
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from starlette.testclient import TestClient

from campaigns.channels.push_webhook import SIGNATURE, TIMESTAMP, sign
from campaigns.db.models import Account, ContactAttempt, Payment
from campaigns.delivery.webhooks import PaymentNotifications, create_app
from tests.conftest import NOW
from tests.delivery.test_provider_events import attempt
from tests.factories import add_account

SECRET = "processor-shared-secret"
STAMP = int(NOW.timestamp())
URL = "/webhooks/payments"


def client_for(engine, **options) -> TestClient:
    notifications = PaymentNotifications(SECRET, ZoneInfo("America/New_York"))
    return TestClient(create_app(engine, payments=notifications, clock=lambda: STAMP + 5, **options))


def post(client: TestClient, events, *, secret: str = SECRET, stamp: int = STAMP):
    body = (events if isinstance(events, str) else json.dumps(events)).encode()
    return client.post(URL, content=body, headers={TIMESTAMP: str(stamp), SIGNATURE: sign(secret, str(stamp), body)})


def paid(payment_id: str, account_id: str = "A1", amount="120.50", **extra) -> dict:
    return {"payment_id": payment_id, "account_id": account_id, "amount": amount, "currency": "USD",
            "paid_at": "2026-11-22T08:02:00-05:00", "method": "card", "reference": "PSP-1", **extra}


def balance(engine, account_id: str = "A1") -> tuple[Decimal, Decimal]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(Account.balance, Account.amount_due).where(Account.id == account_id)).one())


def test_a_payment_as_it_happens_stops_the_reminder_queued_for_it(engine):
    """The processor posts the payment as it happens: the ledger takes it, the account is cured, and the message
    that was queued for it is stopped; the same notification again records nothing."""
    queued = attempt(engine, "A1", status="queued")  # balance 600.00, amount due 120.50
    client = client_for(engine)
    first = post(client, paid("PSP-9001"))
    assert first.status_code == 200 and first.json() == {"recorded": 1, "already_recorded": 0, "refused": []}
    assert balance(engine) == (Decimal("479.50"), Decimal("0"))
    with engine.connect() as conn:
        stopped = conn.execute(select(ContactAttempt.status, ContactAttempt.reason)
                               .where(ContactAttempt.id == queued)).one()
    assert tuple(stopped) == ("suppressed", "paid")
    again = post(client, paid("PSP-9001"))
    assert again.status_code == 200 and again.json() == {"recorded": 0, "already_recorded": 1, "refused": []}
    assert balance(engine) == (Decimal("479.50"), Decimal("0"))


def test_a_batch_with_a_reversal_and_a_bad_event_records_the_good_ones_and_names_the_bad(engine):
    add_account(engine, "A1", days_past_due=5)
    add_account(engine, "A2", days_past_due=5)
    events = [paid("PSP-1", amount=Decimal("20.25")), paid("PSP-2", "A2", amount="twelve"),
              {**paid("CB-1", amount="20.25", type="reversal", reverses="PSP-1", reason="chargeback"),
               "paid_at": "2026-11-22T08:30:00-05:00"},
              paid("PSP-3", "NOPE"), "not an event", paid("PSP-4", "A2", amount="5", note={"nested": 1})]
    answer = post(client_for(engine), json.dumps(events, default=str).replace('"20.25"', "20.25"))
    assert answer.status_code == 422
    assert answer.json()["recorded"] == 3
    assert [(r["event"], r["field"]) for r in answer.json()["refused"]] == [(2, "amount"), (4, "account_id"),
                                                                           (5, None)]
    assert balance(engine) == (Decimal("600.00"), Decimal("120.50"))  # paid, then reversed whole
    assert balance(engine, "A2") == (Decimal("595.00"), Decimal("115.50"))
    with engine.connect() as conn:
        amounts = dict(conn.execute(select(Payment.payment_id, Payment.amount)).all())
    assert amounts == {"PSP-1": Decimal("20.25"), "PSP-4": Decimal("5")}  # a JSON number kept exact


def test_unsigned_stale_forged_oversized_and_malformed_notifications_are_refused(engine):
    add_account(engine, "A1", days_past_due=5)
    client = client_for(engine, max_body_bytes=2048)
    body = json.dumps(paid("PSP-1"))
    assert client.post(URL, content=body).status_code == 401  # unsigned
    assert post(client, paid("PSP-1"), stamp=STAMP - 3600).status_code == 401  # stale: a replay
    assert post(client, paid("PSP-1"), secret="guessed").status_code == 403  # forged
    signed = {TIMESTAMP: str(STAMP), SIGNATURE: sign(SECRET, str(STAMP), body.encode())}
    tampered = body.replace("120.50", "1200.50")
    assert client.post(URL, content=tampered, headers=signed).status_code == 403
    big = json.dumps([paid(f"P{i}") for i in range(100)])
    assert client.post(URL, content=big, headers=signed).status_code == 413  # before the signature is checked
    for bad in ("not json", "[]", '"a string"', "[" * 2000):  # deep nesting: within the size, refused
        assert post(client, bad).status_code == 400, bad
    assert balance(engine) == (Decimal("600.00"), Decimal("120.50"))  # nothing refused was recorded
