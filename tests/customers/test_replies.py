"""Replies reach a person: SMS and email answers become worklist items, disputes and opt-outs when they say so."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from campaigns.customers.replies import classify_reply, fresh_text, receive_sms_reply
from campaigns.customers.worklist import open_worklist
from campaigns.db.models import AgentWorklistItem, Customer, CustomerAction, Dispute
from campaigns.delivery.webhooks import InboundEmail, create_app
from tests.channels.test_twilio_sms import TOKEN, signed_post
from tests.conftest import NOW
from tests.factories import add_account

PATH, PASSWORD = "p" * 32, "inbound-password"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"inbound:{PASSWORD}".encode()).decode()}


@pytest.mark.parametrize("text, kind", [
    ("STOP", "stop"), ("退订", "stop"), ("please stop texting me", "stop"),
    ("HELP", "help"), ("help", "help"), ("帮助", "help"), ("我需要帮忙", "help"), ("Info", "help"),
    ("This is not my debt", "dispute"), ("I never borrowed anything", "dispute"), ("这不是我的欠款", "dispute"),
    ("金额不对", "dispute"), ("I dispute this", "dispute"),
    ("I will complain to the regulator", "complaint"), ("this is harassment", "complaint"), ("我要投诉", "complaint"),
    ("别再发了", "stop"), ("别再骚扰我了", "complaint"),  # "stop sending" opts out; "stop harassing me": first in line
    ("ok thanks, paying friday", "text"), ("好的，周五还", "text"), ("", "text"), ("helpful reminder", "text"),
])
def test_what_a_reply_asks_for_in_each_language(text, kind):
    assert classify_reply(text) == kind


def test_quoted_messages_are_not_read_as_the_customers_words():
    reply = ("Paying on Friday, sorry.\n\nOn Mon, Nov 23, 2026 at 9:00 AM Acme Lending <c@example.com> wrote:\n"
             "> To stop receiving these emails, visit https://pay.example.com/preferences/A1\n")
    assert fresh_text(reply) == "Paying on Friday, sorry."
    assert fresh_text("好的\n\n在 2026年11月23日 写道：\n> 如不希望再收到此类邮件") == "好的"
    assert fresh_text("> quoted only\n> more") == ""


def test_an_sms_reply_reaches_a_person_once_and_first(engine):
    add_account(engine, "A1", days_past_due=50, customer={"phone": "+12125550177"})
    add_account(engine, "A2", days_past_due=3, customer_id="C-A1")
    client = TestClient(create_app(engine, twilio_auth_token=TOKEN))
    form = {"From": "+12125550177", "Body": "Lost my job, can we talk? 帮助", "MessageSid": "SM1"}
    for _ in range(2):  # Twilio redelivers when we are slow: one item
        assert signed_post(client, "/webhooks/twilio/inbound", form).status_code == 200
    with engine.connect() as conn:
        item = conn.execute(select(AgentWorklistItem.account_id, AgentWorklistItem.reason,
                                   AgentWorklistItem.action_id)).one()
        action = conn.execute(select(CustomerAction.action, CustomerAction.code, CustomerAction.note,
                                     CustomerAction.source, CustomerAction.id)).one()
        raw = conn.exec_driver_sql("SELECT note FROM customer_actions").scalar_one()
        opted = conn.execute(select(Customer.sms_opt_out)).scalar_one()
    # The oldest open debt of the customer is the one the reply is about.
    assert (item.account_id, item.reason, item.action_id) == ("A1", "replied", action.id)
    assert (action.action, action.code, action.source) == ("replied", "help", "sms")
    assert action.note == "Lost my job, can we talk? 帮助" and "Lost my job" not in raw and opted is False
    worklist = open_worklist(engine, now=NOW)
    assert worklist.iloc[0]["reason"] == "replied"  # a reply is read first


def test_a_reply_that_disputes_opens_a_dispute_and_a_stop_only_opts_out(engine):
    add_account(engine, "A1", days_past_due=5, customer={"phone": "+12125550177"})
    receive_sms_reply(engine, "+12125550177", "Not my debt!", NOW, message_id="SM2")
    with engine.connect() as conn:
        assert conn.execute(select(Dispute.source)).scalar_one() == "reply_sms"
    stopped = receive_sms_reply(engine, "+12125550177", "STOP", NOW, message_id="SM3")
    assert stopped.kind == "stop" and stopped.items == 0
    with engine.connect() as conn:
        assert conn.execute(select(Customer.sms_opt_out)).scalar_one() is True
        assert conn.execute(select(func.count()).select_from(AgentWorklistItem)).scalar_one() == 1
    unknown = receive_sms_reply(engine, "+12125550999", "who is this?", NOW, message_id="SM4")
    assert (unknown.customers, unknown.items) == (0, 0)  # kept, but no one to hand it to


def multipart(fields: dict[str, str], boundary: str = "xYzZY") -> tuple[bytes, str]:
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                    for k, v in fields.items()) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_an_email_reply_through_inbound_parse(engine):
    add_account(engine, "A1", days_past_due=5, customer={"email": "Grace@Example.com"})
    client = TestClient(create_app(engine, inbound_email=InboundEmail(PATH, PASSWORD)))
    url = f"/webhooks/email/inbound/{PATH}"
    body, kind = multipart({"from": "Grace Brown <grace@example.com>", "subject": "Re: A quick note",
                            "headers": "Message-ID: <m1@example.com>\nSubject: Re: A quick note",
                            "text": "I was charged twice, I want to complain.\n\nOn Mon wrote:\n> To stop receiving"})
    assert client.post(f"/webhooks/email/inbound/{'q' * 32}", content=body, headers={"Content-Type": kind,
                                                                                     **AUTH}).status_code == 404
    assert client.post(url, content=body, headers={"Content-Type": kind}).status_code == 401
    wrong = {"Authorization": "Basic " + base64.b64encode(b"inbound:guess").decode()}
    assert client.post(url, content=body, headers={"Content-Type": kind, **wrong}).status_code == 401
    big, big_kind = multipart({"from": "grace@example.com", "text": "x" * 100_000})
    assert client.post(url, content=big, headers={"Content-Type": big_kind, **AUTH}).status_code == 413
    assert client.post(url, content=b"from=grace", headers={"Content-Type": "application/x-www-form-urlencoded",
                                                            **AUTH}).status_code == 400
    for _ in range(2):
        answer = client.post(url, content=body, headers={"Content-Type": kind, **AUTH})
        assert answer.status_code == 200
    assert answer.json() == {"kind": "complaint", "items": 0, "duplicate": True}
    with engine.connect() as conn:
        note, code = conn.execute(select(CustomerAction.note, CustomerAction.code)).one()
        assert conn.execute(select(Customer.email_opt_out)).scalar_one() is False  # the quote's "stop" is ours
        assert conn.execute(select(func.count()).select_from(AgentWorklistItem)).scalar_one() == 1
    assert (note, code) == ("A quick note\nI was charged twice, I want to complain.", "complaint")
    stop, stop_kind = multipart({"from": "grace@example.com", "subject": "unsubscribe", "text": ""})
    assert client.post(url, content=stop, headers={"Content-Type": stop_kind, **AUTH}).json()["kind"] == "stop"
    with engine.connect() as conn:
        assert conn.execute(select(Customer.email_opt_out)).scalar_one() is True


def test_any_body_to_the_page_forms_or_the_inbound_email_is_answered_never_5xx(engine):
    """Raw bytes of any shape (not form-encoded, broken multipart, other encodings, no boundary): 2xx/4xx, and
    nothing recorded unless the post was a readable form or email."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from campaigns.delivery.customer_page import CustomerPages
    from campaigns.ladder.config import DeferralRules
    from tests.delivery.test_customer_page import BRAND, SECRET, ZONE, token

    add_account(engine, "A1", days_past_due=5, customer={"email": "grace@example.com"})
    client = TestClient(create_app(engine, inbound_email=InboundEmail(PATH, PASSWORD),
                                   customer_pages=CustomerPages(SECRET, BRAND, ZONE, DeferralRules(),
                                                                clock=lambda: NOW)))
    pieces = st.one_of(st.binary(max_size=300), st.sampled_from([
        b"--b\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\ngrace@example.com\r\n--b--\r\n",
        b"--b\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--b--", b"--b", b"\xff\xfe\x00", b"%zz&&==&key=",
        b"key=%E2%82&reason=other", b"reason=hardship&key=" + b"a" * 70]))
    kinds = st.sampled_from(["multipart/form-data; boundary=b", "multipart/form-data", "text/plain",
                             "application/x-www-form-urlencoded", "multipart/form-data; boundary=\"\""])

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=pieces, kind=kinds, where=st.sampled_from(["email", "reason", "rate", "call", "time"]))
    def post(body, kind, where):
        url = (f"/webhooks/email/inbound/{PATH}" if where == "email" else f"/c/{token('A1')}/{where}")
        answer = client.post(url, content=body, headers={"Content-Type": kind, **AUTH})
        assert answer.status_code < 500, (where, body, kind)

    post()
