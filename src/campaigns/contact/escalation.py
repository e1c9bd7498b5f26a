"""What goes to people with an escalated account: what was tried before (attempts, the latest of them, the plans and
promises the customer made) and why it is escalated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from campaigns.db.models import ContactAttempt, Stage
from campaigns.money.offers import plan_history
from campaigns.money.promises import promise_history


RECENT_TRIED = 10  # contacts listed on a worklist item; older ones are counted


def attempts_so_far(engine: Engine, account_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What was tried per account before escalation: how many attempts, and the latest with day and outcome."""
    if not account_ids:
        return {}
    a = ContactAttempt
    stmt = (
        select(a.account_id, a.as_of, a.stage, a.channel, a.status, a.reason)
        .where(a.account_id.in_(account_ids), a.stage != Stage.escalation.value)
        .order_by(a.account_id, a.as_of.desc(), a.id.desc())
    )
    tried: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for r in conn.execute(stmt):
            entry = tried.setdefault(r.account_id, {"attempts": 0, "recent": []})
            entry["attempts"] += 1
            if len(entry["recent"]) < RECENT_TRIED:
                entry["recent"].append({"on": r.as_of.isoformat(), "stage": r.stage, "channel": r.channel,
                                        "outcome": f"{r.status} ({r.reason})" if r.reason else r.status})
        # The plans and promises it made go with it: an agent calls someone who said yes before differently.
        for key, history in (("plans", plan_history(conn, account_ids)), ("promises", promise_history(conn, account_ids))):
            for account_id, items in history.items():
                tried.setdefault(account_id, {"attempts": 0, "recent": []})[key] = items
    return tried


def escalation_reason(tried: dict[str, Any], vulnerable: bool) -> str:
    """Why the account goes to people: a specialist's review for a vulnerable customer, then a broken
    plan or promise, then simply an aged debt."""
    if vulnerable:
        return "vulnerable_review"
    if any(p.get("status") == "broken" for p in tried.get("plans", [])):
        return "broken_plan"
    if any(p.get("status") == "broken" for p in tried.get("promises", [])):
        return "broken_promise"
    return "aged_debt"
