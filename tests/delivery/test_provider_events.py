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
from campaigns.attempts.log import attempt_row
from campaigns.delivery.provider_events import apply_sendgrid_events
from campaigns.runs.records import start_run
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
    assert report.as_dict() == {"delivered": 1, "dropped": 1, "rejected": 1, "unmatched": 1}
    assert report.problems == ["event 0: sg_event_id: missing; timestamp: missing"]
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
    assert "3 event(s): delivered 1, duplicate 1, rejected 1" in result.output
    assert "event 2: event: missing; sg_event_id: missing; timestamp: missing" in result.output


# --- One bad event costs only itself; unsubscribes are never lost (issue 8: 3, 4) -----------------------

def problems(engine) -> list[tuple]:
    from campaigns.db.models import ProviderEventProblem

    with engine.connect() as conn:
        return conn.execute(select(ProviderEventProblem.provider, ProviderEventProblem.position,
                                   ProviderEventProblem.event, ProviderEventProblem.problem,
                                   ProviderEventProblem.outcome).order_by(ProviderEventProblem.id)).all()


def opted_out(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(Customer.id).where(Customer.email_opt_out.is_(True))).scalars())


def post_signed(client, private, body: str):
    return client.post("/webhooks/sendgrid/events", content=body, headers=signed(private, body, STAMP))


def test_a_malformed_event_in_a_signed_batch_costs_only_itself(engine, signing_key):
    """[unsubscribe A, 7, unsubscribe B] used to answer 500 forever: A opted out, B never."""
    private, public = signing_key
    a, b = attempt(engine, "A1"), attempt(engine, "B1")
    client = TestClient(create_app(engine, public, clock=lambda: STAMP))
    body = json.dumps([event("unsubscribe", a, 1), 7, event("unsubscribe", b, 2)])
    response = post_signed(client, private, body)
    assert response.status_code == 200
    assert response.json() == {"applied": {"rejected": 1, "unsubscribe": 2}}
    assert opted_out(engine) == {"C-A1", "C-B1"}
    assert problems(engine) == [("sendgrid", 1, None, "event: not a JSON object (int)", "rejected")]
    again = post_signed(client, private, body)  # a redelivery changes nothing but the problem log
    assert again.json() == {"applied": {"duplicate": 2, "rejected": 1}}


@pytest.mark.parametrize(("bad", "problem"), [
    ('{"event": "delivered", "sg_event_id": "x1", "timestamp": 1e20}', "timestamp: less_than_equal"),
    ('{"event": "delivered", "sg_event_id": "x1", "timestamp": NaN}', "timestamp: finite_number"),
    ('{"event": "delivered", "sg_event_id": "x1", "timestamp": 1795000000, "attempt_id": "99999999999"}',
     "attempt_id: value_error"),
    ('{"event": "delivered", "sg_event_id": "x1", "timestamp": 1795000000, "attempt_id": "2147483648"}',
     "attempt_id: less_than_equal"),
    ("[" * 100_000 + "]" * 100_000, "event: not readable JSON (RecursionError)"),
    ("1" * 5000, "event: not readable JSON (ValueError)"),
    ('{"event": "delivered", "sg_event_id": "' + "x" * 200 + '", "timestamp": 1795000000}', "sg_event_id: string_too_long"),
    ('{"event": "reboot", "sg_event_id": "x1", "timestamp": 1795000000}', "event: literal_error"),
    ('{"event": ["unsubscribe"], "sg_event_id": "x1", "timestamp": 1795000000}', "event: literal_error"),  # unhashable
])
def test_each_kind_of_bad_event_is_recorded_and_the_good_ones_applied(engine, signing_key, bad, problem):
    private, public = signing_key
    a, b = attempt(engine, "A1"), attempt(engine, "B1")
    client = TestClient(create_app(engine, public, clock=lambda: STAMP))
    body = "[" + ", ".join([json.dumps(event("delivered", a, 1)), bad, json.dumps(event("unsubscribe", b, 2))]) + "]"
    response = post_signed(client, private, body)
    assert response.status_code == 200, response.text
    assert response.json()["applied"] == {"delivered": 1, "rejected": 1, "unsubscribe": 1}
    assert status_of(engine, a)[0] == "delivered" and opted_out(engine) == {"C-B1"}
    [(_, position, _, recorded, outcome)] = problems(engine)
    assert (position, recorded, outcome) == (1, problem, "rejected")


def test_an_unsubscribe_with_a_bad_field_is_still_applied(engine, signing_key):
    private, public = signing_key
    a = attempt(engine, "A1")
    add_account(engine, "B1", days_past_due=5, customer={"email": "b.person@example.com"})
    client = TestClient(create_app(engine, public, clock=lambda: STAMP))
    events = [event("unsubscribe", a, 1, timestamp=1e20),                                   # a bad time
              {**event("spamreport", None, 2), "attempt_id": "1" * 30, "email": "b.person@example.com"}]  # no attempt
    body = json.dumps(events)
    assert post_signed(client, private, body).json()["applied"] == {
        "salvaged": 2, "spamreport": 1, "unmatched": 1, "unsubscribe": 1}
    assert opted_out(engine) == {"C-A1", "C-B1"}
    assert [(p[2], p[4]) for p in problems(engine)] == [("unsubscribe", "salvaged"), ("spamreport", "salvaged")]
    assert not any("b.person" in p[3] for p in problems(engine))


def test_a_database_refusal_of_one_event_costs_only_that_event(engine, monkeypatch):
    from sqlalchemy.exc import DataError

    from campaigns.delivery import provider_events

    a, b = attempt(engine, "A1"), attempt(engine, "B1")
    real = provider_events._record_event

    def refuse_b(conn, provider, event_id, attempt_id, *args):
        if attempt_id == b:
            raise DataError("INSERT ...", {}, type("NumericValueOutOfRange", (Exception,), {})())
        return real(conn, provider, event_id, attempt_id, *args)

    monkeypatch.setattr(provider_events, "_record_event", refuse_b)
    report = apply_sendgrid_events(engine, [event("delivered", b, 1), event("delivered", a, 2)], NOW)
    assert report.as_dict() == {"delivered": 1, "rejected": 1}
    assert problems(engine)[0][3] == "database refused it (NumericValueOutOfRange)"


def test_headers_and_size_are_checked_before_the_body_is_read(engine, signing_key):
    private, public = signing_key
    client = TestClient(create_app(engine, public, clock=lambda: STAMP, max_body_bytes=2048))
    url = "/webhooks/sendgrid/events"
    big = "[" + ",".join(["{}"] * 2000) + "]"
    assert client.post(url, content=big).status_code == 401                              # unsigned: not read
    headers = signed(private, "[]", STAMP)
    assert client.post(url, content=big, headers=headers).status_code == 413             # announced too large
    assert client.post(url, content=iter([b"[" + b"{}," * 1000, b"{}]"]), headers=headers).status_code == 413  # streamed
    assert client.post(url, content="[]", headers={**headers, TIMESTAMP: "9" * 5000}).status_code == 401
    assert client.post(url, content="[]", headers={**headers, TIMESTAMP: "-5"}).status_code == 401
    ok = post_signed(client, private, "[]")
    assert ok.status_code == 200 and ok.json() == {"applied": {}}


def test_a_signed_body_that_is_not_an_array_is_400(engine, signing_key):
    private, public = signing_key
    client = TestClient(create_app(engine, public, clock=lambda: STAMP))
    for body in ('{"event": "delivered"}', "not json", "[" * 100_000):
        assert post_signed(client, private, body).status_code == 400
