"""Replies that reach a person: an SMS or email answer to our messages becomes a worklist item ``replied``.

What a reply says decides what follows, by keywords in the customer's languages (matched in any case, with
punctuation, as whole words for the Latin ones):

==========  ==========================================  =========================================================
kind        e.g.                                        what follows
==========  ==========================================  =========================================================
stop        STOP, 退订, "please stop texting me"          an SMS opt-out at once (``campaigns.policy.optout``)
dispute     DISPUTE, "not my debt", 不是我的, 有异议         a dispute on the account (all contact stops), and a
                                                        person confirms it from the worklist
complaint   COMPLAINT, harassment, 投诉, 骚扰              a worklist item first in line; counted in the review's
                                                        complaint rate
help        HELP, INFO, 帮助                             a worklist item: someone calls back
text        anything else                               a worklist item with the text
==========  ==========================================  =========================================================

The text is kept sealed in ``customer_actions.note`` (never logged); the action row is once per message (the
provider's message id, else the sender, moment and text), so a redelivered reply is one item.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr

from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import Connection

from campaigns.attempts.log import suppress_pending
from campaigns.customers.preferences import customers_of_number, receive_sms, record_dispute, sender_number
from campaigns.db.bulk import insert_ignoring_conflicts
from campaigns.db.models import Account, AgentWorklistItem, Customer, CustomerAction
from campaigns.policy.optout import opt_out_keyword
from campaigns.privacy.lookup import customers_with_email

REPLY_CHARS = 4000  # what is kept of a reply (sealed); the rest is cut, and the item says so
KEYWORDS = {
    "dispute": (r"\bdispute[sd]?\b|\bnot my (debt|loan|account)\b|\bnot mine\b|\bwrong amount\b|\bnever borrowed\b"
                r"|\bi don'?t owe\b|\bi do not owe\b", r"争议|异议|不是我的|金额不对|我没有借"),
    "complaint": (r"\bcomplain(t|ts|ing)?\b|\bharass(ed|ing|ment)?\b|\bombudsman\b|\bregulator\b",
                  r"投诉|骚扰|举报"),
    "help": (r"^(help|info)$|\bhelp\b", r"帮助|帮忙|求助"),
}
PATTERNS = {kind: re.compile("|".join(p), re.IGNORECASE) for kind, p in KEYWORDS.items()}
KINDS = ("stop", "dispute", "complaint", "help", "text")


def classify_reply(text: str | None) -> str:
    """What a reply asks for (one of ``KINDS``): a stop before anything else, then a dispute, a complaint, help."""
    if opt_out_keyword(text):
        return "stop"
    plain = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text or "")).strip()
    for kind in ("dispute", "complaint", "help"):
        if PATTERNS[kind].search(plain):
            return kind
    return "text"


@dataclass(frozen=True)
class ReplyResult:
    kind: str
    customers: int  # customers the sender is
    items: int  # worklist items made
    duplicate: bool = False


def _account_of(conn: Connection, customer_id: str) -> str | None:
    """The account a reply is about: the customer's oldest open debt, else their latest account."""
    open_ = conn.execute(select(Account.id).where(Account.customer_id == customer_id, Account.status == "open",
                                                  Account.balance > 0)
                         .order_by(Account.due_date, Account.id).limit(1)).scalar_one_or_none()
    if open_ is not None:
        return open_
    return conn.execute(select(Account.id).where(Account.customer_id == customer_id)
                        .order_by(Account.due_date.desc(), Account.id).limit(1)).scalar_one_or_none()


