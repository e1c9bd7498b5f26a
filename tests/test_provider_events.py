"""Provider events: applied once each, reconciling attempts and opt-outs; the signed webhook receiver."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import insert, select
from starlette.testclient import TestClient

from campaigns.db.models import ContactAttempt, Customer, OptOutEvent, ProviderEvent, Stage
from campaigns.contact.outcomes import attempt_row
from campaigns.delivery.provider_events import apply_sendgrid_events
from campaigns.review.runs import start_run
from campaigns.delivery.webhooks import SIGNATURE, TIMESTAMP, create_app
from tests.conftest import AS_OF, NOW
from tests.factories import add_account

STAMP = int(NOW.timestamp())


def attempt(engine, account_id: str, status: str = "sent") -> int:
    add_account(engine, account_id, days_past_due=5)
    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    with engine.begin() as conn:
        return conn.execute(insert(ContactAttempt.__table__).returning(ContactAttempt.id), attempt_row(
            run_id=run_id, account_id=account_id, customer_id=f"C-{account_id}", stage=Stage.soft_nudge,
            cycle=AS_OF.isoformat(), as_of=AS_OF, channel="email", status=status, now=NOW)).scalar_one()


def event(kind: str, attempt_id: int | None, n: int = 1, **extra) -> dict:
    return {"email": "someone@example.com", "timestamp": STAMP, "event": kind, "sg_event_id": f"ev-{kind}-{n}",
            "sg_message_id": "msg123.filter0001", **({"attempt_id": str(attempt_id)} if attempt_id else {}), **extra}


def status_of(engine, attempt_id):
    with engine.connect() as conn:
        return conn.execute(select(ContactAttempt.status, ContactAttempt.reason, ContactAttempt.provider_message_id)
                            .where(ContactAttempt.id == attempt_id)).one()


def test_delivered_and_a_redelivered_event_is_applied_once(engine):
    a = attempt(engine, "A1")
    report = apply_sendgrid_events(engine, [event("delivered", a), event("delivered", a), event("open", a)], NOW)
    assert report.as_dict() == {"delivered": 1, "duplicate": 1, "open": 1}
    assert status_of(engine, a)[0] == "delivered"
    again = apply_sendgrid_events(engine, [event("delivered", a)], NOW)
    assert again.as_dict() == {"duplicate": 1}
    with engine.connect() as conn:
        stored = conn.execute(select(ProviderEvent.event, ProviderEvent.attempt_id)).all()
    assert sorted(stored) == [("delivered", a), ("open", a)]


def test_an_unknown_outcome_is_reconciled_from_the_providers_events(engine):
    a = attempt(engine, "A1", status="unknown")
    apply_sendgrid_events(engine, [event("processed", a)], NOW)
    assert status_of(engine, a) == ("sent", None, "msg123")
    b = attempt(engine, "B1", status="unknown")
    apply_sendgrid_events(engine, [event("delivered", b, n=2)], NOW)
    assert status_of(engine, b)[0] == "delivered"


def test_a_hard_bounce_marks_the_address_invalid_a_block_does_not(engine):
    a = attempt(engine, "A1")
    b = attempt(engine, "B1")
    apply_sendgrid_events(engine, [event("bounce", a, type="bounce", reason="550 ada@x.example no such user"),
                                   event("bounce", b, n=2, type="blocked")], NOW)
    with engine.connect() as conn:
        invalid = dict(conn.execute(select(Customer.id, Customer.email_invalid)).all())
        details = conn.execute(select(ProviderEvent.detail)).scalars().all()
    assert invalid == {"C-A1": True, "C-B1": False}
    assert status_of(engine, a)[:2] == ("bounced", "bounced")
    assert not any("@" in (d or "") for d in details)  # the bounce reason text is never stored


def test_unsubscribe_and_spam_report_opt_out_of_email_at_once(engine):
    a = attempt(engine, "A1")
    b = attempt(engine, "B1")
    apply_sendgrid_events(engine, [event("unsubscribe", a), event("spamreport", b)], NOW)
    with engine.connect() as conn:
        opted = dict(conn.execute(select(Customer.id, Customer.email_opt_out)).all())
        sources = conn.execute(select(OptOutEvent.source, OptOutEvent.keyword)).all()
    assert opted == {"C-A1": True, "C-B1": True}
    assert sorted(sources) == [("provider_event", "spamreport"), ("provider_event", "unsubscribe")]


def test_bad_and_unmatched_events_are_counted_not_fatal(engine):
    a = attempt(engine, "A1")
    report = apply_sendgrid_events(engine, [{"event": "delivered"}, event("delivered", None), event("dropped", a)],
                                   NOW)
    assert report.as_dict() == {"delivered": 1, "dropped": 1, "invalid": 1, "unmatched": 1}
    assert status_of(engine, a)[:2] == ("failed", "dropped")


@pytest.fixture(scope="module")
def signing_key():
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


def signed(private, body: str, stamp: int) -> dict:
    signature = private.sign((str(stamp) + body).encode(), ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: str(stamp),
            "Content-Type": "application/json"}


def test_the_webhook_verifies_signatures_and_refuses_unsigned_tampered_or_stale(engine, signing_key):
    private, public = signing_key
    a = attempt(engine, "A1")
    client = TestClient(create_app(engine, public, tolerance_seconds=300, clock=lambda: STAMP + 10))
    body = json.dumps([event("delivered", a)])
    url = "/webhooks/sendgrid/events"
    assert client.post(url, content=body).status_code == 401                                  # unsigned
    assert client.post(url, content=body, headers=signed(private, body, STAMP - 1000)).status_code == 401  # stale
    tampered = body.replace("delivered", "bounce")
    assert client.post(url, content=tampered, headers=signed(private, body, STAMP)).status_code == 403
    assert status_of(engine, a)[0] == "sent"
    ok = client.post(url, content=body, headers=signed(private, body, STAMP))
    assert ok.status_code == 200 and ok.json() == {"applied": {"delivered": 1}}
    again = client.post(url, content=body, headers=signed(private, body, STAMP))   # a redelivery
    assert again.json() == {"applied": {"duplicate": 1}}
    assert status_of(engine, a)[0] == "delivered"
    other = ec.generate_private_key(ec.SECP256R1())
    assert client.post(url, content=body, headers=signed(other, body, STAMP)).status_code == 403


def test_events_ingest_command(engine, tmp_path):
    from typer.testing import CliRunner

    from campaigns.cli import app

    a = attempt(engine, "A1")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in [event("delivered", a), event("delivered", a), {"x": 1}]))
    result = CliRunner().invoke(app, ["events", "ingest", str(path)])
    assert result.exit_code == 1
    assert "3 event(s): delivered 1, duplicate 1, invalid 1" in result.output
    assert "event 2: missing or unknown event" in result.output
