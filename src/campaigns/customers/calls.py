"""Agents' calls: ask before calling (window, calendar, Reg F caps), and log every call made.

Calls are made by people from the worklist, outside this system; the check gives
them the same rules the automated channels obey, and the log is what the caps
are counted from (``contact_attempts`` rows with channel ``call``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine, exists, insert, select

from campaigns.db.models import (Account, AgentWorklistItem, AttemptStatus, Channel, ContactAttempt, Customer, Dispute,
                                 Stage)
from campaigns.attempts.log import Tally, attempt_row
from campaigns.policy import RELEASE, PolicyConfig, evaluate_release
from campaigns.policy.inputs import contact_history, holds_column
from campaigns.runs.records import finish_run, start_run

OUTCOMES = ("connected", "no_answer", "voicemail", "wrong_number")


class CallError(ValueError):
    pass


@dataclass(frozen=True)
class CallDecision:
    allowed: bool
    reason: str | None
    next_allowed: datetime | None
    trace: dict

    def next_allowed_locally(self) -> list[tuple[str, datetime]]:
        """The next allowed moment in each of the customer's plausible zones: an agent calls a person, not UTC."""
        if self.next_allowed is None:
            return []
        return [(zone, self.next_allowed.astimezone(ZoneInfo(zone))) for zone in self.trace.get("zones", [])]


def _account_frame(engine: Engine, account_id: str, now: datetime) -> pd.DataFrame:
    open_dispute = exists().where(Dispute.account_id == Account.id, Dispute.resolved_at.is_(None)).correlate(Account)
    stmt = (
        select(Account.id.label("account_id"), Account.customer_id, Account.status, Account.amount_due,
               Account.cease_contact, Customer.timezone, Customer.phone, Customer.country, Customer.anonymised_at,
               open_dispute.label("has_open_dispute"))
        .join(Customer, Customer.id == Account.customer_id)
        .where(Account.id == account_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
        if not rows:
            raise CallError(f"no account {account_id!r}")
        frame = pd.DataFrame(rows)
        frame["holds"] = holds_column(conn, frame["customer_id"].tolist(), now)
    frame["channel"] = Channel.call.value
    return frame


def check_call(engine: Engine, policy: PolicyConfig, account_id: str, now: datetime) -> CallDecision:
    """May an agent call this account's customer now? If not, why, and when next."""
    frame = _account_frame(engine, account_id, now)
    # No rule about hours or caps matters when there is no one to call: an erased customer, or no number.
    if pd.notna(frame.iloc[0]["anonymised_at"]):
        return CallDecision(False, "customer_erased", None, {"check": "call"})
    if not frame.iloc[0]["phone"]:
        return CallDecision(False, "no_phone", None, {"check": "call"})
    with engine.connect() as conn:
        # The customer asked to be called back later (their page): not before the window they chose.
        asked = conn.execute(select(AgentWorklistItem.call_from).where(
            AgentWorklistItem.account_id == account_id, AgentWorklistItem.reason == "asked_for_call",
            AgentWorklistItem.status == "open", AgentWorklistItem.call_until > now)
            .order_by(AgentWorklistItem.call_from)).scalars().all()
        if asked and not any(start <= now for start in asked):
            return CallDecision(False, "asked_for_call_later", asked[0],
                                {"check": "call", "zones": [str(frame.iloc[0]["timezone"] or "UTC")]})
        history = contact_history(conn, [account_id], now)
    decided = evaluate_release(frame, history, now, policy, check="call").iloc[0]
    return CallDecision(decided["decision"] == RELEASE, decided["reason"], decided["release_after"], decided["trace"])


def log_call(engine: Engine, policy: PolicyConfig, account_id: str, outcome: str, now: datetime) -> CallDecision:
    """Record a call that was made, with the check as it stood at that moment (kept even if it broke a rule)."""
    if outcome not in OUTCOMES:
        raise CallError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
    decision = check_call(engine, policy, account_id, now)
    frame = _account_frame(engine, account_id, now)
    run_id = start_run(engine, "call", now.date(), now, started_at=now)
    row = attempt_row(
        run_id=run_id, account_id=account_id, customer_id=frame.iloc[0]["customer_id"], stage=Stage.escalation,
        cycle=f"call-{uuid.uuid4().hex[:12]}", as_of=now.date(),
        channel=Channel.call.value, status=AttemptStatus.sent.value, now=now,
        reason=None if decision.allowed else f"logged_despite_{decision.reason}",
    )
    row.update(sent_at=now, outcome=outcome, policy_trace=[decision.trace], delivered_by_run_id=run_id)
    with engine.begin() as conn:
        conn.execute(insert(ContactAttempt.__table__), row)
    tally = Tally()
    tally.add("sent")
    finish_run(engine, run_id, cohort_size=1, tally=tally, finished_at=now)
    return decision
