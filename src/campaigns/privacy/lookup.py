"""Blind indexes: how a sealed email or phone is found again by its value, without the value in the database.

An email is indexed lower-cased (an unsubscribe for ``Ana@Example.com`` must reach
``ana@example.com``: for opt-outs, matching more is the safe side); a phone as
its E.164 text, as the importer stores it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from campaigns.sealing.keys import KeyRing
from campaigns.sealing.seal import ring_for


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


# The channels an opt-out is kept for by address: the blind index that finds a customer by it.
INDEXED_OPT_OUTS = {"email": ("email_index", "email_opt_out"), "sms": ("phone_index", "sms_opt_out")}


def carry_opt_outs(conn, rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Opt customer rows out of email or SMS where another customer with the same blind index opted out, stored
    or among ``rows`` themselves (in place; rows carry ``email_index`` / ``phone_index``). An erased or
    anonymised customer keeps only these indexes: a new record of the same address, under a new id, stays
    opted out. Returns the channels carried, by customer id."""
    from sqlalchemy import select

    from campaigns.db.engine import among
    from campaigns.db.models import Customer

    carried: dict[str, set[str]] = {}
    for channel, (index, flag) in INDEXED_OPT_OUTS.items():
        wanted = [r[index] for r in rows if r.get(index) and not r.get(flag)]
        if not wanted:
            continue
        opted = {r[index] for r in rows if r.get(index) and r.get(flag)}
        column = getattr(Customer, index)
        opted |= set(conn.execute(select(column).where(among(conn, column, wanted),
                                                       getattr(Customer, flag))).scalars())
        for row in rows:
            if row.get(index) in opted and not row.get(flag):
                row[flag] = True
                carried.setdefault(row["id"], set()).add(channel)
    return carried


def spread_opt_outs(conn, indexes: dict[str, set[str]], now, leave_out: set[str]) -> dict[str, set[str]]:
    """Opt out the stored customers (but ``leave_out``) that share an address just opted out of: ``indexes`` are
    the blind indexes, by channel. Returns the channels set, by customer id (the caller records the events)."""
    from sqlalchemy import select, update

    from campaigns.db.engine import among
    from campaigns.db.models import Customer

    spread: dict[str, set[str]] = {}
    for channel, (index, flag) in INDEXED_OPT_OUTS.items():
        values = sorted(indexes.get(channel, ()))
        if not values:
            continue
        ids = [i for i in conn.execute(select(Customer.id).where(
            among(conn, getattr(Customer, index), values), ~getattr(Customer, flag))).scalars()
            if i not in leave_out]
        if ids:
            conn.execute(update(Customer).where(among(conn, Customer.id, ids)).values(**{flag: True}, updated_at=now))
            for i in ids:
                spread.setdefault(i, set()).add(channel)
    return spread
