"""What a customer can do on their own page, each once, each an event in ``customer_actions`` with its code.

=================  =====================  ===========================================================
action             code                   what follows
=================  =====================  ===========================================================
stated_reason      hardship, ...          the account's stated reason (the latest): hardship → gentle
                                          tone and the plan / more-time offers first; a problem paying
                                          → the payment guide first; a segment input and a review line
asked_for_time     the new date           a deferral (a promise of kind ``deferral``): no stage
                                          contacts the account until the date; broken the day after
asked_for_call     morning, ...           a worklist item ``asked_for_call`` in the window the customer
                                          chose, in their own time zone
disputed           ``dispute``            a dispute is opened: all contact stops (the note is sealed)
stopped_channel    email, sms or push     an opt-out of that channel, at once, queued messages included
rated              1 to 5                 satisfaction, for the review (the comment is sealed)
chose_plan         the option's number    recorded by the plan pages (``campaigns.money.offers``)
=================  =====================  ===========================================================

Every function takes the page form's own ``request_key``: the same form sent twice (a double tap, a reload that
posts again) records nothing the second time and says so (``Outcome.again``). Nothing here logs or raises a name,
address or note: errors are codes the page words in the customer's language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from sqlalchemy import Engine, exists, func, insert, select
from sqlalchemy.engine import Connection

from campaigns.contact.segments import classify_segments, segment_inputs
from campaigns.customers.preferences import OPT_OUT_CHANNELS, record_dispute, record_opt_outs
from campaigns.attempts.log import suppress_pending
from campaigns.db.bulk import insert_ignoring_conflicts
from campaigns.db.models import (Account, AgentWorklistItem, Customer, CustomerAction, Dispute, PaymentPromise,
                                 RepaymentPlan)
from campaigns.ladder.config import DeferralRules, SegmentRules
from campaigns.money.currency import in_currency
from campaigns.money.promises import PromiseError, open_promise

REASONS = ("hardship", "problem_paying", "did_not_know", "dispute", "other")
CALL_WINDOWS = {"morning": (time(9), time(12)), "afternoon": (time(12), time(17)), "evening": (time(17), time(20))}
CALL_DAYS_AHEAD = 7
NOTE_CHARS = 1000
ACTIONS = ("stated_reason", "asked_for_time", "asked_for_call", "disputed", "stopped_channel", "rated", "chose_plan",
           "replied")


class ActionRefused(ValueError):
    """An action the page cannot take: ``code`` is what the page says (in the customer's language)."""

    def __init__(self, code: str, status: int = 422):
        super().__init__(code)
        self.code, self.status = code, status


@dataclass(frozen=True)
class Outcome:
    """What an action did: ``again`` when this form was already sent (nothing new recorded)."""

    action: str
    code: str | None
    again: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PageFacts:
    """What the page shows and decides with: figures, dates and switches, never a name, address or note."""

    account_id: str
    customer_id: str
    status: str
    currency: str
    amount_due: Decimal
    balance: Decimal
    credit: Decimal
    due_date: date
    days_past_due: int
    locale: str
    zone: str  # the customer's zone, for the call-back windows
    plan_due_date: date | None
    plan_amount_due: Decimal | None
    open_promise: tuple[str, date] | None  # (kind, date)
    disputed: bool
    channels: dict[str, bool]  # channel -> still contacted (not opted out) for the channels the customer has
    stated_reason: str | None
    rated: bool
    offer_day: date | None  # the campaign day of an open plan offer
    offer_expires_at: datetime | None
    deferral_refused: str | None  # None: may ask for more time; else why not (a code)
    deferral_latest: date | None
    can_rate: bool
    called_back: datetime | None  # an open call-back request's window start

    @property
    def ref(self) -> str:
        return self.account_id[-4:]

    @property
    def owes(self) -> bool:
        return self.status == "open" and self.balance > 0


def customer_zone(timezone_name: str | None, phone_zones: str | None, fallback: ZoneInfo) -> ZoneInfo:
    """The zone the customer lives in, as well as we know it: theirs, else their phone's first, else the lender's."""
    for name in (timezone_name, (phone_zones or "").split(",")[0]):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return fallback


def page_facts(engine: Engine, account_id: str, now: datetime, zone: ZoneInfo, deferral: DeferralRules,
               segments: SegmentRules | None = None) -> PageFacts | None:
    """The account as its page shows it now (``zone``: the lender's, for 'today'); None if there is no such account
    or its customer was erased."""
    today = now.astimezone(zone).date()
    a, c = Account, Customer
    p, act, w = PaymentPromise, CustomerAction, AgentWorklistItem

    def first(column, *where, order=None):
        """The first value of ``column`` under ``where`` (ordered), as a correlated scalar of this account."""
        return select(column).where(*where).order_by(*(order or ())).limit(1).scalar_subquery()

    open_promise = (p.account_id == a.id, p.status == "open")
    # One statement, one round trip: what the page shows is a dozen facts of one account.
    stmt = (select(a.id, a.customer_id, a.status, a.currency, a.amount_due, a.balance, a.credit, a.due_date,
                   a.plan_due_date, a.plan_amount_due, a.paid_off_at, a.created_at, c.locale, c.timezone,
                   c.phone_zones, c.anonymised_at, c.email_opt_out, c.sms_opt_out, c.push_opt_out, c.push_enabled,
                   c.email_invalid, (c.email.is_not(None)).label("has_email"),
                   (c.phone.is_not(None)).label("has_phone"),
                   first(p.kind, *open_promise).label("promise_kind"),
                   first(p.due_by, *open_promise).label("promise_due"),
                   exists().where(Dispute.account_id == a.id, Dispute.resolved_at.is_(None)).label("disputed"),
                   first(act.code, act.account_id == a.id, act.action == "stated_reason",
                         order=(act.occurred_at.desc(), act.id.desc())).label("reason"),
                   exists().where(act.account_id == a.id, act.action == "rated").label("rated"),
                   first(RepaymentPlan.offered_on, RepaymentPlan.account_id == a.id,
                         RepaymentPlan.status == "offered", RepaymentPlan.expires_at > now,
                         order=(RepaymentPlan.offered_on.desc(),)).label("offer_day"),
                   first(RepaymentPlan.expires_at, RepaymentPlan.account_id == a.id,
                         RepaymentPlan.status == "offered", RepaymentPlan.expires_at > now,
                         order=(RepaymentPlan.offered_on.desc(),)).label("offer_expires_at"),
                   first(w.call_from, w.account_id == a.id, w.reason == "asked_for_call", w.status == "open",
                         w.call_until > now, order=(w.call_from,)).label("called"),
                   select(func.max(p.promised_at)).where(p.account_id == a.id, p.kind == "deferral")
                   .scalar_subquery().label("last_deferral"))
            .join(c, c.id == a.customer_id).where(a.id == account_id))
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
        if row is None or row.anonymised_at is not None:
            return None
        promise = (row.promise_kind, row.promise_due) if row.promise_kind is not None else None
        disputed, reason, last_deferral, called = bool(row.disputed), row.reason, row.last_deferral, row.called
        offer = (row.offer_day, row.offer_expires_at) if row.offer_day is not None else None
        segment = None
        if deferral.segments and segments is not None:
            frame = pd.DataFrame({"account_id": [row.id], "due_date": [row.due_date], "balance": [row.balance],
                                  "currency": [row.currency], "account_created_at": [row.created_at]})
            inputs = segment_inputs(conn, frame, today, segments)
            segment = classify_segments(frame.merge(inputs, on="account_id"), segments)["segment"].iloc[0]
    days_past_due = (today - row.due_date).days
    channels = {}
    if row.has_email and not row.email_invalid:
        channels["email"] = not row.email_opt_out
    if row.has_phone:
        channels["sms"] = not row.sms_opt_out
    if row.push_enabled:
        channels["push"] = not row.push_opt_out
    owes = row.status == "open" and row.balance > 0
    refused = _deferral_refused(deferral, owes, row.amount_due, days_past_due, promise, disputed, last_deferral, now,
                                segment, row.plan_due_date)
    paid_recently = row.paid_off_at is not None and (now - row.paid_off_at) <= timedelta(days=60)
    can_rate = not row.rated and (paid_recently or row.plan_due_date is not None
                                  or (promise is not None and promise[0] == "deferral"))
    return PageFacts(
        account_id=row.id, customer_id=row.customer_id, status=row.status, currency=row.currency,
        amount_due=in_currency(row.amount_due, row.currency), balance=in_currency(row.balance, row.currency),
        credit=in_currency(row.credit or Decimal(0), row.currency), due_date=row.due_date,
        days_past_due=days_past_due, locale=row.locale or "en-US",
        zone=customer_zone(row.timezone, row.phone_zones, zone).key, plan_due_date=row.plan_due_date,
        plan_amount_due=(in_currency(row.plan_amount_due, row.currency) if row.plan_amount_due is not None else None),
        open_promise=promise, disputed=disputed, channels=channels,
        stated_reason=reason, rated=bool(row.rated), offer_day=offer[0] if offer else None,
        offer_expires_at=offer[1] if offer else None, deferral_refused=refused,
        deferral_latest=None if refused else today + timedelta(days=deferral.longest_days), can_rate=can_rate,
        called_back=called)


def _deferral_refused(rules: DeferralRules, owes: bool, amount_due: Decimal, days_past_due: int, promise,
                      disputed: bool, last_deferral: datetime | None, now: datetime, segment: str | None,
                      plan_due: date | None) -> str | None:
    if not rules.enabled:
        return "not_offered"
    if not owes or amount_due <= 0:
        return "nothing_due"
    if promise is not None:
        return "already_deferred" if promise[0] == "deferral" else "promise_open"
    if disputed:
        return "disputed"
    if plan_due is not None:
        return "in_plan"
    if days_past_due < rules.days_past_due.min or (rules.days_past_due.max is not None
                                                   and days_past_due > rules.days_past_due.max):
        return "not_eligible_now"
    if rules.segments and segment not in rules.segments:
        return "not_eligible_now"
    if rules.once_in_months and last_deferral is not None and \
            now - last_deferral < timedelta(days=round(rules.once_in_months * 30.44)):
        return "deferred_recently"
    return None


def _record(conn: Connection, facts: PageFacts, action: str, code: str | None, request_key: str, now: datetime,
            *, detail: dict | None = None, note: str | None = None, source: str = "page") -> int | None:
    """The action's row, or None if this request was recorded before (the same form sent again)."""
    new = insert_ignoring_conflicts(conn, CustomerAction.__table__, [{
        "account_id": facts.account_id, "customer_id": facts.customer_id, "action": action, "code": code,
        "detail": detail, "note": (note or None), "source": source, "request_key": request_key,
        "occurred_at": now}], key="request_key")
    return new[0][0] if new else None


def _key(facts: PageFacts, form_key: str) -> str:
    if not form_key or len(form_key) > 64 or not form_key.replace("-", "").replace("_", "").isalnum():
        raise ActionRefused("form_expired", 400)
    return f"page:{facts.account_id}:{form_key}"


def _sent_before(engine: Engine, facts: PageFacts, form_key: str, action: str) -> tuple[str, Outcome | None]:
    """The form's key, and the answer if this very form was recorded before: a form sent again is answered
    "already" whatever has changed since (its day passed, a rule now says no), before anything is checked."""
    key = _key(facts, form_key)
    with engine.connect() as conn:
        code = conn.execute(select(CustomerAction.code).where(CustomerAction.request_key == key)).first()
    return key, (Outcome(action, code[0], again=True) if code is not None else None)


def _note(text: str | None) -> str | None:
    text = (text or "").strip()
    if len(text) > NOTE_CHARS:
        raise ActionRefused("note_too_long")
    return text or None


def state_reason(engine: Engine, facts: PageFacts, reason: str, note: str | None, form_key: str,
                 now: datetime) -> Outcome:
    """Why the account is late, in the customer's words (a code, and an optional sealed note)."""
    key, again = _sent_before(engine, facts, form_key, "stated_reason")
    if again:
        return again
    if reason not in REASONS:
        raise ActionRefused("choose_a_reason")
    note = _note(note)
    with engine.begin() as conn:
        new = _record(conn, facts, "stated_reason", reason, key, now, note=note)
    return Outcome("stated_reason", reason, again=new is None)


def ask_for_time(engine: Engine, facts: PageFacts, new_date: date | None, form_key: str, now: datetime,
                 zone: ZoneInfo, rules: DeferralRules) -> Outcome:
    """A deferral to ``new_date`` within the rules the page was shown with (checked again here, in the write)."""
    key, again = _sent_before(engine, facts, form_key, "asked_for_time")
    if again:
        return again
    today = now.astimezone(zone).date()
    with engine.begin() as conn:
        if facts.deferral_refused is not None:
            raise ActionRefused(facts.deferral_refused)
        if new_date is None or new_date <= today or (new_date - today).days > rules.longest_days:
            raise ActionRefused("choose_a_date")
        try:
            open_promise(conn, facts.account_id, facts.amount_due, new_date, now, today, channel="web",
                         max_days=rules.longest_days, source="page", zone=zone, kind="deferral")
        except PromiseError:
            # Someone (an agent, another tab) opened one since the page was shown: nothing changed here.
            raise ActionRefused("already_deferred", 409) from None
        _record(conn, facts, "asked_for_time", new_date.isoformat(), key, now,
                detail={"until": new_date.isoformat(), "amount": str(facts.amount_due)})
    return Outcome("asked_for_time", new_date.isoformat(), detail={"until": new_date})


def ask_for_call(engine: Engine, facts: PageFacts, day: date | None, window: str, form_key: str,
                 now: datetime) -> Outcome:
    """A call back on ``day`` in ``window`` (the customer's own time): a worklist item only for that window."""
    key, again = _sent_before(engine, facts, form_key, "asked_for_call")
    if again:
        return again
    zone = ZoneInfo(facts.zone)
    local_today = now.astimezone(zone).date()
    if window not in CALL_WINDOWS or day is None or not (local_today <= day <= local_today
                                                         + timedelta(days=CALL_DAYS_AHEAD)):
        raise ActionRefused("choose_a_time")
    start, end = (datetime.combine(day, t, zone).astimezone(timezone.utc) for t in CALL_WINDOWS[window])
    if end <= now:
        raise ActionRefused("choose_a_time")
    with engine.begin() as conn:
        action_id = _record(conn, facts, "asked_for_call", window, key, now,
                            detail={"from": start.isoformat(), "until": end.isoformat(), "zone": facts.zone})
        if action_id is None:
            return Outcome("asked_for_call", window, again=True)
        conn.execute(insert(AgentWorklistItem), {
            "attempt_id": None, "action_id": action_id, "account_id": facts.account_id, "reason": "asked_for_call",
            "days_past_due": facts.days_past_due, "amount_due": facts.amount_due, "currency": facts.currency,
            "tried": {}, "status": "open", "created_at": now, "call_from": max(start, now), "call_until": end})
    return Outcome("asked_for_call", window, detail={"from": start, "until": end})


def dispute(engine: Engine, facts: PageFacts, note: str | None, form_key: str, now: datetime) -> Outcome:
    """Open a dispute: every contact stops, queued messages included (the note is sealed)."""
    key, again = _sent_before(engine, facts, form_key, "disputed")
    if again:
        return again
    note = _note(note)
    with engine.begin() as conn:
        if _record(conn, facts, "disputed", "dispute", key, now, note=note) is None:
            return Outcome("disputed", "dispute", again=True)
        record_dispute(conn, facts.account_id, now, source="page")
        suppress_pending(conn, [facts.account_id], "disputed", now)
    return Outcome("disputed", "dispute")


def stop_channel(engine: Engine, facts: PageFacts, channel: str, form_key: str, now: datetime) -> Outcome:
    """Opt the customer out of one channel, at once (the release check stops what is queued)."""
    key, again = _sent_before(engine, facts, form_key, "stopped_channel")
    if again:
        return again
    if channel not in OPT_OUT_CHANNELS or channel not in facts.channels:
        raise ActionRefused("choose_a_channel")
    with engine.begin() as conn:
        if _record(conn, facts, "stopped_channel", channel, key, now) is None:
            return Outcome("stopped_channel", channel, again=True)
        if facts.channels[channel]:
            record_opt_outs(conn, [facts.customer_id], [channel], now, source="customer_page")
    return Outcome("stopped_channel", channel)


def rate(engine: Engine, facts: PageFacts, score: int | None, comment: str | None, form_key: str,
         now: datetime) -> Outcome:
    """How we did, 1 to 5, once per account (a later rating is kept too, the review reads the latest)."""
    key, again = _sent_before(engine, facts, form_key, "rated")
    if again:
        return again
    if score not in (1, 2, 3, 4, 5):
        raise ActionRefused("choose_a_score")
    comment = _note(comment)
    with engine.begin() as conn:
        new = _record(conn, facts, "rated", str(score), key, now, note=comment)
    return Outcome("rated", str(score), again=new is None)
