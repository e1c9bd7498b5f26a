"""Plan offers and plans, in the database: stored offers, acceptance, instalments, completion and breaking.

A plan is one ``repayment_plans`` row that moves through these states::

    offered ──accept──> accepted ──nothing owed──> completed ──its payment reversed──> accepted
       │                    └──instalment unpaid N days──> broken
       ├──expiry──> expired
       └──a newer offer──> superseded

Any other move is refused with a one-line ``PlanError``. What its instalments got, and whether it is
completed, is the ledger's to say (``campaigns.money.ledger``): payments recorded after the acceptance pay
them oldest first; a lower balance waives them from the end; a higher one adds an instalment. While a
plan is ``accepted`` the account carries its next unpaid instalment (``plan_due_date``,
``plan_amount_due``): the ladder then only reminds it of that instalment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection

from campaigns.attempts.log import suppress_pending
from campaigns.db.bulk import insert_ignoring_conflicts
from campaigns.db.engine import in_batches
from campaigns.db.models import Account, AgentWorklistItem, PlanInstalment, RepaymentPlan
from campaigns.money import ledger
from campaigns.money.currency import in_currency
from campaigns.money.derivation import FEE
from campaigns.money.links import LinkError, PlanLink, parse_token, verify
from campaigns.ladder.config import PlanRules
from campaigns.money.plans import instalment_dates, plan_fee, split_evenly

TRANSITIONS: dict[str, set[str]] = {
    "offered": {"accepted", "expired", "superseded"},
    "accepted": {"completed", "broken"},
    "completed": {"accepted"},  # reopened: a payment that paid it was reversed
    "broken": set(),
    "expired": set(),
    "superseded": set(),
}


class PlanError(ValueError):
    """A plan request that cannot be done, in one line a person can act on (ids only, no personal data)."""


def check_transition(current: str, wanted: str) -> None:
    """Refuse a move the state machine does not allow."""
    if current not in TRANSITIONS:
        raise PlanError(f"unknown plan status {current!r}")
    if wanted not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing: it is final"
        raise PlanError(f"a plan that is {current} cannot become {wanted} (from {current}: {allowed})")


def store_offers(conn: Connection, offers: list[dict[str, Any]], as_of: date) -> int:
    """Keep each offer a message makes (once per account and day), and retire the account's older open offers."""
    if not offers:
        return 0
    unique = list({o["offer_key"]: o for o in offers}.values())
    created = insert_ignoring_conflicts(conn, RepaymentPlan.__table__, unique, key="offer_key")
    accounts = [o["account_id"] for o in unique]
    for part in in_batches(accounts):
        conn.execute(update(RepaymentPlan).where(
            RepaymentPlan.account_id.in_(part), RepaymentPlan.status == "offered",
            RepaymentPlan.offered_on < as_of,
        ).values(status="superseded", closed_at=unique[0]["created_at"], close_reason="a newer offer"))
    return len(created)


@dataclass(frozen=True)
class AcceptedPlan:
    plan_id: int
    account_id: str
    option: int
    currency: str
    schedule: list[tuple[date, Decimal]]
    fee: Decimal

    @property
    def total(self) -> Decimal:
        return sum((amount for _, amount in self.schedule), Decimal(0))


