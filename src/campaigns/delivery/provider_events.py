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

Each event is validated on its own (``SendGridEvent``, ``TwilioStatus``): a bad
one (not an object, an unknown kind, a time of 1e20 or NaN, an attempt id beyond
our column, a batch element nested too deep to read) is recorded in
``provider_event_problems`` with the fields and rules it broke, and the others
are applied. An unsubscribe or spam report is never lost to a bad field: it is
repaired (``salvaged``) and applied, by address when its attempt id is unusable.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError

from campaigns.channels.codes import PERMANENT_CODES
from campaigns.customers.preferences import record_opt_outs, record_unusable_channel
from campaigns.db.bulk import insert_ignoring_conflicts
from campaigns.db.engine import among
from campaigns.db.models import AttemptStatus, ContactAttempt, Customer, ProviderEvent, ProviderEventProblem
from campaigns.privacy.lookup import customers_with_email

KNOWN = ("processed", "delivered", "deferred", "bounce", "dropped", "open", "click", "spamreport",
         "unsubscribe", "group_unsubscribe", "group_resubscribe")
OPT_OUT_EVENTS = {"spamreport", "unsubscribe", "group_unsubscribe"}
# Our attempt ids are INTEGER: anything outside is not ours (and would overflow the column).
MAX_ATTEMPT_ID = 2**31 - 1
# Event times are Unix seconds; before 1970 or after 2100 they are not times at all.
EARLIEST, LATEST = 0, 4_102_444_800


@dataclass
class EventReport:
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


@dataclass(frozen=True)
class Unreadable:
    """An element of a batch that is not JSON we can read (too deep, a number too long, broken)."""

    problem: str


def _attempt_id_value(value: Any) -> Any:
    """Our ``custom_args`` come back as strings of digits; a bool is not a number here."""
    if isinstance(value, bool):
        raise ValueError("not an attempt id")
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) <= 10):
        raise ValueError("not an attempt id")
    return value


class SendGridEvent(BaseModel):
    """One event of SendGrid's Event Webhook, as far as we read it (other fields are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event: Literal[KNOWN]
    sg_event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    timestamp: Annotated[float, Field(ge=EARLIEST, le=LATEST, allow_inf_nan=False, strict=False)]
    attempt_id: Annotated[int, BeforeValidator(_attempt_id_value), Field(ge=1, le=MAX_ATTEMPT_ID)] | None = None
    sg_message_id: Annotated[str, StringConstraints(max_length=256)] | None = None
    type: Annotated[str, StringConstraints(max_length=64)] | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None

    @field_validator("timestamp", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("not a number")
        return value


# Fields an opt-out can do without: a bad one is replaced, and the opt-out still taken.
SALVAGEABLE = {"timestamp", "sg_event_id", "attempt_id", "sg_message_id", "type"}


def _problem(errors: list[dict]) -> str:
    """``timestamp: greater_than_equal; attempt_id: int_parsing``: where and which rule, never the value."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['type']}" for e in errors)[:300]


def read_sendgrid_event(raw: Any, now: datetime) -> tuple[SendGridEvent | None, str | None]:
    """(the event, or None if it cannot be used; what was wrong with it, or None).

    A bad field rejects the event, except for an opt-out (unsubscribe, spam
    report): those are too important to lose, so a bad time, id or attempt id is
    replaced (the time we received it, an id derived from the event, no attempt:
    the customer is then found by address) and the opt-out is applied.
    """
    if isinstance(raw, Unreadable):
        return None, raw.problem
    if not isinstance(raw, dict):
        return None, f"event: not a JSON object ({type(raw).__name__})"
    try:
        return SendGridEvent.model_validate(raw), None
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
    bad = {str(e["loc"][0]) if e["loc"] else "event" for e in errors}
    kind = raw.get("event")
    if not (isinstance(kind, str) and kind in OPT_OUT_EVENTS) or not bad <= SALVAGEABLE:
        return None, _problem(errors)
    repaired = {k: v for k, v in raw.items() if k not in bad}
    if "timestamp" in bad:
        repaired["timestamp"] = now.timestamp()
    if "sg_event_id" in bad:
        # The same event redelivered gets the same id; only scalar fields go in (nothing deep to walk).
        facts = [raw.get(k) if isinstance(raw.get(k), (str, int, float, bool, type(None))) else "?"
                 for k in ("event", "attempt_id", "email", "timestamp", "sg_message_id")]
        digest = hashlib.sha256(repr(facts).encode()).hexdigest()[:40]
        repaired["sg_event_id"] = f"salvaged:{digest}"
    try:
        return SendGridEvent.model_validate(repaired), _problem(errors)
    except ValidationError as again:
        return None, _problem(again.errors(include_url=False, include_input=False))


