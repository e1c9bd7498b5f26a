"""Minimal copies: old messages reduced to a hash, closed customers anonymised, each removal logged.

What a message said is personal data kept only as long as it is needed to show a
contact (``RETENTION_MESSAGE_DAYS``, 90 by default): after that the rendered
message keeps the SHA-256 of what was sent (so a copy a customer shows us can
still be checked against it) and the outbox's row goes (when the outbox row was
the message's one copy, a reduced rendered message keeps its hash). The contact log keeps
the facts an audit needs (when, which channel, which template version, status,
reason): it never held personal data. A customer whose accounts have all been
paid or closed for ``RETENTION_CLOSED_CUSTOMER_DAYS`` loses name, email and
phone; the blind index of a channel they opted out of stays, so the opt-out
still holds if they come back.

Every pass works in chunks, one transaction each, and can be stopped and run
again. ``dry_run`` counts what would go and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, case, delete, exists, func, insert, or_, select, union, update
from sqlalchemy.engine import Connection

from campaigns.db.engine import among
from campaigns.db.models import (
    Account,
    CustomerAction,
    AttemptStatus,
    ContactAttempt,
    Customer,
    OutboxMessage,
    PersonalDataAccess,
    RenderedMessage,
)

# An attempt still on its way may need its message: only settled ones are reduced.
IN_FLIGHT = (AttemptStatus.queued.value, AttemptStatus.deferred.value, AttemptStatus.sending.value)
# Accounts that still owe, or are being collected by someone: their customer is not "closed".
STILL_OPEN = ("open", "placed")


@dataclass
class RetentionReport:
    messages_reduced: int = 0
    outbox_deleted: int = 0
    customers_anonymised: int = 0
    messages_before: str = ""  # the cut-off, ISO 8601 (UTC)
    closed_before: str = ""
    dry_run: bool = False

    def as_counts(self) -> dict:
        return asdict(self)


def content_hash(recipient: str | None, subject: str | None, body_text: str | None, body_html: str | None) -> str:
    """SHA-256 (hex) of a message as sent: its recipient, subject and bodies as one JSON list."""
    return hashlib.sha256(json.dumps([recipient, subject, body_text, body_html], ensure_ascii=False,
                                     separators=(",", ":")).encode()).hexdigest()


def reduce_messages(conn: Connection, attempt_ids: list[int], now: datetime) -> tuple[int, int]:
    """Reduce these attempts' messages to their hash and delete the outbox's rows (one transaction).

    A message is held once: in ``rendered_messages`` (for a provider, or waiting), or as its outbox row (written
    when the stage logged it sent). An outbox row that was the only copy leaves a reduced ``rendered_messages``
    row behind with its hash, so every message reduced can still be checked against a copy a customer shows.
    Returns (messages reduced, outbox rows deleted)."""
    m, o = RenderedMessage, OutboxMessage
    rows = conn.execute(select(m.attempt_id, m.recipient, m.subject, m.body_text, m.body_html)
                        .where(among(conn, m.attempt_id, attempt_ids), m.reduced_at.is_(None))).all()
    if rows:
        conn.execute(
            update(m.__table__).where(m.__table__.c.attempt_id == bindparam("_id"))
            .values(recipient=None, subject=None, body_text=None, body_html=None,
                    content_sha256=bindparam("_hash"), reduced_at=now),
            [{"_id": r.attempt_id, "_hash": content_hash(r.recipient, r.subject, r.body_text, r.body_html)}
             for r in rows])
    only = conn.execute(select(o.attempt_id, o.recipient, o.subject, o.body_text, o.body_html)
                        .where(among(conn, o.attempt_id, attempt_ids),
                               ~exists().where(m.attempt_id == o.attempt_id))).all()
    if only:
        conn.execute(insert(m.__table__), [
            {"attempt_id": r.attempt_id, "recipient": None, "subject": None, "body_text": None, "body_html": None,
             "payload": {}, "content_sha256": content_hash(r.recipient, r.subject, r.body_text, r.body_html),
             "reduced_at": now} for r in only])
    deleted = conn.execute(delete(o).where(among(conn, o.attempt_id, attempt_ids))).rowcount or 0
    return len(rows) + len(only), deleted


def anonymise_customer(conn: Connection, customer_id: str, now: datetime) -> None:
    """Remove a customer's name, email and phone, and the words of their notes and replies (the actions' facts
    stay); keep the blind index of each channel they opted out of."""
    c = Customer
    conn.execute(update(CustomerAction).where(CustomerAction.customer_id == customer_id).values(note=None))
    conn.execute(update(c).where(c.id == customer_id).values(
        name=None, email=None, phone=None, phone_zones=None, anonymised_at=now, updated_at=now,
        email_index=_kept_if(c.email_opt_out, c.email_index), phone_index=_kept_if(c.sms_opt_out, c.phone_index)))


def _kept_if(flag, column):
    return case((flag, column), else_=None)


def apply_retention(engine: Engine, now: datetime, *, message_days: int, closed_customer_days: int,
                    dry_run: bool = False, chunk_size: int = 1000) -> RetentionReport:
    """One retention pass at ``now``: old messages reduced, closed customers anonymised; logged unless a dry run."""
    messages_before = now - timedelta(days=message_days)
    closed_before = now - timedelta(days=closed_customer_days)
    report = RetentionReport(messages_before=messages_before.isoformat(), closed_before=closed_before.isoformat(),
                             dry_run=dry_run)
    a, m, o = ContactAttempt, RenderedMessage, OutboxMessage
    old_rendered = (select(m.attempt_id.label("attempt_id")).join(a, a.id == m.attempt_id)
                    .where(m.reduced_at.is_(None), a.created_at < messages_before, a.status.not_in(IN_FLIGHT)))
    old_outbox = (select(o.attempt_id.label("attempt_id")).join(a, a.id == o.attempt_id)
                  .where(o.accepted_at < messages_before, a.status.not_in(IN_FLIGHT)))
    old = union(old_rendered, old_outbox).subquery()
    customers = _closed_customers(closed_before)
    if dry_run:
        with engine.connect() as conn:
            outbox_only = old_outbox.where(~exists().where(m.attempt_id == o.attempt_id))
            report.messages_reduced = sum(conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()
                                          for q in (old_rendered, outbox_only))
            report.outbox_deleted = conn.execute(select(func.count()).select_from(o).where(
                o.attempt_id.in_(select(old.c.attempt_id)))).scalar_one()
            report.customers_anonymised = conn.execute(select(func.count()).select_from(customers.subquery())
                                                       ).scalar_one()
        return report
    after = 0
    while True:  # keyset pages: each chunk its own transaction, so a stop keeps what was done
        with engine.begin() as conn:
            ids = conn.execute(select(old.c.attempt_id).where(old.c.attempt_id > after)
                               .order_by(old.c.attempt_id).limit(chunk_size)).scalars().all()
            if not ids:
                break
            reduced, deleted = reduce_messages(conn, list(ids), now)
            report.messages_reduced += reduced
            report.outbox_deleted += deleted
        after = ids[-1]
    while True:
        with engine.begin() as conn:
            ids = conn.execute(customers.order_by(Customer.id).limit(chunk_size)).scalars().all()
            if not ids:
                break
            for customer_id in ids:
                reduce_messages_of(conn, customer_id, now)
                anonymise_customer(conn, customer_id, now)
            report.customers_anonymised += len(ids)
    if report.messages_reduced or report.outbox_deleted or report.customers_anonymised:
        with engine.begin() as conn:
            log_access(conn, now, "retention", "retention", counts=report.as_counts())
    return report


def _closed_customers(closed_before: datetime):
    """Customers not yet anonymised whose accounts are all paid or closed, the last change before the cut-off."""
    c, acc = Customer, Account
    still_open = exists().where(acc.customer_id == c.id, acc.status.in_(STILL_OPEN))
    recent = exists().where(acc.customer_id == c.id, acc.updated_at >= closed_before)
    has_accounts = exists().where(acc.customer_id == c.id)
    return select(c.id).where(c.anonymised_at.is_(None), has_accounts, ~still_open, ~recent)


def reduce_messages_of(conn: Connection, customer_id: str, now: datetime) -> tuple[int, int]:
    """Reduce every message to this customer, whatever its age (settled ones: an in-flight one keeps its body).
    Returns (messages reduced, outbox copies deleted)."""
    a, m, o = ContactAttempt, RenderedMessage, OutboxMessage
    held = or_(exists().where(m.attempt_id == a.id, m.reduced_at.is_(None)), exists().where(o.attempt_id == a.id))
    ids = conn.execute(select(a.id).where(a.customer_id == customer_id, a.status.not_in(IN_FLIGHT), held)
                       ).scalars().all()
    return reduce_messages(conn, list(ids), now) if ids else (0, 0)


def log_access(conn: Connection, now: datetime, actor: str, action: str, *, customer_id: str | None = None,
               account_id: str | None = None, reason: str | None = None, counts: dict | None = None) -> None:
    """One line of the access log (the reason is sealed: an operator may type a name into it)."""
    conn.execute(insert(PersonalDataAccess), {
        "at": now, "actor": actor[:128], "action": action, "customer_id": customer_id, "account_id": account_id,
        "reason": reason[:500] if reason else None, "counts": counts or {}})


__all__ = ["IN_FLIGHT", "RetentionReport", "anonymise_customer", "apply_retention", "content_hash", "log_access",
           "reduce_messages", "reduce_messages_of"]
