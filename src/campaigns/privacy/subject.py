"""A customer's own rights: see what we hold (show, reveal), take a copy (export), be forgotten (erase).

Every one of these is an access to personal data and is written to the access log
(``personal_data_access``: who, when, which action, why, what was shown or
removed, never the data itself). ``show`` masks the values; only ``reveal`` with
a reason prints them. An erasure keeps what the law requires a lender to keep:
the contact log's facts, payments and the money ledger, plans, disputes, holds, opt-out events, and
the blind index of each channel the customer opted out of (so a later import of
the same address stays opted out); it removes name, email, phone, every
message's content (reduced to its hash) and what they wrote to us (notes on their page, replies), and stops what was
still queued.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection

from campaigns.db.models import (
    Account,
    CustomerAction,
    AttemptStatus,
    ContactAttempt,
    Customer,
    Dispute,
    Hold,
    LedgerEntry,
    OptOutEvent,
    Payment,
    PaymentPromise,
    PersonalDataAccess,
    OutboxMessage,
    PlanInstalment,
    RenderedMessage,
    RepaymentPlan,
)
from campaigns.privacy.retention import anonymise_customer, log_access, reduce_messages_of

# Fields of the customer row that are personal data (masked by show, removed by erase).
PERSONAL = ("name", "email", "phone")


class SubjectError(ValueError):
    """The account is unknown, or the request is incomplete (the message names the account id, nothing else)."""


def customer_of(conn: Connection, account_id: str) -> str:
    customer_id = conn.execute(select(Account.customer_id).where(Account.id == account_id)).scalar_one_or_none()
    if customer_id is None:
        raise SubjectError(f"no account {account_id}")
    return customer_id


def mask(field: str, value: str | None) -> str | None:
    """A value shown without showing it: initials, the email's domain, the phone's last four digits."""
    if value is None:
        return None
    if field == "email":
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if field == "phone":
        return f"{value[:2]}{'*' * max(len(value) - 6, 0)}{value[-4:]}"
    return " ".join(f"{part[:1]}." for part in value.split()) or "*"


def mask_name_in(text: str | None, name: str | None) -> str | None:
    """``text`` with the customer's name, whole or any part of it, masked (a rendered sample shown to staff)."""
    if not text or not name or not name.strip():
        return text
    text = text.replace(name, mask("name", name))
    for part in sorted(set(name.split()), key=len, reverse=True):
        if len(part) > 1:
            text = text.replace(part, mask("name", part))
    return text


@dataclass
class CustomerView:
    customer_id: str
    fields: dict[str, Any]  # the customer's row, personal fields masked unless revealed
    accounts: list[dict[str, Any]]
    revealed: bool


def show_customer(engine: Engine, account_id: str, now: datetime, *, actor: str, reveal: bool = False,
                  reason: str | None = None) -> CustomerView:
    """The customer of ``account_id``: masked, or with ``reveal`` (a reason required) plain, and logged."""
    if reveal and not (reason and reason.strip()):
        raise SubjectError("revealing personal data needs a reason (--reason)")
    with engine.begin() as conn:
        customer_id = customer_of(conn, account_id)
        row = _row(conn, Customer, Customer.id == customer_id)[0]
        fields = {k: (v if reveal or k not in PERSONAL else mask(k, v))
                  for k, v in row.items() if k not in ("email_index", "phone_index")}
        accounts = _row(conn, Account, Account.customer_id == customer_id)
        if reveal:
            log_access(conn, now, actor, "reveal", customer_id=customer_id, account_id=account_id, reason=reason,
                       counts={"fields": [k for k in PERSONAL if row.get(k) is not None]})
    return CustomerView(customer_id, fields, accounts, reveal)


