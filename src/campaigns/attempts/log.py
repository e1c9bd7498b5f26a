"""The attempt log: every intended contact becomes exactly one ``contact_attempts`` row.

The idempotency key (account, stage, cycle, channel) is UNIQUE in the database,
so a re-run of the same day, a retried task or an overlapping run finds the key
taken and neither logs nor sends anything twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection

from campaigns.db.bulk import copy_rows, insert_ignoring_conflicts
from campaigns.db.models import AttemptStatus, ContactAttempt, RenderedMessage, Stage

TERMINAL = ("sent", "suppressed", "holdout", "failed", "unknown")  # deferred and queued are on their way


def stage_cycle(stage: Stage | str, as_of: date, due_date: date, once_per_due_date: bool) -> str:
    """Which occurrence of a stage an attempt belongs to.

    Daily stages are one occurrence per day; a once-per-due-date stage
    (escalation) is one occurrence per due date, however many days it runs.
    """
    return f"due-{due_date.isoformat()}" if once_per_due_date else as_of.isoformat()


def idempotency_key(account_id: str, stage: Stage | str, cycle: str, channel: str) -> str:
    return f"{account_id}|{Stage(stage).value}|{cycle}|{channel}"


@dataclass
class PlannedAttempt:
    """One attempt row to write, and the message to store with it (when queued)."""

    row: dict[str, Any]
    message: dict[str, Any] | None = None
    offer: dict[str, Any] | None = None  # plan_offer: the offer the message makes (``repayment_plans`` row)


@dataclass
class Tally:
    """Counts of what happened, keyed ``status`` or ``status:reason``."""

    counts: Counter = field(default_factory=Counter)

    def add(self, status: str, reason: str | None = None, n: int = 1) -> None:
        if n:
            self.counts[f"{status}:{reason}" if reason else status] += n

    def merge(self, other: "Tally | Mapping[str, int]") -> "Tally":
        self.counts.update(other.counts if isinstance(other, Tally) else other)
        return self

    def total(self, status: str) -> int:
        return sum(n for k, n in self.counts.items() if k == status or k.startswith(status + ":"))

    def reasons(self, status: str) -> dict[str, int]:
        prefix = status + ":"
        return {k[len(prefix):]: n for k, n in sorted(self.counts.items()) if k.startswith(prefix)}

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def enqueue_attempts(conn: Connection, planned: Iterable[PlannedAttempt]) -> tuple[Tally, list[int]]:
    """Write the attempts whose keys are free; store the message of each new queued one.

    Returns what was newly logged, by status and reason, plus ``already_recorded``
    for keys an earlier run (or try) had taken, and the ids of the new queued
    attempts (what delivery takes next). Call inside one transaction so a chunk is
    logged whole or not at all.
    """
    planned = list(planned)
    tally = Tally()
    queued: list[int] = []
    if not planned:
        return tally, queued
    table = ContactAttempt.__table__
    created = insert_ignoring_conflicts(conn, table, [p.row for p in planned], key="idempotency_key")
    new_ids = {key: attempt_id for attempt_id, key in created}
    messages = []
    for p in planned:
        attempt_id = new_ids.get(p.row["idempotency_key"])
        if attempt_id is None:
            tally.add("already_recorded")
            continue
        if p.row["status"] == AttemptStatus.queued.value:
            tally.add("queued")
            queued.append(attempt_id)
        else:
            tally.add(p.row["status"], p.row.get("reason"))
        if p.row["status"] in (AttemptStatus.queued.value, AttemptStatus.deferred.value) and p.message is not None:
            messages.append({"attempt_id": attempt_id, **p.message})
    if messages:
        copy_rows(conn, RenderedMessage.__table__, messages)
    return tally, queued


def attempt_row(
    *,
    run_id: str,
    account_id: str,
    customer_id: str,
    stage: Stage | str,
    cycle: str,
    as_of: date,
    channel: str,
    status: str,
    now: datetime,
    reason: str | None = None,
    detail: str | None = None,
    template: str | None = None,
    template_version: str | None = None,
    variant: str | None = None,
    segment: str | None = None,
    experiment: str | None = None,
    tone: str | None = None,
    amount_due: Any = None,
    days_past_due: int | None = None,
    policy_trace: list[dict[str, Any]] | None = None,
    figures: str | None = None,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "account_id": account_id,
        "customer_id": customer_id,
        "stage": Stage(stage).value,
        "cycle": cycle,
        "as_of": as_of,
        "channel": channel,
        "template": template,
        "template_version": template_version,
        "variant": variant,
        "segment": segment,
        "experiment": experiment,
        "tone": tone,
        "amount_due": amount_due,
        "days_past_due": days_past_due,
        "status": status,
        "reason": reason,
        "detail": detail,
        "idempotency_key": idempotency_key(account_id, stage, cycle, channel),
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
        "provider_message_id": None,
        "delivered_by_run_id": None,
        "release_after": None,
        "outcome": None,
        "policy_trace": policy_trace,
        "figures": figures,
    }


def suppress_pending(conn: Connection, account_ids: Iterable[str], reason: str, now: datetime,
                     keep_stages: Iterable[str] = ()) -> int:
    """Stop what is queued or deferred for these accounts: something happened that makes it wrong to send.

    A payment that cures the amount due, an accepted plan, a promise to pay, an
    agency placement: the attempt is kept, suppressed with ``reason``, so the log
    shows what was not sent and why. ``keep_stages`` are left alone (a thank-you
    is not stopped by the payment it thanks for).
    """
    from sqlalchemy import update

    ids = list(dict.fromkeys(account_ids))
    if not ids:
        return 0
    a = ContactAttempt
    stmt = update(a).where(a.account_id.in_(ids), a.status.in_((AttemptStatus.queued.value,
                                                                  AttemptStatus.deferred.value)))
    kept = list(keep_stages)
    if kept:
        stmt = stmt.where(a.stage.not_in(kept))
    return conn.execute(stmt.values(status=AttemptStatus.suppressed.value, reason=reason, release_after=None,
                                    updated_at=now)).rowcount
