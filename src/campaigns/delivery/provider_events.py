"""Provider delivery events (SendGrid's Event Webhook format), applied once each.

- ``delivered`` moves a ``sent`` attempt to ``delivered``, and reconciles an
  ``unknown`` one (a timeout whose message did go out) to ``delivered``.
- ``processed`` reconciles ``unknown`` to ``sent``; ``bounce`` moves it to
  ``bounced`` and, for a hard bounce, marks the address invalid so it is not
  used again; ``dropped`` fails the attempt.
- ``spamreport``, ``unsubscribe`` and ``group_unsubscribe`` opt the customer out
  of email at once.
- ``open``, ``click`` and ``deferred`` are recorded, not acted on.

Every event is stored in ``provider_events`` under the provider's own event id
(UNIQUE), so a redelivered event is recognised and skipped. An event about an
attempt still ``sending`` (the provider answered its webhook before our
deliverer wrote the outcome) is kept and applied when the attempt leaves
``sending`` (``settle_from_events``). Addresses in the
events are never stored or logged: attempts are found by our ``attempt_id``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection

from campaigns.channels.codes import PERMANENT_CODES
from campaigns.customers.preferences import opt_out, record_unusable_channel
from campaigns.db.engine import insert_ignoring_conflicts
from campaigns.db.models import AttemptStatus, ContactAttempt, Customer, ProviderEvent

KNOWN = {"processed", "delivered", "deferred", "bounce", "dropped", "open", "click", "spamreport",
         "unsubscribe", "group_unsubscribe", "group_resubscribe"}
OPT_OUT_EVENTS = {"spamreport", "unsubscribe", "group_unsubscribe"}


@dataclass
class EventReport:
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def _attempt_id(event: dict[str, Any]) -> int | None:
    value = event.get("attempt_id")
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def _record_event(conn: Connection, provider: str, event_id: str, attempt_id: int | None, kind: str,
                  occurred: datetime, now: datetime, detail: str | None, message_id: str | None):
    """Keep one event under the provider's id; return (whether it is new, the attempt it is about or None)."""
    attempt = None
    if attempt_id is not None:
        attempt = conn.execute(select(ContactAttempt.id, ContactAttempt.status, ContactAttempt.customer_id)
                               .where(ContactAttempt.id == attempt_id)).first()
    created = insert_ignoring_conflicts(conn, ProviderEvent.__table__, [{
        "provider": provider, "event_id": event_id[:128], "attempt_id": attempt.id if attempt else None,
        "event": kind[:32], "occurred_at": occurred, "received_at": now, "detail": detail[:64] if detail else None,
        "message_id": message_id[:128] if message_id else None,
    }], key="event_id")
    return bool(created), attempt


def apply_sendgrid_events(engine: Engine, events: list[dict[str, Any]], now: datetime) -> EventReport:
    report = EventReport()
    for position, event in enumerate(events):
        kind, event_id = event.get("event"), event.get("sg_event_id")
        if kind not in KNOWN or not event_id or not isinstance(event.get("timestamp"), (int, float)):
            report.counts["invalid"] += 1
            report.problems.append(f"event {position}: missing or unknown event, sg_event_id or timestamp")
            continue
        attempt_id = _attempt_id(event)
        occurred = datetime.fromtimestamp(event["timestamp"], tz=timezone.utc)
        detail = str(event.get("type") or "")[:64] or None  # bounce/blocked: never the reason text
        message_id = str(event.get("sg_message_id") or "").split(".")[0][:128] or None
        with engine.begin() as conn:
            created, attempt = _record_event(conn, "sendgrid", str(event_id), attempt_id, kind, occurred, now,
                                             detail, message_id)
            if not created:
                report.counts["duplicate"] += 1
                continue
            report.counts[kind] += 1
            if attempt is None:
                report.counts["unmatched"] += 1
                continue
            _apply(conn, attempt.id, attempt.status, attempt.customer_id, kind, detail, message_id, now)
        if kind in OPT_OUT_EVENTS:
            opt_out(engine, attempt.customer_id, ["email"], now, source="provider_event", keyword=kind)
    return report


