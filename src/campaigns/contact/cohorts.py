"""Who a stage contacts on a day: SQLAlchemy Core queries, read in keyset chunks.

A cohort is planned as id ranges (``ChunkBounds``) by scanning ids only, then each
range is read as one DataFrame. Chunks are independent, so they can be processed
in any order, retried alone, or spread over workers; memory stays flat however
large the portfolio is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import pandas as pd
from sqlalchemy import (Select, String, all_, and_, bindparam, case, distinct, exists, func, literal, literal_column,
                        or_, select, true)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from campaigns.db.models import (
    Account,
    AgentWorklistItem,
    AttemptStatus,
    ContactAttempt,
    Customer,
    Dispute,
    Stage,
)
from campaigns.ladder.config import StageRule
from campaigns.money.promises import open_promise_exists

# Statuses that start a stage's every_days wait: we reached out (or may have), or the account was assigned
# to the holdout. The holdout keeps the same cadence as the contacted, so both arms are assigned at
# comparable times (a holdout row every day against a message every 3 days would skew any comparison).
CONTACT_STATUSES = (
    AttemptStatus.queued.value,
    AttemptStatus.deferred.value,
    AttemptStatus.sending.value,
    AttemptStatus.sent.value,
    AttemptStatus.unknown.value,
    AttemptStatus.delivered.value,
    AttemptStatus.holdout.value,
)

COHORT_COLUMNS = [
    "account_id", "customer_id", "currency", "balance", "amount_due", "due_date", "product", "status",
    "cease_contact", "time_barred", "name", "email", "phone", "phone_zones", "locale", "timezone", "country",
    "email_opt_out", "sms_opt_out", "sms_consent", "email_is_employer", "email_employer_consent",
    "vulnerable", "email_invalid", "push_enabled", "push_opt_out", "has_open_dispute", "in_plan", "after_payment",
    "credit", "account_created_at", "figures", "paid_off", "days_past_due",
]
FLAGS = ("cease_contact", "time_barred", "email_opt_out", "sms_opt_out", "sms_consent", "email_is_employer",
         "email_employer_consent", "vulnerable", "email_invalid", "push_enabled", "push_opt_out", "has_open_dispute",
         "in_plan", "after_payment", "paid_off")

# An account in an accepted plan is reminded of its next instalment (its date and what is left of it),
# not of the original due date: these are what the ladder sees as "due".
EFFECTIVE_DUE_DATE = func.coalesce(Account.plan_due_date, Account.due_date)
EFFECTIVE_AMOUNT_DUE = case((Account.plan_due_date.is_not(None), Account.plan_amount_due), else_=Account.amount_due)


@dataclass(frozen=True)
class ChunkBounds:
    """Accounts with ``after < id <= upto`` (``after`` None: from the start; ``upto`` None: to the end)."""

    after: str | None
    upto: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {"after": self.after, "upto": self.upto}

    def __str__(self) -> str:  # in logs: "accounts up to A0002999", "accounts after A0001000 up to A0002999"
        if self.upto is None:
            return f"accounts after {self.after}" if self.after is not None else "all accounts"
        return f"accounts {f'after {self.after} ' if self.after is not None else ''}up to {self.upto}"


def reminds_instalments(rule: StageRule) -> bool:
    """The pre-due reminder also reminds accounts in a plan of each instalment (same rules, same caps)."""
    return rule.stage is Stage.pre_due


def stage_days_condition(rule: StageRule, as_of: date):
    """The stage's days-past-due selector on ``as_of`` (on the instalment's date for a stage that reminds
    instalments)."""
    due = EFFECTIVE_DUE_DATE if reminds_instalments(rule) else Account.due_date
    if rule.on_days_past_due is not None:
        return due.in_([as_of - timedelta(days=d) for d in rule.on_days_past_due])
    rng = rule.days_past_due
    assert rng is not None
    clause = due <= as_of - timedelta(days=rng.min)
    if rng.max is not None:
        clause = and_(clause, due >= as_of - timedelta(days=rng.max))
    return clause


def _thank_you_filter(rule: StageRule, as_of: date, bounds: ChunkBounds | None = None):
    """Accounts paid off in the last ``paid_in_full_within_days`` days, never thanked for this payoff.

    A payoff is told from the next by when it was recorded (``payoff_seen_at``: a reversal and a new
    payoff make a new one; a late payment re-dating the same payoff does not). Same-day attempts do not
    count (a re-run must see the same cohort); any earlier thank-you attempt made since the payoff does,
    whatever became of it (one each), except one stopped because the figures it stated had changed
    (``figures_changed``): it told the customer nothing. Paid while placed with the agency (``closed``):
    only with ``include_placed``.
    """
    assert rule.paid_in_full_within_days is not None
    since = datetime.combine(as_of - timedelta(days=rule.paid_in_full_within_days), time.min, timezone.utc)
    until = datetime.combine(as_of + timedelta(days=1), time.min, timezone.utc)
    attempt = ContactAttempt
    paid = Account.status == "paid"
    if rule.include_placed:
        paid = or_(paid, and_(Account.status == "closed", Account.placed_at.is_not(None)))
    return and_(
        paid,
        Account.paid_off_at >= since,
        Account.paid_off_at < until,
        ~exists().where(attempt.account_id == Account.id, in_bounds(attempt.account_id, bounds),
                        attempt.as_of == as_of, attempt.stage != rule.stage.value),
        ~exists().where(attempt.account_id == Account.id, in_bounds(attempt.account_id, bounds),
                        attempt.stage == rule.stage.value,
                        attempt.as_of < as_of, attempt.created_at >= Account.payoff_seen_at,
                        ~and_(attempt.status == AttemptStatus.suppressed.value, attempt.reason == "figures_changed")),
    )


def in_bounds(column, bounds: ChunkBounds | None):
    """``column`` (an account id) within ``bounds``; no condition without bounds."""
    if bounds is None:
        return true()
    clauses = [column > bounds.after] if bounds.after is not None else []
    if bounds.upto is not None:
        clauses.append(column <= bounds.upto)
    return and_(*clauses) if clauses else true()


def cohort_filter(rule: StageRule, as_of: date, bounds: ChunkBounds | None = None):
    """The WHERE clause of a stage's cohort on ``as_of`` (for a chunk: within ``bounds``).

    Paid or closed accounts and accounts owing nothing never enter a cohort. An
    account already handled by another stage today, one handed to agents, or one
    this stage reached within ``every_days`` is left out. Same-day attempts of the
    same stage are *not* left out here: a re-run must see the same cohort so that its
    idempotency keys collide instead of silently shrinking the run. (A chunk of a
    re-run reads only the accounts not logged yet, ``select_cohort(unlogged_only=True)``,
    and counts the others as already recorded: decided once, never silently dropped.)

    An open promise to pay keeps the account out of every stage; a plan in good
    standing keeps it out of all but the instalment reminders (pre_due). Placed
    accounts are not ``open``: an agency has them.
    """
    if rule.after_payment:
        return _thank_you_filter(rule, as_of, bounds)
    attempt = ContactAttempt
    # Each subquery on the contact log is bounded to the chunk's accounts as well as joined to them: a planner
    # whose statistics predate the run's million new rows (an empty table, to it) may scan the subquery once and
    # join in memory; bounded, that costs the chunk's rows, not the whole day's (90 s a chunk at 1,000,000).
    mine = in_bounds(attempt.account_id, bounds)
    other_stage_today = exists().where(
        attempt.account_id == Account.id, mine, attempt.as_of == as_of, attempt.stage != rule.stage.value
    )
    handed_to_agents = exists().where(
        AgentWorklistItem.account_id == Account.id, in_bounds(AgentWorklistItem.account_id, bounds),
        AgentWorklistItem.status == "open"
    )
    instalments = reminds_instalments(rule)
    clauses = [
        Account.status == "open",
        (EFFECTIVE_AMOUNT_DUE if instalments else Account.amount_due) > 0,
        stage_days_condition(rule, as_of),
        ~other_stage_today,
        ~open_promise_exists(),
    ]
    if not instalments:
        clauses.append(Account.plan_due_date.is_(None))
    if rule.stage.value != "escalation":
        clauses.append(~handed_to_agents)
    if rule.every_days:
        clauses.append(
            ~exists().where(
                attempt.account_id == Account.id,
                mine,
                attempt.stage == rule.stage.value,
                attempt.as_of > as_of - timedelta(days=rule.every_days),
                attempt.as_of < as_of,
                attempt.status.in_(CONTACT_STATUSES),
            )
        )
    if rule.once_per_due_date:
        clauses.append(
            ~exists().where(
                attempt.account_id == Account.id,
                mine,
                attempt.stage == rule.stage.value,
                attempt.as_of >= Account.due_date,
                attempt.as_of < as_of,
            )
        )
    return and_(*clauses)


def _bounded(stmt: Select, bounds: ChunkBounds) -> Select:
    return stmt.where(in_bounds(Account.id, bounds))


def _boundaries(conn: Connection, ids: Select, chunk_size: int) -> list[ChunkBounds]:
    """Consecutive id ranges of at most ``chunk_size`` of ``ids`` (a one-column SELECT of distinct ids), found
    in one ordered pass in the database: every ``chunk_size``-th id, and the last one, closes a range.

    (A keyset page per chunk re-ran the cohort's filter over the rest of the table for each page, and
    without fresh statistics PostgreSQL did so with a full scan: 50 s to plan a million accounts.)
    """
    inner = ids.subquery()
    key = inner.c[0]
    numbered = select(key.label("id"), func.row_number().over(order_by=key).label("n"),
                      func.count().over().label("total")).subquery()
    closing = conn.execute(
        select(numbered.c.id).where((numbered.c.n % chunk_size == 0) | (numbered.c.n == numbered.c.total))
        .order_by(numbered.c.id)
    ).scalars().all()
    chunks: list[ChunkBounds] = []
    after: str | None = None
    for upto in closing:
        chunks.append(ChunkBounds(after=after, upto=upto))
        after = upto
    return chunks


def plan_chunks(conn: Connection, rule: StageRule, as_of: date, chunk_size: int,
                unlogged_only: bool = False) -> list[ChunkBounds]:
    """Split the cohort into id ranges of at most ``chunk_size`` accounts; with ``unlogged_only``, of at most
    ``chunk_size`` accounts this stage has not logged on ``as_of`` yet (a re-run of the day plans only what is
    left to decide: none at all when the day is done; what lies beyond the last range is ``ChunkBounds(last.upto, None)``)."""
    ids = select(Account.id).where(cohort_filter(rule, as_of))
    if unlogged_only:
        ids = ids.where(~_logged_by_stage(rule.stage, as_of))
    return _boundaries(conn, ids, chunk_size)


def _logged_by_stage(stage: Stage, as_of: date, bounds: ChunkBounds | None = None):
    a = ContactAttempt
    return exists().where(a.account_id == Account.id, in_bounds(a.account_id, bounds), a.stage == stage.value,
                          a.as_of == as_of)


def select_cohort(conn: Connection, rule: StageRule, as_of: date, bounds: ChunkBounds,
                  accounts: Sequence[str] | None = None, unlogged_only: bool = False) -> pd.DataFrame:
    """The cohort members in ``bounds`` (and among ``accounts``, if given), one row per account; with
    ``unlogged_only``, only those this stage has not logged on ``as_of`` yet (``logged_today`` counts the others)."""
    stmt = cohort_statement(rule, as_of, bounds)
    if accounts is not None:
        stmt = stmt.where(Account.id.in_(list(accounts)))
    if unlogged_only:
        stmt = stmt.where(~_logged_by_stage(rule.stage, as_of, bounds))
    return cohort_frame(conn.execute(_bounded(stmt, bounds)).all(), as_of)


def logged_today(conn: Connection, stage: Stage, as_of: date, bounds: ChunkBounds,
                 besides: Sequence[str] = ()) -> tuple[int, int]:
    """(attempts, accounts) this stage logged on ``as_of`` in ``bounds``, but for the accounts ``besides``: a
    chunk's share of an earlier run of the same day, decided then whole (a chunk's attempts are one transaction),
    and not decided again. Counted in the database: a re-run's chunk reads two numbers, not its accounts."""
    a = ContactAttempt
    stmt = select(func.count(), func.count(distinct(a.account_id))).where(
        a.stage == stage.value, a.as_of == as_of, in_bounds(a.account_id, bounds))
    besides = list(besides)
    if besides:
        if conn.dialect.name == "postgresql":  # one array parameter, however many
            stmt = stmt.where(a.account_id != all_(bindparam("besides", besides, type_=postgresql.ARRAY(String))))
        else:  # one JSON parameter (SQLite counts bound parameters)
            stmt = stmt.where(a.account_id.not_in(select(literal_column("value")).select_from(
                func.json_each(json.dumps(besides)))))
    attempts, accounts = conn.execute(stmt).one()
    return int(attempts), int(accounts)