def split_json_array(text: str) -> list[Any]:
    """The elements of a JSON array, each parsed on its own: a bad one is ``Unreadable``, the others survive.

    The whole text is parsed at once when it can be (the usual case). When it
    cannot (one element nested 100,000 deep, a 5,000-digit number, a broken
    element), the top level is split at its commas, strings respected, and each
    element is parsed alone. Raises ``ValueError`` if the text is not an array.
    """
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ValueError("expected a JSON array of events")
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        pass
    else:
        if isinstance(parsed, list):
            return parsed
    return [_element(piece) for piece in _top_level_pieces(body[1:-1])]


def split_json_lines(text: str) -> list[Any]:
    """JSON lines: one event per non-blank line, each parsed on its own (a bad line is ``Unreadable``)."""
    return [_element(line) for line in text.splitlines() if line.strip()]


def _element(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Unreadable(f"event: not readable JSON ({type(exc).__name__})")


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def _top_level_pieces(inner: str) -> list[str]:
    """Split the inside of an array at the commas outside any string, object or array."""
    pieces, depth, start = [], 0, 0
    for match in _TOKENS.finditer(inner):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
        elif token == "," and depth == 0:
            pieces.append(inner[start:match.start()])
            start = match.end()
    last = inner[start:]
    if last.strip() or pieces:
        pieces.append(last)
    return pieces


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


def record_problem(engine: Engine, provider: str, now: datetime, problem: str, *, outcome: str = "rejected",
                   position: int | None = None, event_id: str | None = None, event: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(insert(ProviderEventProblem.__table__), {
            "provider": provider, "received_at": now, "position": position, "event_id": event_id,
            "event": event, "problem": problem[:300], "outcome": outcome})


def apply_sendgrid_events(engine: Engine, events: list[Any], now: datetime) -> EventReport:
    """Apply a batch of events, each on its own: a bad event is recorded with why and costs only itself.

    ``events`` are parsed JSON values (``split_json_array`` keeps the readable
    ones of a damaged batch). A database refusal of one event is that event's
    problem too; a database that cannot be reached is raised, so the provider
    retries the batch (events already applied are recognised by their id).
    """
    report = EventReport()
    for position, raw in enumerate(events):
        parsed, problem = read_sendgrid_event(raw, now)
        if parsed is None:
            _reject(engine, report, position, raw, problem, now)
            continue
        if problem:
            record_problem(engine, "sendgrid", now, problem, outcome="salvaged", position=position,
                           event_id=parsed.sg_event_id, event=parsed.event)
            report.counts["salvaged"] += 1
            report.problems.append(f"event {position}: {problem} (an opt-out: applied anyway)")
        try:
            _apply_one(engine, report, parsed, now)
        except (DataError, IntegrityError) as exc:
            _reject(engine, report, position, raw, f"database refused it ({type(exc.orig).__name__})", now)
    return report


def _reject(engine: Engine, report: EventReport, position: int, raw: Any, problem: str, now: datetime) -> None:
    kind = raw.get("event") if isinstance(raw, dict) else None
    kind = kind if isinstance(kind, str) and kind in KNOWN else None
    event_id = raw.get("sg_event_id") if isinstance(raw, dict) else None
    event_id = event_id if isinstance(event_id, str) and 0 < len(event_id) <= 128 else None
    record_problem(engine, "sendgrid", now, problem, position=position, event_id=event_id, event=kind)
    report.counts["rejected"] += 1
    report.problems.append(f"event {position}: {problem}")


def _apply_one(engine: Engine, report: EventReport, event: SendGridEvent, now: datetime) -> None:
    kind = event.event
    occurred = datetime.fromtimestamp(event.timestamp, tz=timezone.utc)
    detail = (event.type or "")[:64] or None  # bounce/blocked: never the reason text
    message_id = (event.sg_message_id or "").split(".")[0][:128] or None
    with engine.begin() as conn:
        created, attempt = _record_event(conn, "sendgrid", event.sg_event_id, event.attempt_id, kind, occurred, now,
                                         detail, message_id)
        if not created:
            report.counts["duplicate"] += 1
            return
        report.counts[kind] += 1
        if attempt is not None:
            _apply(conn, attempt.id, attempt.status, attempt.customer_id, kind, detail, message_id, now)
            customers = [attempt.customer_id]
        else:
            report.counts["unmatched"] += 1
            customers = _customers_by_email(conn, event.email) if kind in OPT_OUT_EVENTS else []
        if kind in OPT_OUT_EVENTS and customers:
            record_opt_outs(conn, customers, ["email"], now, source="provider_event", keyword=kind)


def _customers_by_email(conn: Connection, email: str | None) -> list[str]:
    """The customers an opt-out without (a usable) attempt id is about: whoever has that address."""
    if not email or "@" not in email:
        return []
    try:
        address = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError:
        return []
    return list(conn.execute(select(Customer.id).where(customers_with_email(conn, address))).scalars())


# Twilio's MessageStatus values, as the SendGrid kinds whose moves they share.
TWILIO_STATUS = {"sent": "processed", "delivered": "delivered", "undelivered": "dropped", "failed": "dropped"}


class TwilioStatus(BaseModel):
    """The fields of a status callback we read (Twilio posts many more)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    MessageSid: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    MessageStatus: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    ErrorCode: Annotated[str, StringConstraints(pattern=r"^\d{1,6}$")] | None = None

    @field_validator("ErrorCode", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return value or None


def twilio_attempt_id(raw: str | None) -> int | None:
    """Our attempt id from the callback URL's query, or None if it is not one of ours."""
    if raw and raw.isascii() and raw.isdigit() and len(raw) <= 10 and 0 < int(raw) <= MAX_ATTEMPT_ID:
        return int(raw)
    return None


def apply_twilio_status(engine: Engine, params: dict[str, str], attempt_id: int | None, now: datetime) -> str:
    """One Twilio status callback (form fields; our attempt id came in the callback URL). Returns what was done."""
    try:
        status = TwilioStatus.model_validate(params)
    except ValidationError as exc:
        record_problem(engine, "twilio", now, _problem(exc.errors(include_url=False, include_input=False)))
        return "rejected"
    kind = TWILIO_STATUS.get(status.MessageStatus)
    code = status.ErrorCode
    sid = status.MessageSid
    with engine.begin() as conn:
        created, attempt = _record_event(conn, "twilio", f"{sid}:{status.MessageStatus}", attempt_id,
                                         kind or status.MessageStatus, now, now, f"error {code}" if code else None, sid)
        if not created:
            return "duplicate"
        if attempt is None:
            return "unmatched"
        if kind:
            _apply(conn, attempt.id, attempt.status, attempt.customer_id, kind, None, sid, now)
        reason = PERMANENT_CODES.get(int(code)) if code else None
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
            .where(among(conn, e.attempt_id, ids), e.event.in_(list(MOVES)))
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
