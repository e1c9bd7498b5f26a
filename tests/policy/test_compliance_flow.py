"""Compliance end to end through the pipeline: holds mid-run, opt-outs, vulnerable and time-barred accounts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from campaigns.channels.agent import AgentWorklistGateway
from campaigns.customers.preferences import (
    PreferenceError, clear_hold, open_dispute, opt_out, receive_sms, resolve_dispute, set_hold,
)
from campaigns.db.models import AgentWorklistItem, ContactAttempt, Customer, OptOutEvent, Stage
from campaigns.delivery.deliver import deliver_queued
from campaigns.contact.pipeline import StageRun, enqueue_chunk, plan_stage_chunks
from campaigns.policy.content import check_templates
from campaigns.policy.optout import opt_out_keyword
from campaigns.runs.records import start_run
from tests.conftest import AS_OF, NOW
from tests.factories import add_account
from tests.fakes import FakeGateway
from tests.contact.test_pipeline import BRAND, POLICY, TEMPLATES, attempts, run_stage
from tests.contact.test_render import copy_templates


@pytest.mark.parametrize("text", ["STOP", "stop", " Stop. ", "QUIT!", "end", "Revoke", "OPT OUT", "opt-out",
                                  "cancel", "UNSUBSCRIBE", "Please stop texting me", "stop sending me messages",
                                  "don't text me again", "remove me", "TD", "退订", "不要再发了"])
def test_opt_out_requests_are_recognised(text):
    assert opt_out_keyword(text) is not None


@pytest.mark.parametrize("text", ["I will pay on Friday", "Can you send the link again?", "thanks", "", None,
                                  "stopped by the bank today, paid"])
def test_ordinary_replies_are_not_opt_outs(text):
    assert opt_out_keyword(text) is None


def enqueue_only(engine, ladder, stage=Stage.soft_nudge, now=NOW):
    run = StageRun(start_run(engine, stage, AS_OF, now, started_at=now), stage, AS_OF, now)
    for bounds in plan_stage_chunks(engine, ladder, stage, AS_OF, 100):
        enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, POLICY)
    return run


def deliver(engine, gateway, now=NOW, stage="soft_nudge"):
    return deliver_queued(engine, {"email": gateway, "sms": gateway}, stage=stage, as_of=AS_OF, now=now,
                          policy=POLICY)


def test_a_hold_that_arrives_after_queueing_stops_the_message(engine, ladder):
    add_account(engine, "A1", days_past_due=5)
    add_account(engine, "A2", days_past_due=5)
    enqueue_only(engine, ladder)
    assert {a.status for a in attempts(engine)} == {"queued"}
    assert set_hold(engine, "C-A1", "bankruptcy", NOW)
    assert not set_hold(engine, "C-A1", "bankruptcy", NOW)  # already open
    gateway = FakeGateway()
    tally = deliver(engine, gateway)
    assert [m.account_id for m in gateway.sent] == ["A2"]
    assert tally.as_dict() == {"sent": 1, "suppressed:bankruptcy": 1}
    [held] = [a for a in attempts(engine) if a.account_id == "A1"]
    assert (held.status, held.reason) == ("suppressed", "bankruptcy")
    assert [t["check"] for t in held.policy_trace] == ["strategy", "enqueue", "release"]


def test_opt_outs_disputes_and_payments_after_queueing_are_honoured_at_once(engine, ladder):
    for n in range(4):
        add_account(engine, f"A{n}", days_past_due=5)
    enqueue_only(engine, ladder)
    opt_out(engine, "C-A0", ["email"], NOW, source="cli")
    open_dispute(engine, "A1", NOW)
    with engine.begin() as conn:
        from campaigns.db.models import Account
        from sqlalchemy import update
        conn.execute(update(Account).where(Account.id == "A2").values(status="paid"))
    gateway = FakeGateway()
    deliver(engine, gateway)
    assert [m.account_id for m in gateway.sent] == ["A3"]
    assert {a.account_id: a.reason for a in attempts(engine)} == {
        "A0": "opted_out", "A1": "disputed", "A2": "paid", "A3": None}


def test_a_deferred_message_is_released_by_the_dispatcher_when_the_window_opens(engine, ladder):
    add_account(engine, "LA", days_past_due=5, customer={"timezone": "America/Los_Angeles", "phone": "+13105550123"})
    early = datetime(2026, 11, 22, 13, 0, tzinfo=timezone.utc)  # 05:00 in Los Angeles
    enqueue_only(engine, ladder, now=early)
    [attempt] = attempts(engine)
    assert (attempt.status, attempt.reason) == ("deferred", "outside_contact_window")
    assert attempt.release_after == datetime(2026, 11, 22, 16, 0, tzinfo=timezone.utc)  # 08:00 PST
    gateway = FakeGateway()
    assert deliver_queued(engine, {"email": gateway}, now=early + timedelta(hours=2), policy=POLICY,
                          include_queued=False).as_dict() == {}
    assert gateway.sent == []
    tally = deliver_queued(engine, {"email": gateway}, now=attempt.release_after, policy=POLICY, include_queued=False)
    assert tally.as_dict() == {"sent": 1} and len(gateway.sent) == 1
    [attempt] = attempts(engine)
    assert attempt.status == "sent" and attempt.sent_at == datetime(2026, 11, 22, 16, 0, tzinfo=timezone.utc)
    assert [t.get("decision") for t in attempt.policy_trace] == [None, "defer", "release"]  # strategy first


def test_inbound_stop_opts_out_of_sms_only_and_is_recorded_without_the_message(engine, ladder):
    add_account(engine, "A1", days_past_due=5, customer={"email_opt_out": True, "phone": "+12125550188"})
    result = receive_sms(engine, "+1 212 555 0188", "Please STOP texting me", NOW)
    assert (result.matched_customers, result.keyword) == (1, "phrase")
    assert receive_sms(engine, "+12125550188", "I'll pay Friday", NOW).keyword is None
    with engine.connect() as conn:
        customer = conn.execute(select(Customer).where(Customer.id == "C-A1")).one()
        [event] = conn.execute(select(OptOutEvent)).all()
    assert customer.sms_opt_out and customer.email_opt_out
    assert (event.channel, event.source, event.keyword) == ("sms", "inbound_sms", "phrase")
    run_stage(engine, ladder, Stage.soft_nudge, {"email": FakeGateway(), "sms": FakeGateway()})
    assert {(a.channel, a.reason) for a in attempts(engine)} == {("email", "opted_out"), ("sms", "opted_out")}


def test_preference_errors_are_clear(engine):
    add_account(engine, "A1", days_past_due=5)
    with pytest.raises(PreferenceError, match="no customer 'nobody'"):
        opt_out(engine, "nobody", ["email"], NOW, source="cli")
    with pytest.raises(PreferenceError, match="unknown hold 'holiday'"):
        set_hold(engine, "C-A1", "holiday", NOW)
    with pytest.raises(PreferenceError, match="needs its end date"):
        set_hold(engine, "C-A1", "breathing_space", NOW)
    with pytest.raises(PreferenceError, match="no account 'X'"):
        open_dispute(engine, "X", NOW)


def test_holds_and_disputes_open_and_clear(engine, ladder):
    add_account(engine, "A1", days_past_due=5)
    set_hold(engine, "C-A1", "breathing_space", NOW, ends_at=NOW + timedelta(days=60))
    assert open_dispute(engine, "A1", NOW) and not open_dispute(engine, "A1", NOW)
    run_stage(engine, ladder, Stage.soft_nudge, {"email": FakeGateway()})
    assert [a.reason for a in attempts(engine)] == ["breathing_space"]
    assert clear_hold(engine, "C-A1", "breathing_space", NOW) == 1
    assert resolve_dispute(engine, "A1", NOW) == 1
    gateway = FakeGateway()
    run_stage(engine, ladder, Stage.soft_nudge, {"email": gateway}, as_of=AS_OF + timedelta(days=1))
    assert len(gateway.sent) == 1


def test_a_breathing_space_ends_on_its_end_date(engine, ladder):
    add_account(engine, "A1", days_past_due=5)
    set_hold(engine, "C-A1", "breathing_space", NOW - timedelta(days=60), ends_at=NOW - timedelta(hours=1))
    gateway = FakeGateway()
    run_stage(engine, ladder, Stage.soft_nudge, {"email": gateway})
    assert len(gateway.sent) == 1


def test_vulnerable_customers_get_gentle_templates_and_specialist_review(engine, ladder):
    add_account(engine, "V1", days_past_due=5, customer={"vulnerable": True})
    add_account(engine, "V2", days_past_due=50, customer={"vulnerable": True})
    add_account(engine, "N1", days_past_due=50)
    gateway = FakeGateway()
    gateways = {"email": gateway, "agent": AgentWorklistGateway(engine)}
    run_stage(engine, ladder, Stage.soft_nudge, gateways)
    run_stage(engine, ladder, Stage.escalation, gateways)
    [message] = gateway.sent
    assert "We're here to help" in message.subject
    nudge = next(a for a in attempts(engine) if a.account_id == "V1")
    # The gentle tone, and the arm kept: the review still counts the account in the arm it was assigned.
    assert (nudge.template, nudge.tone, nudge.variant, nudge.segment) == (
        "soft_nudge/email.en-US.gentle.j2", "gentle", "control", "vulnerable")
    with engine.connect() as conn:
        reasons = dict(conn.execute(select(AgentWorklistItem.account_id, AgentWorklistItem.reason)).all())
    assert reasons == {"V2": "vulnerable_review", "N1": "aged_debt"}


def test_time_barred_accounts_never_get_a_message_that_mentions_suing(engine, ladder, tmp_path):
    from campaigns.contact.render import TemplateLibrary

    root = copy_templates(tmp_path)
    path = root / "soft_nudge" / "email.en-US.j2"
    path.write_text(path.read_text().replace("it happens.", "it happens. Otherwise we may take legal action."))
    add_account(engine, "TB", days_past_due=5, time_barred=True)
    add_account(engine, "OK", days_past_due=5)
    run = StageRun(start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW), Stage.soft_nudge, AS_OF, NOW)
    [bounds] = plan_stage_chunks(engine, ladder, Stage.soft_nudge, AS_OF, 100)
    enqueue_chunk(engine, ladder, TemplateLibrary(root), BRAND, run, bounds, POLICY)
    assert {a.account_id: (a.status, a.reason) for a in attempts(engine)} == {
        "TB": ("failed", "time_barred_content"), "OK": ("queued", None)}
    names, problems, litigious = check_templates(root)
    assert problems == [] and litigious == {"soft_nudge/email.en-US.j2"}


def test_the_template_lint_names_each_problem(tmp_path):
    root = copy_templates(tmp_path)
    (root / "soft_nudge" / "sms.en-US.j2").write_text("{% block text %}{{ amount }} {{ pay_url }}{% endblock %}")
    (root / "soft_nudge" / "email.en-US.j2").write_text("{% block subject %}x{% endblock %}{% block text %}{{ amount")
    (root / "soft_nudge" / "letter.txt.j2").write_text("x")
    names, problems, _ = check_templates(root)
    text = "\n".join(map(str, problems))
    assert "soft_nudge/sms.en-US.j2: never states the due date ({{ due_date }})" in text
    assert "soft_nudge/sms.en-US.j2: never states how to opt out ({{ opt_out_keyword }})" in text
    assert "soft_nudge/email.en-US.j2: syntax error on line 1" in text
    assert "soft_nudge/letter.txt.j2: name is not" in text


def test_the_shipped_templates_pass_the_lint():
    from campaigns.settings import PROJECT_ROOT

    names, problems, litigious = check_templates(PROJECT_ROOT / "templates")
    assert len(names) == 40 and problems == [] and litigious == set()  # 36, and soft_nudge's four direct ones


def test_agents_check_before_calling_and_every_call_counts(engine):
    from campaigns.customers.calls import CallError, check_call, log_call

    add_account(engine, "A1", days_past_due=50)
    monday = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)  # 10:00 in New York
    assert check_call(engine, POLICY, "A1", monday).allowed
    night = check_call(engine, POLICY, "A1", datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc))
    assert (night.allowed, night.reason) == (False, "outside_contact_window")
    assert night.next_allowed == datetime(2026, 11, 24, 13, 0, tzinfo=timezone.utc)
    for hour in range(7):  # seven unanswered calls over the week
        log_call(engine, POLICY, "A1", "no_answer", monday + timedelta(days=hour % 6, minutes=hour))
    capped = check_call(engine, POLICY, "A1", monday + timedelta(days=6))
    assert (capped.allowed, capped.reason) == (False, "frequency_cap")
    assert capped.trace["counts"]["calls_7d"] == 7
    with pytest.raises(CallError, match="unknown outcome"):
        log_call(engine, POLICY, "A1", "shouted", monday)
    with pytest.raises(CallError, match="no account"):
        check_call(engine, POLICY, "nope", monday)


def test_a_conversation_starts_a_quiet_week(engine):
    from campaigns.customers.calls import check_call, log_call

    add_account(engine, "A1", days_past_due=50)
    monday = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
    log_call(engine, POLICY, "A1", "connected", monday)
    assert check_call(engine, POLICY, "A1", monday + timedelta(days=6, hours=1)).reason == "frequency_cap"
    assert check_call(engine, POLICY, "A1", monday + timedelta(days=7, minutes=1)).allowed
    with engine.connect() as conn:
        [call] = conn.execute(select(ContactAttempt).where(ContactAttempt.channel == "call")).all()
    assert (call.status, call.outcome, call.stage) == ("sent", "connected", "escalation")
