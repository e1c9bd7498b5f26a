"""Minimal copies (issue 13): retention, subject access, erasure, the access-logged reveal; on both databases."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from campaigns.channels import OutboxGateway
from campaigns.db.models import (
    Account,
    AttemptStatus,
    ContactAttempt,
    Customer,
    OutboxMessage,
    PersonalDataAccess,
    RenderedMessage,
    Stage,
)
from campaigns.privacy.lookup import email_index
from campaigns.privacy.retention import apply_retention, content_hash
from campaigns.sealing.seal import ring_for
from campaigns.privacy.subject import SubjectError, erase_customer, export_customer, mask, show_customer
from tests.conftest import AS_OF, NOW
from tests.factories import add_account
from tests.contact.test_pipeline import run_stage

LATER = NOW + timedelta(days=120)


def contacted(engine, ladder, names=("Grace Garcia", "Ana Lopez", "Li Wei")):  # noqa: F811
    """Three customers contacted by email in a soft_nudge run at NOW; the outbox holds their messages."""
    for n, name in enumerate(names):
        add_account(engine, f"A{n}", days_past_due=3,
                    customer={"name": name, "email": f"{name.split()[0].lower()}@example.com",
                              "phone": f"+1212555010{n}"})
    outbox = OutboxGateway(engine)
    run_stage(engine, ladder, Stage.soft_nudge, {"email": outbox, "sms": outbox})


def accesses(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(select(PersonalDataAccess.action, PersonalDataAccess.actor, PersonalDataAccess.customer_id,
                                   PersonalDataAccess.reason).order_by(PersonalDataAccess.id)).all()


def test_old_messages_are_reduced_to_the_hash_of_what_was_sent_and_the_log_keeps_its_facts(engine, ladder):  # noqa: F811,E501
    contacted(engine, ladder)
    with engine.connect() as conn:  # the outbox row is each message's one copy
        before = {r.attempt_id: content_hash(r.recipient, r.subject, r.body_text, r.body_html)
                  for r in conn.execute(select(OutboxMessage))}
        assert conn.execute(select(func.count()).select_from(RenderedMessage)).scalar_one() == 0
        facts = conn.execute(select(ContactAttempt.id, ContactAttempt.status, ContactAttempt.template_version,
                                    ContactAttempt.channel)).all()
    assert len(before) == 3
    dry = apply_retention(engine, LATER, message_days=90, closed_customer_days=365, dry_run=True)
    assert (dry.messages_reduced, dry.outbox_deleted, dry.customers_anonymised) == (3, 3, 0)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(RenderedMessage.reduced_at.is_not(None))).scalar_one() == 0
    assert apply_retention(engine, NOW + timedelta(days=30), message_days=90, closed_customer_days=365
                           ).messages_reduced == 0  # not old yet
    report = apply_retention(engine, LATER, message_days=90, closed_customer_days=365, chunk_size=2)
    assert (report.messages_reduced, report.outbox_deleted, report.customers_anonymised) == (3, 3, 0)
    with engine.connect() as conn:
        after = conn.execute(select(RenderedMessage)).all()
        raw = conn.execute(text("SELECT recipient, subject, body_text, body_html FROM rendered_messages")).all()
        assert conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one() == 0
        assert conn.execute(select(ContactAttempt.id, ContactAttempt.status, ContactAttempt.template_version,
                                   ContactAttempt.channel)).all() == facts
    assert {m.attempt_id: m.content_sha256 for m in after} == before
    assert all(v is None for row in raw for v in row) and all(m.reduced_at == LATER for m in after)
    assert apply_retention(engine, LATER, message_days=90, closed_customer_days=365).messages_reduced == 0
    assert [a[:2] for a in accesses(engine)] == [("retention", "retention")]


def test_a_message_still_on_its_way_keeps_its_content(engine, ladder):  # noqa: F811
    contacted(engine, ladder, names=("Grace Garcia",))
    with engine.begin() as conn:
        conn.execute(update(ContactAttempt).values(status=AttemptStatus.deferred.value))
    assert apply_retention(engine, LATER, message_days=90, closed_customer_days=365).messages_reduced == 0


def test_customers_closed_for_long_are_anonymised_and_keep_their_opt_outs_as_blind_indexes(engine, ladder):  # noqa: F811,E501
    contacted(engine, ladder)
    ring = ring_for(engine.dialect)
    with engine.begin() as conn:
        conn.execute(update(Account).where(Account.id.in_(["A0", "A1"])).values(status="paid", updated_at=NOW))
        conn.execute(update(Customer).where(Customer.id == "C-A0").values(email_opt_out=True))
    assert apply_retention(engine, NOW + timedelta(days=200), message_days=90, closed_customer_days=365
                           ).customers_anonymised == 0
    report = apply_retention(engine, NOW + timedelta(days=400), message_days=90, closed_customer_days=365)
    assert report.customers_anonymised == 2
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(Customer))}
        raw = conn.execute(text("SELECT name, email, phone FROM customers WHERE id IN ('C-A0', 'C-A1')")).all()
    assert raw == [(None, None, None)] * 2 and rows["C-A2"].name == "Li Wei"
    assert rows["C-A0"].email_index == email_index(ring, "grace@example.com") and rows["C-A0"].phone_index is None
    assert rows["C-A1"].email_index is None and rows["C-A0"].anonymised_at is not None
    assert rows["C-A2"].anonymised_at is None


def test_show_masks_reveal_needs_a_reason_and_is_logged(engine, ladder):  # noqa: F811
    contacted(engine, ladder, names=("Grace Garcia",))
    masked = show_customer(engine, "A0", NOW, actor="agent-7")
    assert masked.fields["name"] == "G. G." and masked.fields["email"] == "g***@example.com"
    assert masked.fields["phone"] == "+1******0100" and accesses(engine) == []
    with pytest.raises(SubjectError, match="needs a reason"):
        show_customer(engine, "A0", NOW, actor="agent-7", reveal=True)
    shown = show_customer(engine, "A0", NOW, actor="agent-7", reveal=True, reason="customer called, ticket 88")
    assert shown.fields["email"] == "grace@example.com"
    assert accesses(engine) == [("reveal", "agent-7", "C-A0", "customer called, ticket 88")]
    with engine.connect() as conn:  # the reason is sealed too: an operator may type a name into it
        assert "ticket" not in conn.execute(text("SELECT reason FROM personal_data_access")).scalar_one()
    with pytest.raises(SubjectError, match="no account NOPE"):
        show_customer(engine, "NOPE", NOW, actor="agent-7")
    assert mask("email", None) is None and mask("name", "") == "*"


def test_a_subject_access_export_holds_everything_and_is_private_and_logged(engine, ladder, tmp_path):  # noqa: F811
    contacted(engine, ladder, names=("Grace Garcia",))
    path, counts = export_customer(engine, "A0", NOW, actor="dpo", reason="SAR-12", out=tmp_path / "x" / "c.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["customer"]["name"] == "Grace Garcia" and "email_index" not in document["customer"]
    assert [a["id"] for a in document["accounts"]] == ["A0"]
    [contact] = document["contacts"]
    assert contact["message"]["recipient"] == "grace@example.com" and "Grace" in contact["message"]["body_text"]
    assert counts["contacts"] == 1 and accesses(engine) == [("export", "dpo", "C-A0", "SAR-12")]


def test_erasure_removes_the_person_keeps_the_facts_and_stops_what_was_queued(engine, ladder, tmp_path):  # noqa: F811
    contacted(engine, ladder, names=("Grace Garcia", "Ana Lopez"))
    with engine.begin() as conn:
        conn.execute(update(ContactAttempt).where(ContactAttempt.account_id == "A0")
                     .values(status=AttemptStatus.deferred.value))
        conn.execute(update(Customer).where(Customer.id == "C-A0").values(sms_opt_out=True))
    counts = erase_customer(engine, "A0", NOW, actor="dpo", reason="erasure request 5")
    assert counts == {"messages_reduced": 1, "outbox_deleted": 1, "attempts_stopped": 1}
    with engine.connect() as conn:
        customer = conn.execute(select(Customer).where(Customer.id == "C-A0")).one()
        other = conn.execute(select(Customer.name).where(Customer.id == "C-A1")).scalar_one()
        attempt = conn.execute(select(ContactAttempt).where(ContactAttempt.account_id == "A0")).one()
        message = conn.execute(select(RenderedMessage).where(RenderedMessage.attempt_id == attempt.id)).one()
    assert (customer.name, customer.email, customer.phone) == (None, None, None) and other == "Ana Lopez"
    assert customer.phone_index is not None and customer.email_index is None  # the SMS opt-out still matches
    assert (attempt.status, attempt.reason) == ("suppressed", "erased") and attempt.template_version
    assert message.body_text is None and len(message.content_sha256) == 64
    assert accesses(engine)[-1] == ("erase", "dpo", "C-A0", "erasure request 5")
    # What we still hold is what the export shows: no name, no email, no message text.
    path, _ = export_customer(engine, "A0", NOW, actor="dpo", reason="check", out=tmp_path / "after.json")
    assert "Grace" not in path.read_text() and "grace@" not in path.read_text()


def test_the_commands(engine, ladder, tmp_path, monkeypatch):  # noqa: F811
    from campaigns.cli import app

    monkeypatch.setenv("CAMPAIGNS_DATA_DIR", str(tmp_path))
    contacted(engine, ladder, names=("Grace Garcia",))
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    shown = run("customer", "show", "A0", "--by", "agent-7")
    assert shown.exit_code == 0 and "g***@example.com" in shown.output and "Grace" not in shown.output
    refused = run("customer", "show", "A0", "--reveal")
    assert refused.exit_code == 1 and "error: revealing personal data needs a reason" in refused.output
    revealed = run("customer", "show", "A0", "--reveal", "--reason", "call back", "--by", "agent-7")
    assert "grace@example.com" in revealed.output and "revealed, logged" in revealed.output
    exported = run("customer", "export", "A0", "--reason", "SAR-1", "--now", "2026-11-22T15:00:00Z")
    assert exported.exit_code == 0 and "exports/C-A0-20261122T150000Z.json (0600)" in exported.output
    assert "would erase" in run("customer", "erase", "A0", "--reason", "r").output
    erased = run("customer", "erase", "A0", "--reason", "r", "--yes")
    assert erased.exit_code == 0 and "1 messages reduced" in erased.output
    assert "error: no account NOPE" in run("customer", "show", "NOPE").output
    dry = run("retention", "--dry-run", "--now", "2027-06-01T00:00:00Z")
    assert dry.exit_code == 0 and "would be anonymised" in dry.output
    assert [a[0] for a in accesses(engine)] == ["reveal", "export", "erase"]


def test_the_retention_flow_publishes_its_counts(prefect_harness, engine, ladder):  # noqa: F811
    from prefect.client.orchestration import get_client

    from flows.retention import retention

    contacted(engine, ladder, names=("Grace Garcia",))
    counts = retention(now=LATER, dry_run=True)
    assert counts["messages_reduced"] == 1 and counts["dry_run"] is True
    assert retention(now=LATER)["messages_reduced"] == 1
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
    assert any(a.key == "retention" for a in artifact)
    assert AS_OF  # the run's day is the lender's: retention takes only a moment


def test_an_erased_customer_who_comes_back_under_a_new_id_stays_opted_out(engine, ladder, tmp_path):  # noqa: F811
    from campaigns.portfolio import import_portfolio
    from tests.portfolio.test_import import row, write_csv

    contacted(engine, ladder, names=("Grace Garcia",))
    with engine.begin() as conn:
        conn.execute(update(Customer).where(Customer.id == "C-A0").values(sms_opt_out=True))
    erase_customer(engine, "A0", NOW, actor="dpo", reason="request 9")
    path = write_csv(tmp_path / "p.csv", [
        row(account_id="B1", customer_id="C-NEW", phone="+12125550100", email="grace@example.com"),
        row(account_id="B2", customer_id="C-OTHER", phone="+12125550199", email="other@example.com")])
    assert import_portfolio(engine, path, now=NOW).ok
    with engine.connect() as conn:
        flags = {r.id: (r.email_opt_out, r.sms_opt_out) for r in conn.execute(
            select(Customer.id, Customer.email_opt_out, Customer.sms_opt_out))}
    # The SMS opt-out was kept as the phone's blind index; the email was not opted out, so it was not kept.
    assert flags["C-NEW"] == (False, True) and flags["C-OTHER"] == (False, False)