def cohort_statement(rule: StageRule, as_of: date, bounds: ChunkBounds | None = None) -> Select:
    """The SELECT of the stage's cohort on ``as_of``, in account order, one row per account (``COHORT_COLUMNS``
    but ``days_past_due``)."""
    open_dispute = (
        exists()
        .where(Dispute.account_id == Account.id, Dispute.resolved_at.is_(None))
        .correlate(Account)
    )
    instalments = reminds_instalments(rule)
    return (
        select(
            Account.id.label("account_id"),
            Account.customer_id,
            Account.currency,
            Account.balance,
            (EFFECTIVE_AMOUNT_DUE if instalments else Account.amount_due).label("amount_due"),
            (EFFECTIVE_DUE_DATE if instalments else Account.due_date).label("due_date"),
            Account.product,
            Account.status,
            Account.cease_contact,
            Account.time_barred,
            Customer.name,
            Customer.email,
            Customer.phone,
            Customer.phone_zones,
            Customer.locale,
            Customer.timezone,
            Customer.country,
            Customer.email_opt_out,
            Customer.sms_opt_out,
            Customer.sms_consent,
            Customer.email_is_employer,
            Customer.email_employer_consent,
            Customer.vulnerable,
            Customer.email_invalid,
            Customer.push_enabled,
            Customer.push_opt_out,
            open_dispute.label("has_open_dispute"),
            Account.plan_due_date.is_not(None).label("in_plan"),
            literal(rule.after_payment).label("after_payment"),
            Account.credit,
            Account.created_at.label("account_created_at"),  # the segments' tenure
            Account.figures,  # what the message states, fingerprinted: checked again at release
            Account.paid_off_at.is_not(None).label("paid_off"),
        )
        .join(Customer, Customer.id == Account.customer_id)
        .where(cohort_filter(rule, as_of, bounds))
        .order_by(Account.id)
    )


