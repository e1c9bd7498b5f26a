"""The agents' worklist: who to call first, what was tried, what the call gave, and the export agents open.

Priority is a score out of about 100, highest first, from what the item knows:

======================  ======================================================
balance                 up to 40: its rank among open items of its currency
days past due           up to 30: linear up to 180 days
broken plans, promises  10 each, up to 20: they said yes and could not keep it
never reached           10 when no message was delivered or sent
agents' no-answers      minus 5 each, down to minus 15: try the others first
risk (when a model is   up to 10: 10 × (1 − the chance of paying on its own),
ready)                  from the latest ``train_risk_model`` version
the customer asked      plus 100 for a reply (``replied``: they wrote to us and
                        wait for a person), plus 50 for a call back in the
                        window they chose (``asked_for_call``)
======================  ======================================================

A call back is on the list only inside the window the customer chose (their own
time, from their page), and nowhere else; ``asked`` says what they asked for
(the reply's text, or the window in their zone) for the agent who answers.

With no ready risk model (too little history), the risk line is left out and
``pay_chance`` is empty: the rules above decide.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, or_, select, update

from campaigns.channels.agent import describe_tried
from campaigns.customers.calls import log_call
from campaigns.customers.preferences import open_dispute
from campaigns.db.engine import in_batches
from campaigns.db.models import Account, AgentWorklistItem, Customer, CustomerAction
from campaigns.files import open_private
from campaigns.money.currency import in_currency
from campaigns.money.offers import plan_history
from campaigns.money.promises import promise_history, record_promise
from campaigns.money.spreadsheet import neutralise_frame
from campaigns.policy import PolicyConfig

# What an agent's outcome means for the call caps (calls module outcomes).
OUTCOMES = {"reached": "connected", "no_answer": "no_answer", "promise": "connected", "dispute": "connected",
            "wrong_number": "wrong_number", "refused": "connected", "paid": "connected"}
EXPORT_COLUMNS = ["priority", "account_id", "reason", "asked", "days_past_due", "amount_due", "balance", "currency",
                  "name", "phone", "timezone", "locale", "tried", "plans", "promises", "last_outcome", "pay_chance",
                  "pay_reasons", "item_id"]
ASKED_FIRST = {"replied": 100, "asked_for_call": 50}


class WorklistError(ValueError):
    pass


def prioritise(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``priority`` (see the module's table) and sort highest first; ties by days past due, then id."""
    if frame.empty:
        return frame.assign(priority=pd.Series(dtype=float))
    balance = pd.to_numeric(frame["balance"].astype(float), errors="coerce").fillna(0)
    rank = balance.groupby(frame["currency"]).rank(pct=True)
    days = frame["days_past_due"].clip(lower=0, upper=180) / 180
    broken = (frame["broken_plans"] + frame["broken_promises"]).clip(upper=2) * 10
    unreached = (~frame["reached"]).astype(int) * 10
    no_answers = -(frame["no_answers"].clip(upper=3) * 5)
    risk = 0
    if "pay_chance" in frame.columns:
        risk = (10 * (1 - pd.to_numeric(frame["pay_chance"], errors="coerce"))).fillna(0)
    asked = frame["reason"].map(ASKED_FIRST).fillna(0) if "reason" in frame.columns else 0
    out = frame.assign(priority=(40 * rank + 30 * days + broken + unreached + no_answers + risk + asked).round(1))
    return out.sort_values(["priority", "days_past_due", "account_id"], ascending=[False, False, True],
                           ignore_index=True)


def _reached(tried: dict) -> bool:
    return any(str(r.get("outcome", "")).startswith(("sent", "delivered")) for r in (tried or {}).get("recent", []))


def open_worklist(engine: Engine, risk: dict | None = None, rules=None, now: datetime | None = None) -> pd.DataFrame:
    """Open items with what agents need, prioritised (``EXPORT_COLUMNS`` plus the scoring inputs); with a ready
    risk model (``risk``, and the review ``rules`` for currencies), each item's chance of paying and why."""
    w, a, c = AgentWorklistItem, Account, Customer
    moment = now or datetime.now().astimezone()
    stmt = (select(w.id.label("item_id"), w.account_id, w.reason, w.days_past_due, a.amount_due, a.balance, a.currency,
                   w.tried, w.outcome.label("last_outcome"), c.name, c.phone, c.timezone, c.locale, w.call_from,
                   w.call_until, CustomerAction.note.label("said"), CustomerAction.code.label("said_kind"),
                   CustomerAction.detail.label("asked_detail"))
            .join(a, a.id == w.account_id).join(c, c.id == a.customer_id)
            .outerjoin(CustomerAction, CustomerAction.id == w.action_id)
            # A call back is for the window the customer chose, and nowhere else.
            .where(w.status == "open", or_(w.call_from.is_(None), and_(w.call_from <= moment, w.call_until > moment)))
            .order_by(w.id))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).mappings().all(),
                             columns=["item_id", "account_id", "reason", "days_past_due", "amount_due", "balance",
                                      "currency", "tried", "last_outcome", "name", "phone", "timezone", "locale",
                                      "call_from", "call_until", "said", "said_kind", "asked_detail"])
        frame["asked"] = [_asked(r) for r in frame.itertuples()]
        frame = frame.drop(columns=["call_from", "call_until", "said", "said_kind", "asked_detail"])
        ids = frame["account_id"].tolist()
        plans, promises = plan_history(conn, ids), promise_history(conn, ids)
        no_answers = _no_answers(conn, ids)
        frame["pay_chance"], frame["pay_reasons"] = float("nan"), ""
        if risk is not None and rules is not None and not frame.empty:
            from campaigns.risk.model import account_features, score

            scored = score(risk, account_features(conn, frame, rules, moment, "escalation"))
            frame["pay_chance"], frame["pay_reasons"] = scored["pay_chance"].round(3), scored["pay_reasons"]
    frame["broken_plans"] = [sum(p["status"] == "broken" for p in plans.get(i, [])) for i in ids]
    frame["broken_promises"] = [sum(p["status"] == "broken" for p in promises.get(i, [])) for i in ids]
    frame["reached"] = [_reached(t) for t in frame["tried"]]
    frame["no_answers"] = [no_answers.get(i, 0) for i in ids]
    frame["plans"] = [_describe(plans.get(i, []), "plan") for i in ids]
    frame["promises"] = [_describe(promises.get(i, []), "promise") for i in ids]
    frame["tried"] = frame["tried"].map(describe_tried)
    for column in ("amount_due", "balance"):
        frame[column] = [in_currency(v, c) for v, c in zip(frame[column], frame["currency"])]
    return prioritise(frame)


