"""Opt-outs, holds and disputes: changes people ask for, applied at once and recorded.

Every change is written with when and where it came from, so it can be proven
later. Messages already queued or deferred are stopped by the release check,
which reads these tables fresh right before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from sqlalchemy import Engine, insert, select, update

from campaigns.db.bulk import insert_ignoring_conflicts
from campaigns.db.models import Account, ContactAttempt, Customer, Dispute, Hold, OptOutEvent, ProviderEvent
from campaigns.policy.optout import opt_out_keyword
from campaigns.policy.rules import HOLD_KINDS
from campaigns.privacy.lookup import customers_with_phone

OPT_OUT_CHANNELS = ("email", "sms", "push")


class PreferenceError(ValueError):
    """A request that cannot be applied (unknown customer, unknown kind, ...)."""


def _customer_exists(conn, customer_id: str) -> None:
    if conn.execute(select(Customer.id).where(Customer.id == customer_id)).scalar_one_or_none() is None:
        raise PreferenceError(f"no customer {customer_id!r}")


def opt_out(engine: Engine, customer_id: str, channels: list[str], now: datetime, *, source: str,
            keyword: str | None = None) -> None:
    unknown = [c for c in channels if c not in OPT_OUT_CHANNELS]
    if unknown:
        raise PreferenceError(f"unknown channel(s) {', '.join(unknown)}; use {', '.join(OPT_OUT_CHANNELS)}")
    with engine.begin() as conn:
        _customer_exists(conn, customer_id)
        record_opt_outs(conn, [customer_id], channels, now, source=source, keyword=keyword)


def record_opt_outs(conn, customer_ids: list[str], channels: list[str], now: datetime, *, source: str,
                    keyword: str | None = None) -> None:
    """Set the opt-out flags and keep one ``opt_out_events`` row per customer and channel, as proof."""
    if not customer_ids:
        return
    conn.execute(update(Customer).where(Customer.id.in_(customer_ids))
                 .values(**{f"{c}_opt_out": True for c in channels}, updated_at=now))
    conn.execute(insert(OptOutEvent), [
        {"customer_id": customer_id, "channel": c, "source": source, "received_at": now, "keyword": keyword}
        for customer_id in customer_ids for c in channels])


@dataclass(frozen=True)
class InboundResult:
    matched_customers: int
    keyword: str | None
    duplicate: bool = False  # the provider delivered this message before: nothing was recorded again


def sender_number(sender: str) -> str:
    """An inbound message's sender as E.164, or ``PreferenceError`` (one line, not the number)."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(sender, None), phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException as exc:
        raise PreferenceError("the sender is not a phone number in +<country code> form") from exc


def customers_of_number(conn, number: str) -> list[str]:
    """The customers whose phone is ``number`` (E.164), through the blind index."""
    return list(conn.execute(select(Customer.id).where(customers_with_phone(conn, number))
                             .order_by(Customer.id)).scalars())


def receive_sms(engine: Engine, sender: str, body: str, now: datetime, *, message_id: str | None = None,
                provider: str = "twilio") -> InboundResult:
    """An inbound SMS: if it asks to stop, every customer with that number is opted out of SMS at once.

    ``message_id`` (Twilio's ``MessageSid``) makes it once: a provider redelivers a message when our answer is
    slow, and the same message again records nothing (it is kept in ``provider_events``, like the email
    events, in the transaction that opts out)."""
    keyword = opt_out_keyword(body)
    if keyword is None:
        return InboundResult(0, None)
    number = sender_number(sender)
    with engine.begin() as conn:
        if message_id:
            new = insert_ignoring_conflicts(conn, ProviderEvent.__table__, [{
                "provider": provider, "event_id": f"inbound:{message_id}"[:128], "attempt_id": None,
                "event": "inbound_stop", "occurred_at": now, "received_at": now, "detail": keyword[:64],
                "message_id": message_id[:128]}], key="event_id")
            if not new:
                return InboundResult(0, keyword, duplicate=True)
        customers = customers_of_number(conn, number)
        record_opt_outs(conn, customers, ["sms"], now, source="inbound_sms", keyword=keyword)
    return InboundResult(len(customers), keyword)


def set_hold(engine: Engine, customer_id: str, kind: str, now: datetime, *, ends_at: datetime | None = None,
             source: str = "cli") -> bool:
    """Open a hold; False if the same kind is already open."""
    if kind not in HOLD_KINDS:
        raise PreferenceError(f"unknown hold {kind!r}; one of {', '.join(HOLD_KINDS)}")
    if kind == "breathing_space" and ends_at is None:
        raise PreferenceError("a breathing space needs its end date (--until)")
    with engine.begin() as conn:
        _customer_exists(conn, customer_id)
        already = conn.execute(select(Hold.id).where(Hold.customer_id == customer_id, Hold.kind == kind,
                                                     Hold.cleared_at.is_(None))).first()
        if already:
            return False
        conn.execute(insert(Hold), {"customer_id": customer_id, "kind": kind, "opened_at": now,
                                    "ends_at": ends_at, "cleared_at": None, "source": source})
    return True


def clear_hold(engine: Engine, customer_id: str, kind: str, now: datetime) -> int:
    with engine.begin() as conn:
        return conn.execute(update(Hold).where(Hold.customer_id == customer_id, Hold.kind == kind,
                                               Hold.cleared_at.is_(None)).values(cleared_at=now)).rowcount


def open_dispute(engine: Engine, account_id: str, now: datetime, *, source: str = "cli") -> bool:
    with engine.begin() as conn:
        if conn.execute(select(Account.id).where(Account.id == account_id)).scalar_one_or_none() is None:
            raise PreferenceError(f"no account {account_id!r}")
        return record_dispute(conn, account_id, now, source=source)


def record_dispute(conn, account_id: str, now: datetime, *, source: str) -> bool:
    """Open a dispute on the account in the caller's transaction; False if one is already open."""
    if conn.execute(select(Dispute.id).where(Dispute.account_id == account_id,
                                             Dispute.resolved_at.is_(None))).first():
        return False
    conn.execute(insert(Dispute), {"account_id": account_id, "opened_at": now, "resolved_at": None,
                                   "source": source})
    return True


def resolve_dispute(engine: Engine, account_id: str, now: datetime) -> int:
    with engine.begin() as conn:
        return conn.execute(update(Dispute).where(Dispute.account_id == account_id, Dispute.resolved_at.is_(None))
                            .values(resolved_at=now)).rowcount


def record_unusable_channel(conn, attempt_ids_by_reason: dict[tuple[str, str], list[int]], now: datetime) -> None:
    """What a provider's permanent refusal teaches about the customer, so no stage uses that channel again.

    Keys are (channel, reason): email ``invalid_address`` marks the address invalid;
    SMS ``opted_out`` (the number replied STOP to the provider) is an SMS opt-out,
    recorded with its source; push ``invalid_address`` (no app) turns push off.
    """
    changes = {("email", "invalid_address"): {"email_invalid": True},
               ("push", "invalid_address"): {"push_enabled": False}}
    for key, ids in attempt_ids_by_reason.items():
        if not ids or (key not in changes and key != ("sms", "opted_out")):
            continue
        customers = conn.execute(select(ContactAttempt.customer_id).where(ContactAttempt.id.in_(ids))
                                 .distinct()).scalars().all()
        if key == ("sms", "opted_out"):
            record_opt_outs(conn, customers, ["sms"], now, source="provider_event", keyword="STOP")
        else:
            conn.execute(update(Customer).where(Customer.id.in_(customers)).values(**changes[key], updated_at=now))