# Twilio's MessageStatus values, as the SendGrid kinds whose moves they share.
TWILIO_STATUS = {"sent": "processed", "delivered": "delivered", "undelivered": "dropped", "failed": "dropped"}


def apply_twilio_status(engine: Engine, params: dict[str, str], attempt_id: int | None, now: datetime) -> str:
    """One Twilio status callback (form fields; our attempt id came in the callback URL). Returns what was done."""
    status, sid = params.get("MessageStatus", ""), params.get("MessageSid", "")
    if not sid or not status:
        return "invalid"
    kind = TWILIO_STATUS.get(status)
    code = params.get("ErrorCode") or None
    with engine.begin() as conn:
        created, attempt = _record_event(conn, "twilio", f"{sid}:{status}", attempt_id, kind or status, now, now,
                                         f"error {code}" if code else None, sid)
        if not created:
            return "duplicate"
        if attempt is None:
            return "unmatched"
        if kind:
            _apply(conn, attempt.id, attempt.status, attempt.customer_id, kind, None, sid, now)
        reason = PERMANENT_CODES.get(int(code)) if code and str(code).isdigit() else None
        if reason:
            record_unusable_channel(conn, {("sms", reason): [attempt.id]}, now)
    return kind or "recorded"


def settle_from_events(conn: Connection, attempt_ids: Sequence[int], now: datetime) -> None:
    """Apply the stored events of attempts that have just left ``sending``.

    A provider can report on a message (``processed``, even ``delivered``) before
    our deliverer has written its own answer, or before a crashed deliverer's claim
    is recovered; those events were kept but could not move a ``sending`` attempt.
    """
    if not attempt_ids:
        return
    a, e = ContactAttempt, ProviderEvent
    for i in range(0, len(attempt_ids), 500):
        ids = list(attempt_ids[i:i + 500])
        events = conn.execute(
            select(e.attempt_id, e.event, e.detail, e.message_id)
            .where(e.attempt_id.in_(ids), e.event.in_(list(MOVES)))
            .order_by(e.occurred_at, e.id)
        ).all()
        if not events:
            continue
        current = {r.id: (r.status, r.customer_id) for r in conn.execute(
            select(a.id, a.status, a.customer_id).where(a.id.in_({ev.attempt_id for ev in events})))}
        for ev in events:
            status, customer_id = current[ev.attempt_id]
            current[ev.attempt_id] = (_apply(conn, ev.attempt_id, status, customer_id, ev.event, ev.detail,
                                             ev.message_id, now), customer_id)


MOVES = {
    "processed": ({AttemptStatus.unknown.value}, {"status": AttemptStatus.sent.value}),
    "delivered": ({AttemptStatus.sent.value, AttemptStatus.unknown.value}, {"status": AttemptStatus.delivered.value}),
    "bounce": ({AttemptStatus.sent.value, AttemptStatus.unknown.value, AttemptStatus.delivered.value},
               {"status": AttemptStatus.bounced.value, "reason": "bounced"}),
    "dropped": ({AttemptStatus.sent.value, AttemptStatus.unknown.value},
                {"status": AttemptStatus.failed.value, "reason": "dropped"}),
}


def _apply(conn, attempt_id: int, status: str, customer_id: str, kind: str, detail: str | None,
           message_id: str | None, now: datetime) -> str:
    """Move one attempt for one event (a ``sending`` one never moves: it is settled later); return its status."""
    table = ContactAttempt.__table__
    if kind in MOVES:
        allowed, values = MOVES[kind]
        if status in allowed:
            extra = {"provider_message_id": message_id} if message_id else {}
            conn.execute(update(table).where(table.c.id == attempt_id).values(updated_at=now, **values, **extra))
            status = values["status"]
    if kind == "bounce" and detail == "bounce":  # a hard bounce; "blocked" is temporary
        conn.execute(update(Customer).where(Customer.id == customer_id).values(email_invalid=True, updated_at=now))
    return status
