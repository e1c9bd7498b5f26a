"""The customer's own page, over HTTP: what it shows, in which language, and each action once, on both databases."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from campaigns.contact.brand import Brand
from campaigns.contact.page_links import make_page_token, read_page_token
from campaigns.db.models import (AgentWorklistItem, Base, ContactAttempt, Customer, CustomerAction, Dispute,
                                 OptOutEvent, PaymentPromise)
from campaigns.delivery.abuse import Budget, SourceLimits
from campaigns.delivery.customer_page import CustomerPages, available_locales, page_locale, translations
from campaigns.delivery.webhooks import create_app
from campaigns.ladder.config import DeferralRules
from campaigns.money.links import LinkError
from tests.conftest import NOW
from tests.delivery.test_provider_events import attempt
from tests.factories import add_account

SECRET = b"customer-page-secret"
ZONE = ZoneInfo("America/New_York")
TODAY = NOW.astimezone(ZONE).date()
BRAND = Brand(lender_name="Acme Lending", pay_url="https://pay.example.com/a/{account_id}?amount={amount}",
              email_preferences_url="https://pay.example.com/preferences/{account_id}",
              support_phone="+1 800 555 0100", page_url="https://pay.example.com/c/{token}", page_secret=SECRET,
              support_email="help@example.com", support_hours="Mon-Fri 09:00-18:00")


def token(account_id: str = "A1", last_day: date = TODAY + timedelta(days=30)) -> str:
    return make_page_token(SECRET, account_id, last_day)


def client_for(engine, *, clock=lambda: NOW, limits=None, deferral: DeferralRules | None = None) -> TestClient:
    pages = CustomerPages(SECRET, BRAND, ZONE, deferral or DeferralRules(), clock=clock)
    return TestClient(create_app(engine, customer_pages=pages, limits=limits))


def form_key(html: str) -> str:
    return re.search(r'name="key" value="([^"]+)"', html).group(1)


def count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def all_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in Base.metadata.sorted_tables}


def test_tokens_are_refused_when_forged_moved_to_another_account_or_expired():
    good = token("A1")
    assert read_page_token(SECRET, good, NOW, ZONE).account_id == "A1"
    for bad in (good.replace("A1~", "A2~"), good[:-1] + ("a" if good[-1] != "a" else "b"), "A1", "",
                good.replace("~2026", "~2025"), make_page_token(b"another key", "A1", TODAY)):
        with pytest.raises(LinkError) as refused:
            read_page_token(SECRET, bad, NOW, ZONE)
        assert refused.value.status == 403
    with pytest.raises(LinkError) as expired:
        read_page_token(SECRET, token("A1", TODAY - timedelta(days=1)), NOW, ZONE)
    assert expired.value.status == 410
    # The link works to the end of its last day in the lender's zone, and not a second after.
    last = read_page_token(SECRET, token("A1", TODAY), NOW, ZONE)
    assert last.expires_at(ZONE) == datetime(2026, 11, 23, 5, 0, tzinfo=timezone.utc)


def test_the_page_shows_what_is_owed_in_the_customers_language_and_names_no_one(engine):
    add_account(engine, "A1", days_past_due=5, customer={"name": "Grace Brown"})
    add_account(engine, "B7", days_past_due=5, customer={"name": "Li Wei", "locale": "zh-CN",
                                                         "timezone": "Asia/Shanghai"})
    client = client_for(engine)
    before = all_counts(engine)
    english = client.get(f"/c/{token('A1')}")
    assert english.status_code == 200
    assert '<html lang="en-US">' in english.text
    assert "Your account ending A1" in english.text and "$120.50" in english.text and "$600.00" in english.text
    assert 'href="https://pay.example.com/a/A1?amount=120.50"' in english.text
    assert "Grace" not in english.text and "c-a1@example.com" not in english.text and "2125550123" not in english.text
    assert english.headers["cache-control"] == "no-store" and english.headers["referrer-policy"] == "no-referrer"
    chinese = client.get(f"/c/{token('B7')}")
    assert '<html lang="zh-CN">' in chinese.text
    assert "尾号为 B7 的账户" in chinese.text and "申请延期还款" in chinese.text and "US$120.50" in chinese.text
    assert "Li Wei" not in chinese.text
    assert all_counts(engine) == before  # GET changes nothing: mail scanners open links


def test_forged_expired_and_unknown_links_say_only_that(engine):
    add_account(engine, "A1", days_past_due=5)
    client = client_for(engine)
    assert client.get(f"/c/{token('A1')[:-2]}xx").status_code == 403
    assert client.get(f"/c/{token('ZZ')}").status_code == 403  # signed, but no such account: as if forged
    expired = client.get(f"/c/{token('A1', TODAY - timedelta(days=1))}", headers={"Accept-Language": "zh-CN,zh"})
    assert expired.status_code == 410 and "此链接已过期" in expired.text
    forged_post = client.post(f"/c/{token('A1')[:-2]}xx/dispute", data={"key": "k1"})
    assert forged_post.status_code == 403 and count(engine, Dispute) == 0


def test_each_action_is_recorded_once_with_its_code(engine):
    queued = attempt(engine, "A1", status="queued")  # adds A1, 5 days past due
    client = client_for(engine)
    page = client.get(f"/c/{token('A1')}").text
    key = form_key(page)
    url = f"/c/{token('A1')}"

    said = client.post(f"{url}/reason", data={"key": key, "reason": "hardship", "note": "lost my job"})
    assert said.status_code == 200 and "Thank you for telling us" in said.text
    again = client.post(f"{url}/reason", data={"key": key, "reason": "hardship", "note": "lost my job"})
    assert again.status_code == 200 and "We already have this" in again.text
    # Hardship opens the plan and more-time offers first.
    assert "<details open><summary>Ask for more time" in client.get(url).text

    until = (TODAY + timedelta(days=10)).isoformat()
    deferred = client.post(f"{url}/time", data={"key": form_key(client.get(url).text), "until": until})
    assert deferred.status_code == 200 and "You have more time" in deferred.text
    with engine.connect() as conn:
        promise = conn.execute(select(PaymentPromise.kind, PaymentPromise.due_by, PaymentPromise.amount,
                                      PaymentPromise.status)).one()
        assert (promise.kind, promise.due_by.isoformat(), promise.amount, promise.status) == (
            "deferral", until, Decimal("120.50"), "open")
        # What was queued for the account is stopped at once, like a promise does.
        assert conn.execute(select(ContactAttempt.status, ContactAttempt.reason)
                            .where(ContactAttempt.id == queued)).one() == ("suppressed", "promise_open")
    assert "You have until" in client.get(url).text
    refused = client.post(f"{url}/time", data={"key": "another-form", "until": until})
    assert refused.status_code == 422 and "You already have more time" in refused.text

    day = (TODAY + timedelta(days=1)).isoformat()
    called = client.post(f"{url}/call", data={"key": "call-form", "day": day, "window": "evening"})
    assert called.status_code == 200 and "We will call you between" in called.text
    with engine.connect() as conn:
        item = conn.execute(select(AgentWorklistItem.reason, AgentWorklistItem.call_from,
                                   AgentWorklistItem.call_until, AgentWorklistItem.attempt_id)).one()
    # 17:00 to 20:00 in the customer's zone (New York), stored in UTC.
    assert item.reason == "asked_for_call" and item.attempt_id is None
    assert item.call_from == datetime(2026, 11, 23, 22, 0, tzinfo=timezone.utc)
    assert item.call_until == datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)
    assert client.post(f"{url}/call", data={"key": "call-form", "day": day, "window": "evening"}).status_code == 200
    assert count(engine, AgentWorklistItem) == 1

    stopped = client.post(f"{url}/stop", data={"key": "stop-form", "channel": "sms"})
    assert stopped.status_code == 200
    with engine.connect() as conn:
        assert conn.execute(select(Customer.sms_opt_out)).scalar_one() is True
        assert conn.execute(select(OptOutEvent.channel, OptOutEvent.source)).one() == ("sms", "customer_page")

    rated = client.post(f"{url}/rate", data={"key": "rate-form", "score": "4", "note": "kind people"})
    assert rated.status_code == 200 and "Thank you for your rating" in rated.text

    disputed = client.post(f"{url}/dispute", data={"key": "dispute-form", "note": "not my loan"})
    assert disputed.status_code == 200 and count(engine, Dispute) == 1
    assert client.post(f"{url}/dispute", data={"key": "dispute-form-2"}).status_code == 200
    assert count(engine, Dispute) == 1  # one open dispute, however often it is asked for
    assert "We are looking into your dispute" in client.get(url).text

    with engine.connect() as conn:
        actions = conn.execute(select(CustomerAction.action, CustomerAction.code, CustomerAction.source)
                               .order_by(CustomerAction.id)).all()
        notes = conn.execute(select(CustomerAction.note).where(CustomerAction.note.is_not(None))
                             .order_by(CustomerAction.id)).scalars().all()
        raw = conn.exec_driver_sql("SELECT note FROM customer_actions WHERE note IS NOT NULL").scalars().all()
    assert [(a.action, a.code) for a in actions] == [
        ("stated_reason", "hardship"), ("asked_for_time", until), ("asked_for_call", "evening"),
        ("stopped_channel", "sms"), ("rated", "4"), ("disputed", "dispute"), ("disputed", "dispute")]
    assert {a.source for a in actions} == {"page"}
    assert notes == ["lost my job", "kind people", "not my loan"]
    assert not any("lost my job" in r or "not my loan" in r for r in raw)  # sealed at rest


def test_bad_forms_are_refused_in_the_customers_words_and_record_nothing(engine):
    add_account(engine, "A1", days_past_due=5, customer={"locale": "zh-CN"})
    client = client_for(engine)
    url = f"/c/{token('A1')}"
    cases = [("reason", {"key": "k", "reason": "because"}, 422, "请选择一个原因"),
             ("reason", {"reason": "hardship"}, 400, "此表单已过期"),
             ("reason", {"key": "k" * 65, "reason": "hardship"}, 400, "此表单已过期"),
             ("reason", {"key": "k", "reason": "other", "note": "x" * 1001}, 422, "1,000"),
             ("time", {"key": "k", "until": (TODAY + timedelta(days=15)).isoformat()}, 422, "请从提供的日期中选择"),
             ("time", {"key": "k", "until": "tomorrow"}, 422, "请从提供的日期中选择"),
             ("call", {"key": "k", "day": (TODAY + timedelta(days=8)).isoformat(), "window": "morning"}, 422, "请从"),
             ("call", {"key": "k", "day": TODAY.isoformat(), "window": "midnight"}, 422, "请从"),
             ("stop", {"key": "k", "channel": "fax"}, 422, "请选择我们联系您的一种方式"),
             ("rate", {"key": "k", "score": "9"}, 422, "请选择 1 到 5 的评分"),
             ("launch", {"key": "k"}, 404, "此页面无法完成该操作")]
    for action, data, status, words in cases:
        answer = client.post(f"{url}/{action}", data=data)
        assert (answer.status_code, words in answer.text) == (status, True), (action, data)
    too_big = client.post(f"{url}/reason", data={"key": "k", "reason": "other", "note": "x" * 9000})
    assert too_big.status_code == 413
    assert count(engine, CustomerAction) == 0 and count(engine, PaymentPromise) == 0


def test_more_time_follows_the_lenders_rules(engine):
    add_account(engine, "OLD", days_past_due=60)
    add_account(engine, "NEW", days_past_due=5)
    rules = DeferralRules(longest_days=7, once_in_months=6)
    client = client_for(engine, deferral=rules)
    assert "Ask for more time" not in client.get(f"/c/{token('OLD')}").text  # 60 days past due: not offered
    refused = client.post(f"/c/{token('OLD')}/time", data={"key": "k", "until": (TODAY + timedelta(days=3)).isoformat()})
    assert refused.status_code == 422 and count(engine, PaymentPromise) == 0
    url = f"/c/{token('NEW')}"
    assert client.get(url).text.count('<option value="') == 7 + 8  # 7 new dates, 8 call-back days
    ok = client.post(f"{url}/time", data={"key": "k1", "until": (TODAY + timedelta(days=7)).isoformat()})
    assert ok.status_code == 200
    # Broken (unpaid past its date) it does not come back for six months.
    with engine.begin() as conn:
        conn.execute(PaymentPromise.__table__.update().values(status="broken"))
    later = client_for(engine, clock=lambda: NOW + timedelta(days=35), deferral=rules)
    fresh = f"/c/{token('NEW', TODAY + timedelta(days=60))}"
    assert "Ask for more time" not in later.get(fresh).text
    again = later.post(f"{fresh}/time", data={"key": "k2", "until": (TODAY + timedelta(days=38)).isoformat()})
    assert again.status_code == 422 and "You had more time recently" in again.text
    anyway = client_for(engine, clock=lambda: NOW + timedelta(days=35),
                        deferral=DeferralRules(longest_days=7, once_in_months=1))
    assert "Ask for more time" in anyway.get(fresh).text  # a month later, under a one-month rule, it is offered


def test_a_flood_from_one_address_is_answered_429(engine):
    add_account(engine, "A1", days_past_due=5)
    client = client_for(engine, limits=SourceLimits(Budget(0.001, 5), Budget(0.001, 3)))
    answers = [client.get(f"/c/{token('A1')}").status_code for _ in range(8)]
    assert answers[:5] == [200] * 5 and set(answers[5:]) == {429}
    forged = client_for(engine, limits=SourceLimits(Budget(100, 100), Budget(0.001, 3)))
    codes = [forged.get(f"/c/{token('A1')[:-2]}xx").status_code for _ in range(5)]
    assert codes == [403, 403, 403, 429, 429]


def test_every_language_has_every_message(tmp_path):
    """The template (pages.pot) is what the pages say today, each catalog translates all of it (a new text without
    its translation fails here), and the customer's locale picks the page's language."""
    import subprocess
    import sys

    from babel.messages.pofile import read_po

    from campaigns.delivery.customer_page import LOCALES, PAGES
    from campaigns.settings import PROJECT_ROOT

    fresh = tmp_path / "pages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", str(PAGES / "babel.cfg"),
                    "-k", "_", "--no-location", "--omit-header", "-o", str(fresh), "."], cwd=PROJECT_ROOT,
                   check=True, capture_output=True)
    with (PAGES / "pages.pot").open("rb") as handle:
        wanted = {m.id for m in read_po(handle) if m.id}
    with fresh.open("rb") as handle:
        assert {m.id for m in read_po(handle) if m.id} == wanted, "run the extract in docs/customer-page.md"
    assert len(wanted) > 80
    for locale in available_locales()[1:]:
        with (LOCALES / locale / "LC_MESSAGES" / "pages.po").open("rb") as handle:
            catalog = read_po(handle)
        have = {m.id for m in catalog if m.id and m.string}
        assert wanted <= have, (locale, sorted(wanted - have)[:5])
        assert translations(locale).gettext("Amount due") != "Amount due"
    assert available_locales() == ["en_US", "zh_CN"]
    assert [page_locale(x) for x in ("zh-CN", "zh-TW", "en-GB", "fr-FR", None)] == [
        "zh_CN", "zh_CN", "en_US", "en_US", "en_US"]


def test_no_personal_data_in_logs_answers_or_the_databases_plain_bytes(engine, caplog):
    """Every new path (the page and its forms, a refused link, SMS and email replies) with a customer whose name,
    email and phone are known, and notes and replies with known words: none of them in any log line, in any answer
    (the page shows no note back), or anywhere in the database's bytes unsealed."""
    import base64
    import logging

    from campaigns.customers.replies import receive_sms_reply
    from campaigns.delivery.customer_page import RedactLinks
    from campaigns.delivery.webhooks import InboundEmail
    from tests.customers.test_replies import multipart
    from tests.privacy.test_privacy import _database_bytes

    caplog.set_level(logging.DEBUG)
    person = {"name": "Zelda Quuxworth", "email": "zelda.quuxworth@example.org", "phone": "+12125550188"}
    add_account(engine, "A1", days_past_due=5, customer=person)
    words = ["qx-note-about-my-job", "qx-dispute-words", "qx-rating-comment", "qx-sms-reply-words",
             "qx-email-reply-words"]
    pages = CustomerPages(SECRET, BRAND, ZONE, DeferralRules(), clock=lambda: NOW)
    client = TestClient(create_app(engine, customer_pages=pages, inbound_email=InboundEmail("p" * 32, "pw")))
    url = f"/c/{token('A1')}"
    answers = [client.get(url).text,
               client.post(f"{url}/reason", data={"key": "k1", "reason": "hardship", "note": words[0]}).text,
               client.post(f"{url}/reason", data={"key": "k2", "reason": "other", "note": words[0] * 60}).text,
               client.post(f"{url}/rate", data={"key": "k3", "score": "2", "note": words[2]}).text,
               client.post(f"{url}/dispute", data={"key": "k4", "note": words[1]}).text,
               client.get(f"{url[:-2]}xx").text, client.get(url).text]
    receive_sms_reply(engine, person["phone"], f"{words[3]} call {person['name']}", NOW, message_id="SM1")
    body, kind = multipart({"from": f"{person['name']} <{person['email']}>", "subject": "Re: your account",
                            "text": words[4]})
    auth = {"Authorization": "Basic " + base64.b64encode(b"inbound:pw").decode(), "Content-Type": kind}
    answers.append(client.post(f"/webhooks/email/inbound/{'p' * 32}", content=body, headers=auth).text)
    secrets_ = [*person.values(), person["phone"][2:], *words]
    logged = caplog.text
    assert not [s for s in secrets_ if s in logged]
    assert not [s for s in secrets_ for a in answers if s in a]
    stored = _database_bytes(engine)
    assert not [s for s in secrets_ if s.encode() in stored]
    with engine.connect() as conn:  # they are there, sealed: what a person at the page or the worklist reads
        notes = set(conn.execute(select(CustomerAction.note).where(CustomerAction.note.is_not(None))).scalars())
    assert {words[0], words[1], words[2]} <= notes and any(words[3] in n for n in notes)
    # An access log line keeps the path and the account id, never the link's signature (the key to the page).
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", url, "1.1", 200), None)
    RedactLinks().filter(record)
    assert record.getMessage() == f'127.0.0.1:5 - "GET /c/A1~{token("A1").split("~")[1]}~… HTTP/1.1" 200'
