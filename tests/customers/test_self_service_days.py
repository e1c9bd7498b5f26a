"""What the page's requests do over simulated days: a deferral pauses every stage until its date and breaks the day
after; a call back is on the worklist inside the window the customer chose, and nowhere else."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from campaigns.customers import self_service
from campaigns.customers.calls import check_call
from campaigns.customers.self_service import page_facts
from campaigns.customers.worklist import open_worklist
from campaigns.db.models import ContactAttempt, PaymentPromise, Stage
from campaigns.ladder.config import DeferralRules
from campaigns.money.payments import record_payment
from campaigns.money.settlement import settle_day
from tests.conftest import AS_OF, NOW
from tests.contact.test_pipeline import POLICY
from tests.customers.test_worklist_agency import cohort_ids
from tests.factories import add_account

ZONE = ZoneInfo("America/New_York")
STAGES = (Stage.pre_due, Stage.soft_nudge, Stage.plan_offer, Stage.escalation, Stage.thank_you)


def morning(day) -> datetime:
    return datetime.combine(day, time(9), ZONE).astimezone(timezone.utc)


def stages_of(engine, ladder, account_id: str, day) -> list[str]:
    return [s.value for s in STAGES if s in ladder.stages and account_id in cohort_ids(engine, ladder, s, day)]


def test_a_deferral_pauses_every_stage_until_its_date_and_the_ladder_resumes_the_day_after_it_breaks(
        engine, ladder, tmp_path):
    add_account(engine, "D", days_past_due=5)
    add_account(engine, "K", days_past_due=5)
    until = AS_OF + timedelta(days=7)
    for account in ("D", "K"):
        facts = page_facts(engine, account, NOW, ZONE, DeferralRules())
        self_service.ask_for_time(engine, facts, until, f"form-{account}", NOW, ZONE, DeferralRules())
    seen = {}
    for offset in range(0, 12):
        day = AS_OF + timedelta(days=offset)
        if day == AS_OF + timedelta(days=6):  # K pays what it asked time for, the day before its date
            record_payment(engine, "K", Decimal("120.50"), morning(day), morning(day), ZONE)
        settle_day(engine, ladder, day, morning(day), tmp_path, zone=ZONE)  # what each daily run does first
        seen[offset] = (stages_of(engine, ladder, "D", day), stages_of(engine, ladder, "K", day))
    # Until its date, in no stage; the day after, broken, the ladder takes it back where its age puts it.
    assert all(seen[o] == ([], []) for o in range(0, 8)), seen
    assert seen[8][0] == ["soft_nudge"] and seen[11][0] == ["plan_offer"]  # 13 and 16 days past due
    # Kept (paid in time), the account owes the rest of its balance but is not due again: no dunning stage.
    assert "soft_nudge" not in seen[8][1]
    with engine.connect() as conn:
        assert dict(conn.execute(select(PaymentPromise.account_id, PaymentPromise.status)).all()) == {
            "D": "broken", "K": "kept"}
    # Six months go by before the page offers more time again.
    assert page_facts(engine, "D", NOW + timedelta(days=30), ZONE, DeferralRules()).deferral_refused == \
        "deferred_recently"


def test_a_call_back_is_on_the_worklist_inside_the_chosen_window_and_nowhere_else(engine):
    add_account(engine, "C", days_past_due=20, customer={"timezone": "America/Los_Angeles"})
    facts = page_facts(engine, "C", NOW, ZONE, DeferralRules())
    tomorrow = (NOW.astimezone(ZoneInfo("America/Los_Angeles")) + timedelta(days=1)).date()
    self_service.ask_for_call(engine, facts, tomorrow, "morning", "form-1", NOW)
    window = (datetime.combine(tomorrow, time(9), ZoneInfo("America/Los_Angeles")),
              datetime.combine(tomorrow, time(12), ZoneInfo("America/Los_Angeles")))
    moment = NOW
    inside = []
    while moment < NOW + timedelta(days=3):
        listed = "C" in set(open_worklist(engine, now=moment)["account_id"])
        decision = check_call(engine, POLICY, "C", moment)
        in_window = window[0] <= moment < window[1]
        assert listed == in_window, moment
        if not in_window and moment < window[0]:
            assert (decision.allowed, decision.reason) == (False, "asked_for_call_later")
            assert decision.next_allowed == window[0]
        if in_window:
            inside.append(moment)
            assert decision.allowed, (moment, decision.reason)
        moment += timedelta(minutes=30)
    assert len(inside) == 6  # 09:00 to 11:30, the customer's time


def test_a_customer_who_told_us_of_hardship_gets_the_gentle_templates(engine, ladder):
    from tests.contact.test_pipeline import attempts, run_stage
    from tests.fakes import FakeGateway

    add_account(engine, "H", days_past_due=3)
    add_account(engine, "N", days_past_due=3)
    facts = page_facts(engine, "H", NOW - timedelta(days=1), ZONE, DeferralRules())
    self_service.state_reason(engine, facts, "hardship", None, "form-h", NOW - timedelta(days=1))
    run_stage(engine, ladder, Stage.soft_nudge, {"email": FakeGateway(), "sms": FakeGateway()})
    sent = {a.account_id: a for a in attempts(engine) if a.status == "sent"}
    assert sent["H"].tone == "gentle" and sent["H"].template.endswith(".gentle.j2")
    assert sent["N"].tone != "gentle"
    with engine.connect() as conn:
        trace = conn.execute(select(ContactAttempt.policy_trace).where(ContactAttempt.id == sent["H"].id)).scalar_one()
    assert "said: hardship" in str(trace)
