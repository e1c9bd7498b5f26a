"""The attempt log: every intended contact becomes exactly one ``contact_attempts`` row.

The idempotency key (account, stage, cycle, channel) is UNIQUE in the database,
so a re-run of the same day, a retried task or an overlapping run finds the key
taken and neither logs nor sends anything twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from campaigns.db.bulk import allocate_ids, copy_rows, hold_write_lock, taken_keys
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


def enqueue_attempts(conn: Connection, planned: Iterable[PlannedAttempt],
                     stores: Mapping[str, Any] | None = None) -> tuple[Tally, list[int]]:
    """Write the attempts whose keys are free, each once with what is already final about it, and each
    message once.

    An attempt cleared to go now on a channel of ``stores`` (a table of this database: the outbox, the
    worklist; ``channels.base.stored_in``) is written ``sent``, and its message is the channel's own row (the
    outbox row, the worklist item), in this same transaction: nothing is left for a deliverer to claim, re-read
    or update. An attempt for a provider stays ``queued`` (or ``deferred``) with its message in
    ``rendered_messages``, for the deliverer to claim and send.

    The free keys are looked up once and the new rows get their ids before they are written (``allocate_ids``),
    so the attempts and their messages are each one COPY (executemany on SQLite). A key taken meanwhile by a
    concurrent writer (PostgreSQL) rolls the batch back to its savepoint and the lookup is made again.

    Returns what was newly logged, by status and reason, plus ``already_recorded``
    for keys an earlier run (or try) had taken, and the ids of the new queued
    attempts (what delivery takes next). Call inside one transaction so a chunk is
    logged whole or not at all.
    """
    planned = list(planned)
    stores = stores or {}
    table = ContactAttempt.__table__
    if planned:
        hold_write_lock(conn, table)  # SQLite: no other writer between the key lookup and the write
    for _ in range(5):
        tally, queued = Tally(), []
        if not planned:
            return tally, queued
        taken = taken_keys(conn, table, "idempotency_key", [p.row["idempotency_key"] for p in planned])
        fresh = []
        for p in planned:
            if p.row["idempotency_key"] in taken:
                tally.add("already_recorded")
                continue
            taken.add(p.row["idempotency_key"])  # a key repeated in the batch: its first row
            fresh.append(p)
        if not fresh:
            return tally, queued
        rows, messages, stored = [], [], {}
        for attempt_id, p in zip(allocate_ids(conn, table, len(fresh)), fresh):
            row = {"id": attempt_id, **p.row}
            status = row["status"]
            gateway = stores.get(row["channel"]) if status == AttemptStatus.queued.value else None
            if gateway is not None and p.message is not None:
                row.update(status=AttemptStatus.sent.value, sent_at=row["created_at"],
                           provider_message_id=gateway.message_id(attempt_id), delivered_by_run_id=row["run_id"])
                stored.setdefault(gateway.table, []).append(gateway.stored_row(row, p.message, row["created_at"]))
                tally.add("sent")
            elif status == AttemptStatus.queued.value:
                tally.add("queued")
                queued.append(attempt_id)
            else:
                tally.add(status, row.get("reason"))
            if gateway is None and status in (AttemptStatus.queued.value, AttemptStatus.deferred.value) \
                    and p.message is not None:
                messages.append({"attempt_id": attempt_id, **p.message})
            rows.append(row)
        try:
            with _savepoint(conn):
                copy_rows(conn, table, rows)
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) != "23505":  # only a key taken meanwhile is looked up again
                raise
            continue
        if messages:
            copy_rows(conn, RenderedMessage.__table__, messages)
        for target, target_rows in stored.items():
            copy_rows(conn, target, target_rows)
        return tally, queued
    raise RuntimeError("the attempt log's keys kept being taken by concurrent writers; the chunk is retried whole")


@contextmanager
def _savepoint(conn: Connection):
    # SQLite: this transaction holds the database's one write lock since before its key lookup (hold_write_lock),
    # so no concurrent writer can take a key; pysqlite's savepoints need workarounds, and none is needed.
    if conn.dialect.name == "sqlite":
        yield
        return
    with conn.begin_nested():
        yield


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
