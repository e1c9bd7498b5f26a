"""Plans from offer to completion or break, promises, signed links, and the rules that make the options."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from babel.numbers import get_currency_precision
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from campaigns import bootstrap
from campaigns.contact.brand import Brand
from campaigns.contact.plan_offers import make_offer
from campaigns.db.models import Account, PaymentPromise, PlanInstalment, RepaymentPlan
from campaigns.money import offers, promises
from campaigns.money.links import LinkError, make_token, offer_expiry, parse_token, verify
from campaigns.money.offers import PlanError, accept_link, accept_offer, break_overdue_plans, expire_offers
from campaigns.money.payments import record_payment
from campaigns.ladder.config import PlanFee, PlanRules
from campaigns.money.plans import affordable_counts, allocate, offer_options
from campaigns.money.promises import PromiseError, break_overdue_promises, record_promise
from tests.conftest import AS_OF, NOW
from tests.factories import add_account

ZONE = ZoneInfo("America/New_York")
RULES = PlanRules(counts=[3, 6, 12], min_instalment={"USD": 25, "JPY": 2500, "KWD": 5}, break_after_days=10)
SECRET = b"k" * 32


def unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-get_currency_precision(currency))


@given(minor=st.integers(min_value=1, max_value=10**9), currency=st.sampled_from(["USD", "JPY", "KWD", "CNY"]),
       minimum=st.integers(min_value=0, max_value=10**6))
def test_offered_instalments_add_up_to_the_balance_and_never_fall_below_the_minimum(minor, currency, minimum):
    balance = Decimal(minor) * unit(currency)
    rules = PlanRules(counts=[3, 6, 12], min_instalment={currency: Decimal(minimum) * unit(currency)})
    for option in offer_options(balance, currency, rules, AS_OF):
        amounts = [i.amount for i in option.instalments]
        assert sum(amounts) == balance and len(amounts) == option.count >= 2
        assert all(a == a.quantize(unit(currency)) for a in amounts)  # the currency's own decimals
        assert min(amounts) >= Decimal(minimum) * unit(currency)


def test_a_small_balance_is_offered_fewer_instalments_or_none():
    assert affordable_counts(Decimal("1000"), "USD", RULES) == [3, 6, 12]
    assert affordable_counts(Decimal("100"), "USD", RULES) == [3]
    assert affordable_counts(Decimal("60"), "USD", RULES) == [2]  # the largest count that keeps $25
    assert affordable_counts(Decimal("40"), "USD", RULES) == []  # asked for in one payment
    assert affordable_counts(Decimal("40"), "EUR", RULES) == [3, 6, 12]  # no minimum for EUR


def test_a_fee_is_added_and_fortnightly_dates_step_by_fourteen_days():
    rules = PlanRules(counts=[3], frequency="fortnightly", fee=PlanFee(percent=Decimal(2)))
    [option] = offer_options(Decimal("300.00"), "USD", rules, date(2026, 11, 22))
    assert option.total == Decimal("306.00")
    assert [i.due_date for i in option.instalments] == [date(2026, 11, 29), date(2026, 12, 13), date(2026, 12, 27)]


@given(outstanding=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=24),
       paid=st.integers(min_value=0, max_value=3 * 10**7))
def test_allocation_fills_the_oldest_first_and_returns_the_excess(outstanding, paid):
    lacking = [Decimal(x) / 100 for x in outstanding]
    amount = Decimal(paid) / 100
    shares, left = allocate(lacking, amount)
    assert sum(shares) + left == amount and all(0 <= s <= x for s, x in zip(shares, lacking))
    # Oldest first: every instalment before the first one left short is paid whole, none after it gets anything.
    short = next((i for i, (s, x) in enumerate(zip(shares, lacking)) if s < x), len(shares))
    assert all(s == 0 for s in shares[short + 1:])
    if left:
        assert shares == lacking  # an over-payment pays everything
    with pytest.raises(ValueError):
        allocate(lacking, Decimal(-1))


@pytest.mark.parametrize(("current", "allowed"), list(offers.TRANSITIONS.items()))
def test_the_plan_state_machine_allows_only_its_moves(current, allowed):
    for wanted in offers.TRANSITIONS:
        if wanted in allowed:
            offers.check_transition(current, wanted)
        else:
            with pytest.raises(PlanError, match=f"^a plan that is {current} cannot become {wanted} "):
                offers.check_transition(current, wanted)


@pytest.mark.parametrize(("current", "allowed"), list(promises.TRANSITIONS.items()))
def test_the_promise_state_machine_allows_only_its_moves(current, allowed):
    for wanted in promises.TRANSITIONS:
        if wanted in allowed:
            promises.check_transition(current, wanted)
        else:
            with pytest.raises(PromiseError, match=f"^a promise that is {current} cannot become {wanted} "):
                promises.check_transition(current, wanted)


def test_a_token_is_refused_when_forged_or_expired():
    expires = offer_expiry(AS_OF, 14, ZONE)
    token = make_token(SECRET, "A1", AS_OF, 2, expires)
    link = parse_token(token)
    verify(SECRET, link, expires, NOW)
    with pytest.raises(LinkError, match="signature") as forged:
        verify(b"other" * 8, link, expires, NOW)
    assert forged.value.status == 403
    with pytest.raises(LinkError, match="signature"):  # another option with the same signature
        verify(SECRET, parse_token(token.replace("~2~", "~1~")), expires, NOW)
    with pytest.raises(LinkError, match="expired") as late:
        verify(SECRET, link, expires, expires)
    assert late.value.status == 410
    for junk in ("", "A1", "A1~2026~1~abc", token + "x", "A 1~20261122~1~" + "a" * 20, "A1~20261399~1~" + "a" * 20):
        with pytest.raises(LinkError, match="not a plan link"):
            parse_token(junk)


def offer(engine, account_id: str, as_of: date = AS_OF, rules: PlanRules = RULES) -> dict:
    """Store the offer the plan_offer stage would make (as it does when its message is queued)."""
    with engine.connect() as conn:
        row = conn.execute(select(Account.id.label("account_id"), Account.balance, Account.currency)
                           .where(Account.id == account_id)).one()
    rule = type("Rule", (), {"plans": rules})()
    brand = Brand("Acme", "https://pay/{account_id}", "https://pref/{account_id}", "+1", plan_link_secret=SECRET,
                  lender_timezone="America/New_York")
    made = make_offer(row, rule, as_of, brand)
    with engine.begin() as conn:
        offers.store_offers(conn, [made.as_row(account_id, row.currency, NOW)], as_of)
    return {"offer": made, "tokens": [make_token(SECRET, account_id, as_of, n, made.expires_at)
                                      for n in range(len(made.options) + 1)]}


def plan_row(engine, account_id: str):
    with engine.connect() as conn:
        return conn.execute(select(RepaymentPlan).where(RepaymentPlan.account_id == account_id)
                            .order_by(RepaymentPlan.id.desc())).first()


def test_accepting_an_offer_sets_a_schedule_and_takes_the_account_out_of_the_ladder(engine):
    add_account(engine, "A1", days_past_due=20)  # balance 600.00
    offer(engine, "A1")
    plan = accept_offer(engine, "A1", 1, NOW, AS_OF, RULES)
    assert [(d.isoformat(), str(a)) for d, a in plan.schedule] == [
        ("2026-11-29", "200.00"), ("2026-12-29", "200.00"), ("2027-01-29", "200.00")]
    with engine.connect() as conn:
        a = conn.execute(select(Account.plan_due_date, Account.plan_amount_due)).one()
    assert (a.plan_due_date, a.plan_amount_due) == (date(2026, 11, 29), Decimal("200.00"))
    row = plan_row(engine, "A1")
    assert (row.status, row.chosen_option, row.instalments, row.accepted_via) == ("accepted", 1, 3, "cli")
    with pytest.raises(PlanError, match="already in a plan"):
        accept_offer(engine, "A1", 1, NOW, AS_OF, RULES)


def test_an_offer_refuses_a_missing_option_a_past_start_and_a_missing_offer(engine):
    add_account(engine, "A1", days_past_due=20)
    with pytest.raises(PlanError, match="has no open plan offer"):
        accept_offer(engine, "A1", 1, NOW, AS_OF, RULES)
    offer(engine, "A1")
    with pytest.raises(PlanError, match="option\\(s\\) 1-3; there is no option 4"):
        accept_offer(engine, "A1", 4, NOW, AS_OF, RULES)
    with pytest.raises(PlanError, match="cannot start in the past"):
        accept_offer(engine, "A1", 1, NOW, AS_OF, RULES, start=AS_OF - timedelta(days=1))


def test_a_link_accepts_once_and_a_forged_expired_reused_or_superseded_one_is_refused(engine):
    add_account(engine, "A1", days_past_due=20)
    add_account(engine, "A2", days_past_due=20)
    tokens = offer(engine, "A1")["tokens"]
    with pytest.raises(LinkError) as forged:
        accept_link(engine, tokens[1][:-1] + ("a" if tokens[1][-1] != "a" else "b"), NOW, AS_OF, RULES, SECRET)
    assert forged.value.status == 403
    expires = offer(engine, "A2")["offer"].expires_at
    with pytest.raises(LinkError, match="expired"):
        accept_link(engine, make_token(SECRET, "A2", AS_OF, 1, expires), expires, AS_OF, RULES, SECRET)
    plan = accept_link(engine, tokens[2], NOW, AS_OF, RULES, SECRET)
    assert plan.option == 2 and plan_row(engine, "A1").accepted_via == "link"
    for token in (tokens[2], tokens[1]):  # the same link again, or another option of the used offer
        with pytest.raises(LinkError, match="is accepted: it cannot be accepted any more") as used:
            accept_link(engine, token, NOW, AS_OF, RULES, SECRET)
        assert used.value.status == 409
    old = offer(engine, "A2")["tokens"][1]
    offer(engine, "A2", AS_OF + timedelta(days=7))  # a newer offer retires the older one
    with pytest.raises(LinkError, match="superseded"):
        accept_link(engine, old, NOW + timedelta(days=7), AS_OF + timedelta(days=7), RULES, SECRET)


def test_the_plan_pages_show_then_accept_and_refuse_what_they_must(engine):
    from starlette.testclient import TestClient

    from campaigns.delivery.webhooks import PlanLinks, create_app

    add_account(engine, "A1", days_past_due=20)
    tokens = offer(engine, "A1")["tokens"]
    client = TestClient(create_app(engine, plan_links=PlanLinks(SECRET, RULES, ZONE, clock=lambda: NOW)))
    page = client.get(f"/plans/{tokens[0]}")
    assert page.status_code == 200 and page.text.count("Choose this plan") == 3
    assert "Customer A1" not in page.text and plan_row(engine, "A1").status == "offered"  # a GET changes nothing
    assert client.post(f"/plans/{tokens[3]}").status_code == 200
    assert plan_row(engine, "A1").chosen_option == 3
    # Issue 24 item 16: the same button again (a double click) shows the plan chosen, not a 409 error page.
    again = client.post(f"/plans/{tokens[3]}")
    assert again.status_code == 200 and "<title>You already chose this plan</title>" in again.text
    assert client.get(f"/plans/{tokens[3]}").status_code == 200 and client.get(f"/plans/{tokens[0]}").status_code == 200
    assert client.get(f"/plans/{tokens[1]}").status_code == 409  # another option of the chosen offer
    assert plan_row(engine, "A1").chosen_option == 3
    assert client.post("/plans/A1~20261122~1~" + "a" * 20).status_code == 403
    assert client.post("/plans/<script>").status_code == 403


def test_payments_pay_instalments_oldest_first_and_complete_the_plan(engine):
    add_account(engine, "A1", days_past_due=20)
    offer(engine, "A1")
    accept_offer(engine, "A1", 1, NOW, AS_OF, RULES)
    record_payment(engine, "A1", Decimal("250.00"), NOW, NOW, ZONE)  # the first and part of the second
    with engine.connect() as conn:
        paid = conn.execute(select(PlanInstalment.paid).order_by(PlanInstalment.seq)).scalars().all()
        a = conn.execute(select(Account.plan_due_date, Account.plan_amount_due, Account.balance)).one()
    assert paid == [Decimal("200.00"), Decimal("50.00"), Decimal("0")]
    assert (a.plan_due_date, a.plan_amount_due, a.balance) == (date(2026, 12, 29), Decimal("150.00"),
                                                               Decimal("350.00"))
    report = record_payment(engine, "A1", Decimal("350.00"), NOW + timedelta(days=1), NOW, ZONE)
    assert report.plans_completed == 1 and report.accounts_paid_off == 1
    assert plan_row(engine, "A1").status == "completed"
    with engine.connect() as conn:
        assert conn.execute(select(Account.status, Account.plan_due_date)).one() == ("paid", None)


def test_an_instalment_unpaid_past_the_grace_breaks_the_plan_and_offers_expire(engine):
    add_account(engine, "A1", days_past_due=20)
    add_account(engine, "A2", days_past_due=20)
    offer(engine, "A1")
    made = offer(engine, "A2")["offer"]
    accept_offer(engine, "A1", 1, NOW, AS_OF, RULES)  # first instalment 2026-11-29
    with engine.begin() as conn:
        assert break_overdue_plans(conn, date(2026, 12, 9), NOW, RULES) == 0  # 10 days after: still in grace
        assert break_overdue_plans(conn, date(2026, 12, 10), NOW, RULES) == 1
        assert break_overdue_plans(conn, date(2026, 12, 10), NOW, RULES) == 0  # idempotent
        assert expire_offers(conn, made.expires_at - timedelta(seconds=1)) == 0
        assert expire_offers(conn, made.expires_at) == 1
    row = plan_row(engine, "A1")
    assert (row.status, row.close_reason) == ("broken", "instalment 1 unpaid 10 days after its date")
    assert plan_row(engine, "A2").status == "expired"
    with engine.connect() as conn:
        assert conn.execute(select(Account.plan_due_date).where(Account.id == "A1")).scalar() is None


def test_a_promise_is_kept_by_payments_in_time_and_broken_the_day_after(engine):
    add_account(engine, "A1", days_past_due=10)
    add_account(engine, "A2", days_past_due=10)
    record_promise(engine, "A1", Decimal("100.00"), AS_OF + timedelta(days=3), NOW, AS_OF)
    record_promise(engine, "A2", Decimal("100.00"), AS_OF + timedelta(days=3), NOW, AS_OF)
    later = NOW + timedelta(days=5)
    record_payment(engine, "A1", Decimal("60.00"), NOW + timedelta(days=1), later, ZONE)
    report = record_payment(engine, "A1", Decimal("40.00"), NOW + timedelta(days=2), later, ZONE)
    assert report.promises_kept == 1
    record_payment(engine, "A2", Decimal("100.00"), NOW + timedelta(days=5), later, ZONE)  # too late
    with engine.begin() as conn:
        assert break_overdue_promises(conn, AS_OF + timedelta(days=3), NOW) == 0  # the day itself: still open
        assert break_overdue_promises(conn, AS_OF + timedelta(days=4), NOW) == 1
        statuses = dict(conn.execute(select(PaymentPromise.account_id, PaymentPromise.status)).all())
    assert statuses == {"A1": "kept", "A2": "broken"}


@pytest.mark.parametrize(("by", "amount", "message"), [
    (AS_OF - timedelta(days=1), "10", "is in the past"),
    (AS_OF + timedelta(days=31), "10", "more than 30 days ahead"),
    (AS_OF + timedelta(days=3), "10.001", "the decimals of USD"),
    (AS_OF + timedelta(days=3), "0", "must be positive"),
])
def test_a_promise_that_cannot_be_kept_is_refused_in_one_line(engine, by, amount, message):
    add_account(engine, "A1", days_past_due=10)
    with pytest.raises(PromiseError, match=message):
        record_promise(engine, "A1", Decimal(amount), by, NOW, AS_OF)


def test_one_open_promise_at_a_time(engine):
    add_account(engine, "A1", days_past_due=10)
    record_promise(engine, "A1", Decimal("10"), AS_OF + timedelta(days=3), NOW, AS_OF)
    with pytest.raises(PromiseError, match="already has an open promise"):
        record_promise(engine, "A1", Decimal("10"), AS_OF + timedelta(days=3), NOW, AS_OF)
    with pytest.raises(PromiseError, match="no account 'NOPE'"):
        record_promise(engine, "NOPE", Decimal("10"), AS_OF + timedelta(days=3), NOW, AS_OF)


def test_the_link_key_is_made_once_private_and_kept(tmp_path, monkeypatch):
    from campaigns.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", plan_link_secret="")
    first = bootstrap.plan_link_secret(settings)
    assert len(first) == 64 and bootstrap.plan_link_secret(settings) == first
    assert oct((tmp_path / "data" / "plan-link.key").stat().st_mode & 0o777) == "0o600"
    assert bootstrap.plan_link_secret(Settings(data_dir=tmp_path, plan_link_secret="s3cret")) == b"s3cret"


def test_no_token_whatever_its_shape_makes_the_plan_pages_fail(engine):
    """Hypothesis: any path segment, valid-looking or not, is refused cleanly (never a 500, never a change)."""
    from hypothesis import HealthCheck, settings
    from starlette.testclient import TestClient

    from campaigns.delivery.webhooks import PlanLinks, create_app, default_limits

    add_account(engine, "A1", days_past_due=20)
    real = offer(engine, "A1")["tokens"][1]
    # Every probe comes from the one test client: a failure budget that lets them all through (the limits
    # themselves are tested in test_abuse.py).
    client = TestClient(create_app(engine, plan_links=PlanLinks(SECRET, RULES, ZONE, clock=lambda: NOW),
                                   limits=default_limits(burst=10**6, failure_burst=10**6)), raise_server_exceptions=False)
    shapes = st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#%"), max_size=120),
        st.builds(lambda i, c: real[:i] + c + real[i + 1:], st.integers(0, len(real) - 1),
                  st.sampled_from("a7~.Z-_0")),
        st.builds(lambda a, d, o: f"{a}~{d}~{o}~" + "a" * 20, st.from_regex(r"[A-Za-z0-9]{1,64}", fullmatch=True),
                  st.from_regex(r"\d{8}", fullmatch=True), st.integers(0, 99)))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(token=shapes)
    def probe(token):
        from urllib.parse import quote

        for method in ("get",) if token == real else ("get", "post"):
            response = getattr(client, method)(f"/plans/{quote(token, safe='')}")
            assert response.status_code in (403, 404, 405, 409, 410, 422) or (
                token == real and response.status_code == 200), (token, response.status_code)

    probe()
    assert plan_row(engine, "A1").status == "offered"