def cohort_frame(rows: Sequence[Sequence], as_of: date) -> pd.DataFrame:
    """Rows of ``cohort_statement`` as the cohort DataFrame, with ``days_past_due`` on ``as_of``.

    Built a column at a time from arrays (flags as booleans, None as False): pandas building the frame from rows,
    then mending each flag column, cost twice as much as reading the rows."""
    count = len(rows)
    columns = list(zip(*rows)) if count else [()] * (len(COHORT_COLUMNS) - 1)
    data = {}
    for name, values in zip(COHORT_COLUMNS, columns):
        data[name] = np.fromiter(map(bool, values), dtype=bool, count=count) if name in FLAGS \
            else np.fromiter(values, dtype=object, count=count)
    data["days_past_due"] = np.fromiter(((as_of - due).days for due in columns[COHORT_COLUMNS.index("due_date")]),
                                        dtype=np.int64, count=count)
    return pd.DataFrame(data, columns=COHORT_COLUMNS)


def due_condition(now, include_queued: bool = True, queued_before=None):
    """Attempts to decide now: queued ones (all, or only those decided before ``queued_before``,
    i.e. left behind by a run that stopped), and deferred ones whose release time has come."""
    a = ContactAttempt
    due = (a.status == AttemptStatus.deferred.value) & (a.release_after <= now)
    if include_queued:
        return (a.status == AttemptStatus.queued.value) | due
    if queued_before is not None:
        return ((a.status == AttemptStatus.queued.value) & (a.created_at <= queued_before)) | due
    return due