def accept_offer(engine: Engine, account_id: str, option: int, now: datetime, today: date, rules: PlanRules, *,
                 start: date | None = None, via: str = "cli", link: PlanLink | None = None,
                 secret: bytes = b"", zone: ZoneInfo | None = None) -> AcceptedPlan:
    """Turn an offer into an accepted plan with a dated schedule; the account leaves the dunning ladder.

    The schedule splits the balance as it stands now (a payment since the offer
    lowers it) into the chosen option's count, from ``start`` or the offer's first
    date (or, if that has passed, ``first_due_in_days`` from today); ``start`` is
    at most ``max_start_days`` after the offer. A fee, if the rules set one, is a
    ledger entry of its own. A link is checked against the offer it names:
    signature, expiry, and that the offer is still open (a used or superseded
    link is refused).
    """
    from sqlalchemy.orm import Session

    zone = zone or ZoneInfo("UTC")
    with Session(engine) as session, session.begin():
        conn = session.connection()
        ledger.lock_accounts(conn, [account_id])
        offer = _offer_for_session(session, account_id, link.offer_key if link else None)
        if link is not None:
            verify(secret, link, offer.expires_at, now)
        elif offer.expires_at is not None and now >= offer.expires_at:
            raise PlanError(f"the offer of {offer.offered_on} to account {account_id} expired on "
                            f"{offer.expires_at:%Y-%m-%d %H:%M} UTC")
        if offer.status != "offered":
            raise PlanError(f"the offer of {offer.offered_on} to account {account_id} is {offer.status}: "
                            "it cannot be accepted any more")
        options = offer.options or []
        if not 1 <= option <= len(options):
            raise PlanError(f"the offer has option(s) 1-{len(options)}; there is no option {option}")
        account = conn.execute(select(Account.status, Account.balance, Account.currency, Account.plan_due_date,
                                      Account.ledger_head).where(Account.id == account_id)).first()
        if account is None:
            raise PlanError(f"no account {account_id!r}")
        if account.status != "open" or account.balance <= 0:
            raise PlanError(f"account {account_id} is {account.status} with nothing owed: no plan is needed")
        if account.plan_due_date is not None:
            raise PlanError(f"account {account_id} is already in a plan")
        chosen = options[option - 1]
        count = int(chosen["count"])
        first = date.fromisoformat(chosen["instalments"][0]["due"])
        latest = (offer.offered_on or today) + timedelta(days=rules.max_start_days)
        if start is None:
            start = first if first >= today else today + timedelta(days=rules.first_due_in_days)
        elif start < today:
            raise PlanError(f"a plan cannot start in the past ({start}; today is {today})")
        elif start > latest:
            raise PlanError(f"a plan starts at most {rules.max_start_days} days after its offer of "
                            f"{offer.offered_on}: {latest} at the latest, not {start} (plans.max_start_days)")
        balance = in_currency(account.balance, account.currency)
        fee = plan_fee(rules.fee, balance, account.currency)
        amounts = split_evenly(balance + fee, count, account.currency)
        schedule = list(zip(instalment_dates(start, count, rules.frequency), amounts))
        check_transition(offer.status, "accepted")
        offer.status, offer.chosen_option, offer.instalments = "accepted", option, count
        offer.total, offer.accepted_at, offer.accepted_via = balance + fee, now, via
        offer.ledger_from = account.ledger_head or 0  # payments recorded from now on pay its instalments
        offer.schedule = [{"seq": n, "due": d.isoformat(), "amount": str(a)} for n, (d, a) in
                          enumerate(schedule, start=1)]
        session.flush()
        conn.execute(insert(PlanInstalment.__table__), [
            {"plan_id": offer.id, "account_id": account_id, "seq": n, "due_date": d, "amount": a,
             "paid": Decimal(0), "paid_at": None, "waived": Decimal(0), "added_at": None, "added_by": None}
            for n, (d, a) in enumerate(schedule, start=1)])
        if fee:
            ledger.append(conn, [ledger.entry_row(FEE, f"fee|plan|{offer.id}", account_id, account.currency, now,
                                                  now, via, amount=fee, plan_id=offer.id, reason="plan_fee")])
        ledger.refresh(conn, [account_id], now, zone)
        suppress_pending(conn, [account_id], "in_plan", now, keep_stages=("thank_you",))
        conn.execute(update(AgentWorklistItem).where(AgentWorklistItem.account_id == account_id,
                                                     AgentWorklistItem.status == "open")
                     .values(status="done", outcome="plan", outcome_at=now))
        return AcceptedPlan(offer.id, account_id, option, account.currency, schedule, fee)


