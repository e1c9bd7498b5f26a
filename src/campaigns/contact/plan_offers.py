"""The instalment options a plan_offer message makes to one account today, as the message shows them and as they are
stored (``repayment_plans``, through ``campaigns.money.offers``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from campaigns.contact.brand import Brand
from campaigns.ladder.config import StageRule
from campaigns.money.links import offer_expiry, offer_key
from campaigns.money.plans import PlanOption, offer_options


@dataclass(frozen=True)
class Offer:
    """The instalment options one plan_offer message makes, as stored in ``repayment_plans``."""

    key: str
    offered_on: date
    expires_at: datetime
    balance: Decimal
    options: list[PlanOption]

    def as_row(self, account_id: str, currency: str, now: datetime) -> dict[str, Any]:
        return {
            "offer_key": self.key, "account_id": account_id, "status": "offered", "instalments": 0,
            "total": self.balance, "currency": currency, "schedule": [], "created_at": now,
            "options": [{"option": n, "count": o.count, "total": str(o.total),
                         "instalments": [{"due": i.due_date.isoformat(), "amount": str(i.amount)}
                                         for i in o.instalments]}
                        for n, o in enumerate(self.options, start=1)],
            "offered_on": self.offered_on, "expires_at": self.expires_at,
        }


def make_offer(row: Any, rule: StageRule, as_of: date, brand: Brand) -> Offer | None:
    """The options offered to this account today (None: the stage offers no plans, or the balance is too small)."""
    if rule.plans is None:
        return None
    options = offer_options(Decimal(row.balance), row.currency, rule.plans, as_of)
    if not options:
        return None
    expires = offer_expiry(as_of, rule.plans.offer_valid_days, ZoneInfo(brand.lender_timezone))
    return Offer(offer_key(row.account_id, as_of), as_of, expires, Decimal(row.balance), options)