def _asked(item) -> str:
    """What the customer asked for, for the agent: a reply's kind and words, or the call-back window in their zone."""
    if item.reason == "replied":
        return f"{item.said_kind}: {item.said or ''}".strip()
    if item.reason == "asked_for_call" and item.call_until is not None:
        zone = ZoneInfo((item.asked_detail or {}).get("zone") or "UTC")
        start = pd.Timestamp(item.call_from).tz_convert(zone)
        end = pd.Timestamp(item.call_until).tz_convert(zone)
        return f"call back {start:%a %Y-%m-%d %H:%M}-{end:%H:%M} {zone.key}"
    return ""


def _describe(history: list[dict], kind: str) -> str:
    if kind == "plan":
        return "; ".join(f"{h['instalments']} instalments of {h['total']} {h['status']} (accepted {h['accepted']}"
                         f"{', ' + h['why'] if h.get('why') else ''})" for h in history)
    return "; ".join(f"{h['amount']} by {h['by']} {h['status']}" for h in history)


def _no_answers(conn, account_ids: list[str]) -> dict[str, int]:
    from sqlalchemy import func

    from campaigns.db.models import ContactAttempt

    a = ContactAttempt
    found: dict[str, int] = {}
    for part in in_batches(account_ids):
        for account_id, n in conn.execute(select(a.account_id, func.count()).where(
                a.account_id.in_(part), a.channel == "call", a.outcome == "no_answer")
                .group_by(a.account_id)):
            found[account_id] = n
    return found


def export_worklist(frame: pd.DataFrame, path: Path) -> int:
    """Write the worklist for agents (CSV or Parquet by suffix, 0600): CSV cells that a spreadsheet would run
    as formulas are neutralised."""
    out = frame[EXPORT_COLUMNS].copy()
    for column in ("amount_due", "balance"):
        out[column] = out[column].map(str)
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        with open_private(path, newline="", encoding="utf-8") as handle:
            neutralise_frame(out).to_csv(handle, index=False)
    elif suffix in (".parquet", ".pq"):
        with open_private(path, "wb") as handle:
            out.to_parquet(handle, index=False)
    else:
        raise WorklistError(f"{path}: unknown file type {suffix!r}; use .csv or .parquet")
    return len(out)


def record_outcome(engine: Engine, policy: PolicyConfig, account_id: str, outcome: str, now: datetime, today: date,
                   *, amount: Decimal | None = None, by: date | None = None, max_promise_days: int = 30,
                   zone=None) -> list[str]:
    """Log an agent's call outcome: it counts toward the call caps; ``promise`` and ``dispute`` open one.

    Returns what followed from it, in words (for the CLI).
    """
    if outcome not in OUTCOMES:
        raise WorklistError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
    if outcome == "promise" and (amount is None or by is None):
        raise WorklistError("a promise needs --amount and --by")
    decision = log_call(engine, policy, account_id, OUTCOMES[outcome], now)
    followed = [] if decision.allowed else [f"logged although the call rules said no ({decision.reason})"]
    if outcome == "promise":
        record_promise(engine, account_id, amount, by, now, today, channel="call", max_days=max_promise_days,
                       source="agent", zone=zone)
        followed.append(f"promise of {amount} by {by} opened: no reminders while it is open")
    elif outcome == "dispute":
        open_dispute(engine, account_id, now, source="agent")
        followed.append("dispute opened: collection stops until it is resolved")
    status = "done" if outcome in ("promise", "dispute") else "open"
    with engine.begin() as conn:
        conn.execute(update(AgentWorklistItem).where(AgentWorklistItem.account_id == account_id,
                                                     AgentWorklistItem.status == "open")
                     .values(outcome=outcome, outcome_at=now, status=status))
    return followed


__all__: list[Any] = ["export_worklist", "open_worklist", "prioritise", "record_outcome"]