def _offer_for_session(session, account_id: str, key: str | None):
    p = RepaymentPlan
    stmt = select(p).where(p.account_id == account_id)
    stmt = stmt.where(p.offer_key == key) if key is not None else \
        stmt.where(p.status == "offered").order_by(p.offered_on.desc())
    offer = session.execute(stmt.limit(1).with_for_update()).scalars().first()
    if offer is None:
        if key is None and session.execute(select(p.id).where(p.account_id == account_id,
                                                              p.status == "accepted")).first():
            raise PlanError(f"account {account_id} is already in a plan (campaigns plans show {account_id})")
        if key is None and session.get(Account, account_id) is None:
            raise PlanError(f"no such account: {account_id}")
        if key is None:
            raise PlanError(f"account {account_id} has no open plan offer (plans are offered by the plan_offer stage)")
        raise LinkError("the link's offer does not exist")
    return offer


def accept_link(engine: Engine, token: str, now: datetime, today: date, rules: PlanRules,
                secret: bytes, zone: ZoneInfo | None = None) -> AcceptedPlan:
    """Accept the option a signed link names (``LinkError`` for a forged, expired or reused link)."""
    link = parse_token(token)
    if link.option == 0:
        raise LinkError("this link shows the options; choose one to accept it", 422)
    try:
        return accept_offer(engine, link.account_id, link.option, now, today, rules, via="link", link=link,
                            secret=secret, zone=zone)
    except PlanError as exc:
        raise LinkError(str(exc), 409 if "cannot be accepted" in str(exc) or "already in a plan" in str(exc)
                        else 422) from None


def offer_for_link(engine: Engine, token: str, now: datetime, secret: bytes,
                   rules: PlanRules | None = None) -> dict[str, Any]:
    """What a link's page shows (after the same checks as accepting): the offer's options and its state.

    The amounts are the ledger's now: a payment since the offer lowered the balance, and accepting splits
    what is owed when it is accepted, so the page shows that split (the offer's counts and dates), not the
    one the message showed. With nothing owed any more there is nothing to accept.
    """
    link = parse_token(token)
    with engine.connect() as conn:
        offer = conn.execute(select(RepaymentPlan).where(RepaymentPlan.offer_key == link.offer_key)).first()
        account = conn.execute(select(Account.balance, Account.status).where(Account.id == link.account_id)).first()
    if offer is None or account is None:
        raise LinkError("the link's signature is not valid")  # indistinguishable from a forgery, on purpose
    verify(secret, link, offer.expires_at, now)
    if offer.status != "offered":
        raise LinkError(f"this offer is {offer.status}: it cannot be accepted any more", 409)
    if account.status != "open" or account.balance <= 0:
        raise LinkError("Nothing is owed on this account any more, so there is no plan to choose. Thank you", 409)
    options = offer.options or []
    balance = in_currency(account.balance, offer.currency)
    if rules is not None and options and balance != in_currency(offer.total, offer.currency):
        total = balance + plan_fee(rules.fee, balance, offer.currency)
        options = [{**o, "total": str(total), "instalments": [
            {"due": i["due"], "amount": str(a)}
            for i, a in zip(o["instalments"], split_evenly(total, int(o["count"]), offer.currency))]}
            for o in options]
    return {"account_id": link.account_id, "currency": offer.currency, "options": options,
            "option": link.option, "expires_at": offer.expires_at}


def plan_chosen_with(engine: Engine, token: str, secret: bytes) -> AcceptedPlan | None:
    """The plan a link's offer became when the customer chose it with this link's option (or this is the offer's
    page link): what to show on a double click or an email opened again, instead of an error. None otherwise,
    and for a link that is not genuinely ours."""
    try:
        link = parse_token(token)
    except LinkError:
        return None
    with engine.connect() as conn:
        plan = conn.execute(select(RepaymentPlan).where(RepaymentPlan.offer_key == link.offer_key)).first()
        if (plan is None or plan.status not in ("accepted", "completed") or plan.accepted_at is None
                or link.option not in (0, plan.chosen_option)):
            return None
        try:
            verify(secret, link, plan.expires_at, plan.accepted_at)  # its signature; it was valid when chosen
        except LinkError:
            return None
        schedule = [(r.due_date, r.amount) for r in conn.execute(
            select(PlanInstalment.due_date, PlanInstalment.amount).where(PlanInstalment.plan_id == plan.id)
            .order_by(PlanInstalment.seq))]
    return AcceptedPlan(plan.id, link.account_id, plan.chosen_option, plan.currency, schedule, Decimal(0))


