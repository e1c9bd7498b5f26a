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
