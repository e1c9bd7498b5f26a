"""Any sequence of requests to the customer's page, good, replayed, malformed or forged, with days passing and
payments arriving: each request costs exactly itself, on both databases.

- a request answered 4xx changes nothing at all (every table's row count, and the account's figures);
- a form answered 200 as new adds exactly one ``customer_actions`` row; the same form again (its key) adds
  nothing and says so, whenever it comes back;
- a GET changes nothing;
- never more than one open promise (deferral) or one open dispute on the account.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import delete, func, select
from starlette.testclient import TestClient

from campaigns.db.models import Account, Base, CustomerAction, Dispute, PaymentPromise
from campaigns.delivery.abuse import Budget, SourceLimits
from campaigns.delivery.customer_page import CustomerPages
from campaigns.delivery.webhooks import create_app
from campaigns.ladder.config import DeferralRules
from campaigns.money.payments import record_payment
from campaigns.money.settlement import settle_day
from tests.conftest import NOW
from tests.delivery.test_customer_page import BRAND, SECRET, TODAY, token
from tests.factories import add_account

ZONE = ZoneInfo("America/New_York")
SEQUENCES = int(os.environ.get("CAMPAIGNS_PAGE_SEQUENCES", "25"))
GOOD_FORMS = {
    "reason": st.fixed_dictionaries({"reason": st.sampled_from(["hardship", "problem_paying", "did_not_know",
                                                                "dispute", "other"]),
                                     "note": st.text(max_size=30)}),
    "time": st.fixed_dictionaries({"until": st.integers(1, 14)}),
    "call": st.fixed_dictionaries({"day": st.integers(0, 7), "window": st.sampled_from(["morning", "afternoon",
                                                                                         "evening"])}),
    "dispute": st.fixed_dictionaries({"note": st.text(max_size=30)}),
    "stop": st.fixed_dictionaries({"channel": st.sampled_from(["email", "sms"])}),
    "rate": st.fixed_dictionaries({"score": st.integers(1, 5), "note": st.text(max_size=30)}),
}
BAD_FIELDS = st.dictionaries(st.sampled_from(["reason", "until", "day", "window", "channel", "score", "note"]),
                             st.one_of(st.text(max_size=12), st.just("x" * 1200), st.just("2026-13-45")),
                             max_size=4)


class PageSequences(RuleBasedStateMachine):
    engine = None  # set by the test, per database
    workdir = None

    @initialize()
    def start(self):
        with self.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(delete(table))
        add_account(self.engine, "A1", days_past_due=3)
        self.now = NOW
        self.keys: list[str] = []  # forms answered as new
        self.counter = 0
        self.client = self._client()

    def _client(self) -> TestClient:
        pages = CustomerPages(SECRET, BRAND, ZONE, DeferralRules(), clock=lambda: self.now)
        return TestClient(create_app(self.engine, customer_pages=pages,
                                     limits=SourceLimits(Budget(1e6, 1e6), Budget(1e6, 1e6))))

    @property
    def today(self):
        return self.now.astimezone(ZONE).date()

    def _counts(self) -> dict:
        with self.engine.connect() as conn:
            counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                      for t in Base.metadata.sorted_tables}
            counts["figures"] = conn.execute(select(Account.figures).where(Account.id == "A1")).scalar_one()
        return counts

    def _url(self) -> str:
        return f"/c/{token('A1', TODAY + timedelta(days=60))}"

    def _post(self, action: str, form: dict):
        before = self._counts()
        answer = self.client.post(f"{self._url()}/{action}", data=form)
        after = self._counts()
        return answer, before, after

    @rule()
    def open_the_page(self):
        before = self._counts()
        answer = self.client.get(self._url())
        assert answer.status_code == 200
        assert self._counts() == before

    @rule(action=st.sampled_from(sorted(GOOD_FORMS)), data=st.data())
    def send_a_form(self, action, data):
        form = {k: str(v) for k, v in data.draw(GOOD_FORMS[action]).items()}
        if action == "time":
            form["until"] = (self.today + timedelta(days=int(form["until"]))).isoformat()
        if action == "call":
            form["day"] = (self.now.astimezone(ZONE).date() + timedelta(days=int(form["day"]))).isoformat()
        self.counter += 1
        form["key"] = f"form{self.counter}"
        answer, before, after = self._post(action, form)
        if answer.status_code == 200:
            assert "We already have this" not in answer.text
            assert after["customer_actions"] == before["customer_actions"] + 1
            self.keys.append((action, form))
        else:
            assert answer.status_code in (409, 422), (answer.status_code, action)
            assert after == before, (action, form)

    @rule(data=st.data())
    def send_a_form_again(self, data):
        if not self.keys:
            return
        action, form = data.draw(st.sampled_from(self.keys))
        answer, before, after = self._post(action, form)
        assert answer.status_code == 200 and "We already have this" in answer.text
        assert after == before

    @rule(action=st.sampled_from(["reason", "time", "call", "dispute", "stop", "rate", "nonsense"]),
          fields=BAD_FIELDS, key=st.sampled_from(["", "k" * 65, "bad key!", "fresh"]))
    def send_a_bad_form(self, action, fields, key):
        self.counter += 1
        form = {**fields, "key": f"bad{self.counter}" if key == "fresh" else key}
        answer, before, after = self._post(action, form)
        if answer.status_code == 200:  # random fields can make a good form (a reason "other", a score "3")
            assert after["customer_actions"] == before["customer_actions"] + 1
            self.keys.append((action, form))
        else:
            assert after == before, (answer.status_code, action, form)

    @rule(which=st.sampled_from(["forged", "other", "expired"]), action=st.sampled_from(sorted(GOOD_FORMS)))
    def send_with_a_link_that_is_not_good(self, which, action):
        bad = {"forged": self._url()[:-2] + "zz", "other": f"/c/{token('A2')}",
               "expired": f"/c/{token('A1', self.today - timedelta(days=1))}"}[which]
        before = self._counts()
        answer = self.client.post(f"{bad}/{action}", data={"key": "k1", "reason": "other"})
        assert answer.status_code == (410 if which == "expired" else 403)
        assert self._counts() == before

    @rule(days=st.integers(1, 5))
    def days_pass(self, days):
        self.now += timedelta(days=days)
        settle_day(self.engine, _ladder(), self.today, self.now, self.workdir, zone=ZONE)

    @rule(cents=st.integers(1000, 60000))
    def a_payment(self, cents):
        self.counter += 1
        record_payment(self.engine, "A1", Decimal(cents) / 100, self.now, self.now, ZONE,
                       payment_id=f"p{self.counter}")

    @invariant()
    def one_open_promise_and_one_open_dispute_at_most(self):
        with self.engine.connect() as conn:
            assert conn.execute(select(func.count()).where(PaymentPromise.status == "open")).scalar_one() <= 1
            assert conn.execute(select(func.count()).where(Dispute.resolved_at.is_(None))).scalar_one() <= 1
            keys = conn.execute(select(CustomerAction.request_key)).scalars().all()
        assert len(keys) == len(set(keys)) and all(re.fullmatch(r"page:A1:[\w-]+", k) for k in keys)


def _ladder():
    from campaigns import bootstrap

    return bootstrap.services().ladder


def test_any_sequence_of_page_requests_costs_each_request_exactly_itself(engine, tmp_path):
    PageSequences.engine, PageSequences.workdir = engine, tmp_path
    run_state_machine_as_test(PageSequences, settings=settings(
        max_examples=SEQUENCES, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.filter_too_much, HealthCheck.data_too_large]))