def due_ids(conn: Connection, now, *, stage: str | None = None, as_of: date | None = None,
            bounds: ChunkBounds | None = None, limit: int | None = None, include_queued: bool = True,
            queued_before=None) -> list[int]:
    """Ids of the attempts to decide now (``due_condition``), of ``stage`` on ``as_of`` within ``bounds`` when
    given, in id order (found through the partial index of rows on their way, whatever the size of the log)."""
    a = ContactAttempt
    stmt = select(a.id).where(due_condition(now, include_queued, queued_before), in_bounds(a.account_id, bounds))
    if stage is not None:
        stmt = stmt.where(a.stage == stage)
    if as_of is not None:
        stmt = stmt.where(a.as_of == as_of)
    return list(conn.execute(stmt.order_by(a.id).limit(limit)).scalars())


def plan_due_chunks(conn: Connection, now, chunk_size: int, queued_before=None) -> list[ChunkBounds]:
    """Account-id ranges of attempts due for the dispatcher (``due_condition`` without fresh queued ones)."""
    a = ContactAttempt
    due = select(a.account_id).where(due_condition(now, include_queued=False, queued_before=queued_before)).distinct()
    return _boundaries(conn, due, chunk_size)


def iter_cohort(conn: Connection, rule: StageRule, as_of: date, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Every cohort chunk in order (convenience for previews and tests)."""
    for bounds in plan_chunks(conn, rule, as_of, chunk_size):
        yield select_cohort(conn, rule, as_of, bounds)


__all__ = ["ChunkBounds", "cohort_filter", "cohort_frame", "cohort_statement", "due_condition", "iter_cohort", "stage_days_condition", "plan_chunks", "plan_due_chunks", "select_cohort"]
