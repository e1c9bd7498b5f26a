"""What the release decision reads from the database, fetched per chunk (never per account)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import case, exists, func, or_, select
from sqlalchemy.engine import Connection

from campaigns.db.engine import among, in_batches
from campaigns.db.models import Account, AttemptStatus, ContactAttempt, Customer, Dispute, Hold
from campaigns.policy.release import HISTORY_COLUMNS

# Attempts that reached (or may have reached) the customer: they count against caps.
# A bounced message never reached anyone, so it does not (its fallback channel may go out the same day).
COUNTED = (AttemptStatus.sending.value, AttemptStatus.sent.value, AttemptStatus.unknown.value,
           AttemptStatus.delivered.value)
LOOKBACK = timedelta(days=9)  # a week of local days plus the widest zone spread


def open_holds(conn: Connection, customer_ids: Sequence[str], now: datetime) -> dict[str, str]:
    """Open hold kinds per customer, comma-separated (a breathing space past its end date is over)."""
    found: dict[str, set[str]] = defaultdict(set)
    ids = list(dict.fromkeys(customer_ids))
    for part in in_batches(ids):
        rows = conn.execute(
            select(Hold.customer_id, Hold.kind).where(
                among(conn, Hold.customer_id, part), Hold.cleared_at.is_(None),
                Hold.opened_at <= now, or_(Hold.ends_at.is_(None), Hold.ends_at > now),
            )
        )
        for customer_id, kind in rows:
            found[customer_id].add(kind)
    return {c: ",".join(sorted(k)) for c, k in found.items()}


def holds_column(conn: Connection, customer_ids: Sequence[str], now: datetime) -> list[str]:
    """The ``holds`` column for a frame: each row's customer's open hold kinds ("" for none)."""
    ids = list(customer_ids)
    found = open_holds(conn, ids, now)
    return [found.get(c, "") for c in ids]


def contact_history(
    conn: Connection, account_ids: Sequence[str], now: datetime, exclude_attempts: Sequence[int] = ()
) -> pd.DataFrame:
    """Past contacts of these accounts that count against caps (``HISTORY_COLUMNS``)."""
    a = ContactAttempt
    ids = list(dict.fromkeys(account_ids))
    frames = []
    for part in in_batches(ids):
        # The status is filtered here, not in SQL: given a status condition, PostgreSQL combined the
        # low-selectivity status index with the account index, and on a contact log growing by a million
        # rows a day (statistics lagging) that took 0.7 s a chunk instead of milliseconds.
        stmt = select(a.account_id, a.channel, func.coalesce(a.sent_at, a.updated_at).label("at"), a.outcome,
                      a.status).where(
            among(conn, a.account_id, part), func.coalesce(a.sent_at, a.updated_at) >= now - LOOKBACK,
        )
        if exclude_attempts:
            stmt = stmt.where(~among(conn, a.id, exclude_attempts))
        rows = [r[:-1] for r in conn.execute(stmt) if r[-1] in COUNTED]
        frames.append(pd.DataFrame(rows, columns=HISTORY_COLUMNS))
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=HISTORY_COLUMNS)
    if not history.empty:
        # SQLite hands back naive UTC for coalesce(); make every timestamp aware.
        history["at"] = pd.to_datetime(history["at"], utc=True)
    return history


RELEASE_COLUMNS = [
    "attempt_id", "account_id", "customer_id", "channel", "stage", "created_at", "status",
    "amount_due", "cease_contact", "timezone", "phone", "phone_zones", "email", "country", "email_opt_out", "sms_opt_out",
    "sms_consent", "email_is_employer", "email_employer_consent", "email_invalid", "push_enabled", "push_opt_out",
    "has_open_dispute", "after_payment", "figures_stated", "figures", "paid_off",
]


def release_frame(conn: Connection, attempt_ids: Sequence[int], now: datetime, due: Any = None) -> pd.DataFrame:
    """Fresh account and customer state for attempts about to be released, in attempt order (only those
    still ``due``, a condition on ``contact_attempts``, when given)."""
    a = ContactAttempt
    open_dispute = exists().where(Dispute.account_id == Account.id, Dispute.resolved_at.is_(None)).correlate(Account)
    stmt = (
        select(a.id.label("attempt_id"), a.account_id, a.customer_id, a.channel, a.stage, a.created_at,
               Account.status,
               # An instalment reminder is about what is left of the instalment, not the original amount due.
               case(((a.stage == "pre_due") & Account.plan_due_date.is_not(None), Account.plan_amount_due),
                    else_=Account.amount_due).label("amount_due"),
               Account.cease_contact, Customer.timezone,
               Customer.phone, Customer.phone_zones, Customer.email, Customer.country, Customer.email_opt_out, Customer.sms_opt_out,
               Customer.sms_consent, Customer.email_is_employer, Customer.email_employer_consent,
               Customer.email_invalid, Customer.push_enabled, Customer.push_opt_out,
               open_dispute.label("has_open_dispute"), (a.stage == "thank_you").label("after_payment"),
               a.figures.label("figures_stated"), Account.figures, Account.paid_off_at.is_not(None).label("paid_off"))
        .join(Account, Account.id == a.account_id)
        .join(Customer, Customer.id == Account.customer_id)
        .where(among(conn, a.id, attempt_ids))
        .order_by(a.id)
    )
    if due is not None:
        stmt = stmt.where(due)
    frame = pd.DataFrame(conn.execute(stmt).all(), columns=RELEASE_COLUMNS)
    frame["holds"] = holds_column(conn, frame["customer_id"].tolist(), now)
    return frame


__all__ = ["COUNTED", "contact_history", "holds_column", "open_holds", "release_frame"]