def record_reply(conn: Connection, customer_ids: list[str], source: str, text: str, key: str, now: datetime,
                 kind: str | None = None) -> ReplyResult:
    """A reply from these customers (one sender): one action each, a worklist item per account, a dispute when it
    disputes. Once per ``key``. ``kind``: what it asks for, when the caller knows better (else read from it)."""
    kind = kind or classify_reply(text)
    kept = (text or "").strip()
    cut = len(kept) > REPLY_CHARS
    items = 0
    new_any = False
    for customer_id in customer_ids or [None]:
        account_id = _account_of(conn, customer_id) if customer_id else None
        new = insert_ignoring_conflicts(conn, CustomerAction.__table__, [{
            "account_id": account_id, "customer_id": customer_id, "action": "replied", "code": kind,
            "detail": {"cut_at": REPLY_CHARS} if cut else None, "note": kept[:REPLY_CHARS] or None,
            "source": source, "request_key": f"{key}:{customer_id or '-'}"[:128], "occurred_at": now}],
            key="request_key")
        if not new:
            continue
        new_any = True
        if account_id is None or kind == "stop":
            continue
        if kind == "dispute":
            record_dispute(conn, account_id, now, source=f"reply_{source}")
            suppress_pending(conn, [account_id], "disputed", now)
        figures = conn.execute(select(Account.amount_due, Account.currency, Account.due_date)
                               .where(Account.id == account_id)).one()
        conn.execute(insert(AgentWorklistItem), {
            "attempt_id": None, "action_id": new[0][0], "account_id": account_id, "reason": "replied",
            "days_past_due": max((now.date() - figures.due_date).days, 0), "amount_due": figures.amount_due,
            "currency": figures.currency, "tried": {}, "status": "open",
            "created_at": now})
        items += 1
    return ReplyResult(kind, len(customer_ids), items, duplicate=not new_any)


QUOTE_STARTS = re.compile(r"^(on .{0,200} wrote:|-{2,} ?original message ?-{2,}|from: .+|在.{0,200}写道[:：]|"
                          r"-{2,} ?原始邮件 ?-{2,}|发件人[:：].*)$", re.IGNORECASE)


def fresh_text(text: str) -> str:
    """What the customer wrote, without the message they answer: quoted lines (``>``) and everything from an
    "On ... wrote:" (or 在...写道：) line on are left out, so our own words ("to stop receiving...") in the quote are
    not read as theirs."""
    kept = []
    for line in (text or "").splitlines():
        stripped = line.strip()
        if QUOTE_STARTS.match(stripped):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


def _made_key(prefix: str, *parts: str) -> str:
    return f"{prefix}:made-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def receive_sms_reply(engine: Engine, sender: str, body: str, now: datetime, *, message_id: str | None = None,
                      provider: str = "twilio") -> ReplyResult:
    """An inbound SMS: a stop opts the sender out (``receive_sms``); anything else reaches a person."""
    stopped = receive_sms(engine, sender, body, now, message_id=message_id, provider=provider)
    number = sender_number(sender)
    key = f"sms:{message_id}" if message_id else _made_key("sms", sender, now.isoformat(), body)
    with engine.begin() as conn:
        replied = record_reply(conn, customers_of_number(conn, number), "sms", body, key, now,
                               "stop" if stopped.keyword is not None else None)
    if stopped.keyword is not None:
        return ReplyResult("stop", stopped.matched_customers, 0, duplicate=stopped.duplicate)
    return replied


def receive_email_reply(engine: Engine, sender: str, subject: str, text: str, now: datetime, *,
                        message_id: str | None = None) -> ReplyResult:
    """An email answer (SendGrid Inbound Parse): matched to customers by the sender's address (blind index); an
    opt-out by email stops email at once; anything else reaches a person, as an SMS reply does."""
    from campaigns.customers.preferences import record_opt_outs

    address = parseaddr(sender or "")[1].strip().lower()
    subject = re.sub(r"^\s*((re|fw|fwd|回复|答复|转发)\s*[:：]\s*)+", "", subject or "", flags=re.IGNORECASE)
    fresh = fresh_text(text)
    body = "\n".join(part for part in (subject.strip(), fresh) if part)
    kind = "stop" if opt_out_keyword(subject) or opt_out_keyword(fresh) else classify_reply(body)
    key = f"email:{message_id}" if message_id else _made_key("email", address, now.isoformat(), body)
    with engine.begin() as conn:
        customers = (list(conn.execute(select(Customer.id).where(customers_with_email(conn, address))
                                       .order_by(Customer.id)).scalars()) if "@" in address else [])
        result = record_reply(conn, customers, "email", body, key, now, kind)
        if kind == "stop" and not result.duplicate and customers:
            record_opt_outs(conn, customers, ["email"], now, source="inbound_email",
                            keyword=opt_out_keyword(subject) or opt_out_keyword(fresh))
    return result