def close_plan(conn: Connection, plan_id: int, status: str, now: datetime, why: str) -> None:
    current = conn.execute(select(RepaymentPlan.status).where(RepaymentPlan.id == plan_id)).scalar_one()
    check_transition(current, status)
    conn.execute(update(RepaymentPlan).where(RepaymentPlan.id == plan_id)
                 .values(status=status, closed_at=now, close_reason=why))


def expire_offers(conn: Connection, now: datetime) -> int:
    return conn.execute(update(RepaymentPlan).where(RepaymentPlan.status == "offered",
                                                    RepaymentPlan.expires_at <= now)
                        .values(status="expired", closed_at=now, close_reason="not accepted in time")).rowcount


def break_overdue_plans(conn: Connection, as_of: date, now: datetime, rules: PlanRules,
                        zone: ZoneInfo | None = None) -> int:
    """Plans with an instalment unpaid ``break_after_days`` after its date are broken; their accounts go back
    into the ladder at the stage their age calls for."""
    i, p = PlanInstalment, RepaymentPlan
    late = conn.execute(
        select(p.id, p.account_id, i.seq).join(i, i.plan_id == p.id)
        .where(p.status == "accepted", i.paid + i.waived < i.amount,
               i.due_date < as_of - timedelta(days=rules.break_after_days))
        .order_by(p.id, i.seq)
    ).all()
    broken: dict[int, tuple[str, int]] = {}
    for plan_id, account_id, seq in late:
        broken.setdefault(plan_id, (account_id, seq))
    accounts = sorted({account_id for account_id, _ in broken.values()})
    ledger.lock_accounts(conn, accounts)
    for plan_id, (account_id, seq) in broken.items():
        close_plan(conn, plan_id, "broken", now, f"instalment {seq} unpaid {rules.break_after_days} days after its date")
    ledger.refresh(conn, accounts, now, zone or ZoneInfo("UTC"))
    ledger.reopen_worklist(conn, accounts, "plan", "broken_plan", now)
    return len(broken)


def plan_history(conn: Connection, account_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Accepted plans per account, newest first, as a worklist item shows them (no personal data)."""
    p = RepaymentPlan
    history: dict[str, list[dict[str, Any]]] = {}
    for part in in_batches(account_ids):
        rows = conn.execute(select(p.account_id, p.status, p.instalments, p.total, p.currency, p.accepted_at,
                                   p.close_reason)
                            .where(p.account_id.in_(part), p.accepted_at.is_not(None))
                            .order_by(p.account_id, p.accepted_at.desc())).all()
        for r in rows:
            history.setdefault(r.account_id, []).append({
                "status": r.status, "instalments": r.instalments, "total": str(in_currency(r.total, r.currency)),
                "accepted": r.accepted_at.date().isoformat(), **({"why": r.close_reason} if r.close_reason else {}),
            })
    return history


def plan_schedule(engine: Engine, account_id: str) -> tuple[Any, list[Any]]:
    """The account's latest plan (accepted or closed after acceptance, else its latest offer) and its instalments."""
    p, i = RepaymentPlan, PlanInstalment
    with engine.connect() as conn:
        if conn.execute(select(Account.id).where(Account.id == account_id)).scalar() is None:
            raise PlanError(f"no account {account_id!r}")
        plan = conn.execute(select(p).where(p.account_id == account_id)
                            .order_by(p.accepted_at.is_(None), p.accepted_at.desc(), p.offered_on.desc(), p.id.desc())
                            .limit(1)).first()
        if plan is None:
            raise PlanError(f"account {account_id} has no plan and no offer")
        rows = conn.execute(select(i).where(i.plan_id == plan.id).order_by(i.seq)).all()
    return plan, rows