def export_customer(engine: Engine, account_id: str, now: datetime, *, actor: str, reason: str | None,
                    out: Path) -> tuple[Path, dict[str, int]]:
    """Write everything we hold about the customer of ``account_id`` to ``out`` (JSON, 0600); logged.

    The messages are there as sent, or, once reduced, as the hash of what was sent.
    """
    from campaigns.files import ensure_private_directory, open_private

    with engine.begin() as conn:
        customer_id = customer_of(conn, account_id)
        accounts = _row(conn, Account, Account.customer_id == customer_id)
        ids = [a["id"] for a in accounts]
        attempts = _row(conn, ContactAttempt, ContactAttempt.customer_id == customer_id)
        theirs = select(ContactAttempt.id).where(ContactAttempt.customer_id == customer_id)
        # A message is held once: its outbox row (logged sent by the stage), else its rendered message.
        messages = {m["attempt_id"]: m for m in _row(conn, RenderedMessage, RenderedMessage.attempt_id.in_(theirs))}
        messages.update((m["attempt_id"], m) for m in _row(conn, OutboxMessage, OutboxMessage.attempt_id.in_(theirs)))
        for attempt in attempts:
            attempt["message"] = messages.get(attempt["id"])
        document = {
            "exported_at": now.isoformat(),
            "customer": {k: v for k, v in _row(conn, Customer, Customer.id == customer_id)[0].items()
                         if k not in ("email_index", "phone_index")},
            "accounts": accounts,
            "payments": _row(conn, Payment, Payment.account_id.in_(ids)),
            # Every money event: statements, payments, reversals, refunds, fees (what the figures come from).
            "ledger": _row(conn, LedgerEntry, LedgerEntry.account_id.in_(ids)),
            "plans": _row(conn, RepaymentPlan, RepaymentPlan.account_id.in_(ids)),
            "plan_instalments": _row(conn, PlanInstalment, PlanInstalment.account_id.in_(ids)),
            "promises": _row(conn, PaymentPromise, PaymentPromise.account_id.in_(ids)),
            "disputes": _row(conn, Dispute, Dispute.account_id.in_(ids)),
            "holds": _row(conn, Hold, Hold.customer_id == customer_id),
            "opt_outs": _row(conn, OptOutEvent, OptOutEvent.customer_id == customer_id),
            # What they did on their page and wrote in replies, with their words (opened through the keys).
            "their_actions": _row(conn, CustomerAction, CustomerAction.customer_id == customer_id),
            "contacts": attempts,
            "accesses": [{k: v for k, v in r.items() if k != "reason"}
                         for r in _row(conn, PersonalDataAccess, PersonalDataAccess.customer_id == customer_id)],
        }
        counts = {k: len(v) for k, v in document.items() if isinstance(v, list)}
        ensure_private_directory(out.parent)
        with open_private(out) as handle:
            json.dump(document, handle, indent=2, ensure_ascii=False, default=_plain)
            handle.write("\n")
        log_access(conn, now, actor, "export", customer_id=customer_id, account_id=account_id, reason=reason,
                   counts=counts)
    return out, counts


def erase_customer(engine: Engine, account_id: str, now: datetime, *, actor: str, reason: str | None
                   ) -> dict[str, int]:
    """Erase the customer of ``account_id`` (name, email, phone, message contents), keeping what the law needs.

    Messages still queued or deferred for the customer are stopped first (suppressed: ``erased``), so nothing
    goes out after the erasure; the contact log keeps every attempt's facts.
    """
    with engine.begin() as conn:
        customer_id = customer_of(conn, account_id)
        a = ContactAttempt
        stopped = conn.execute(update(a).where(
            a.customer_id == customer_id,
            a.status.in_((AttemptStatus.queued.value, AttemptStatus.deferred.value))).values(
            status=AttemptStatus.suppressed.value, reason="erased", detail=None, updated_at=now)).rowcount or 0
        # Only a message being sent at this moment is still in flight: it keeps its body.
        reduced, deleted = reduce_messages_of(conn, customer_id, now)
        anonymise_customer(conn, customer_id, now)
        counts = {"messages_reduced": reduced, "outbox_deleted": deleted, "attempts_stopped": stopped}
        log_access(conn, now, actor, "erase", customer_id=customer_id, account_id=account_id, reason=reason,
                   counts=counts)
    return counts


def _row(conn: Connection, model, where) -> list[dict[str, Any]]:
    """Rows of ``model`` as dicts of every column (sealed ones opened), in key order."""
    table = model.__table__
    key = list(table.primary_key.columns)
    return [dict(r) for r in conn.execute(select(table).where(where).order_by(*key)).mappings()]


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
