"""Blind indexes: how a sealed email or phone is found again by its value, without the value in the database.

An email is indexed lower-cased (an unsubscribe for ``Ana@Example.com`` must reach
``ana@example.com``: for opt-outs, matching more is the safe side); a phone as
its E.164 text, as the importer stores it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from campaigns.privacy.keys import KeyRing
from campaigns.privacy.sealing import ring_for


def email_index(ring: KeyRing, email: str | None) -> str | None:
    return ring.blind_index("email", email.strip().lower()) if email else None


def phone_index(ring: KeyRing, phone: str | None) -> str | None:
    return ring.blind_index("phone", phone.strip()) if phone else None


def with_blind_indexes(conn, rows: Iterable[dict[str, Any]]) -> None:
    """Set ``email_index`` and ``phone_index`` on customer rows that carry ``email`` or ``phone`` (in place)."""
    ring = ring_for(conn.dialect)
    for row in rows:
        if "email" in row:
            row["email_index"] = email_index(ring, row["email"])
        if "phone" in row:
            row["phone_index"] = phone_index(ring, row["phone"])


def customers_with_email(conn, email: str) -> Any:
    """The condition that finds customers by email (a SQLAlchemy expression on the blind index)."""
    from campaigns.db.models import Customer

    return Customer.email_index == email_index(ring_for(conn.dialect), email)


def customers_with_phone(conn, phone: str) -> Any:
    from campaigns.db.models import Customer

    return Customer.phone_index == phone_index(ring_for(conn.dialect), phone)


def carry_opt_outs(conn, rows: list[dict[str, Any]]) -> int:
    """Opt customer rows out of email or SMS where another customer with the same blind index opted out
    (in place; rows carry ``email_index`` / ``phone_index``). An erased or anonymised customer keeps only these
    indexes: a new record of the same address, under a new id, stays opted out. Returns the rows changed."""
    from sqlalchemy import select

    from campaigns.db.engine import among
    from campaigns.db.models import Customer

    emails = [r["email_index"] for r in rows if r.get("email_index") and not r.get("email_opt_out")]
    phones = [r["phone_index"] for r in rows if r.get("phone_index") and not r.get("sms_opt_out")]
    opted_emails = set(conn.execute(select(Customer.email_index).where(
        among(conn, Customer.email_index, emails), Customer.email_opt_out)).scalars()) if emails else set()
    opted_phones = set(conn.execute(select(Customer.phone_index).where(
        among(conn, Customer.phone_index, phones), Customer.sms_opt_out)).scalars()) if phones else set()
    changed = 0
    for row in rows:
        hit = False
        if row.get("email_index") in opted_emails:
            row["email_opt_out"] = hit = True
        if row.get("phone_index") in opted_phones:
            row["sms_opt_out"] = hit = True
        changed += hit
    return changed
