"""What the start of each campaign day settles before any stage runs.

Offers past their expiry expire; plans with an instalment unpaid too long break;
promises whose date has passed unpaid break (the day after); accounts old and
large enough are placed with the agency, and what happened to placed accounts'
money since the last time is written to the agency's activity file. Each is
idempotent: a re-run of the day finds nothing left to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from campaigns.ladder.config import Ladder
from campaigns.money.agency import place_with_agency, report_to_agency
from campaigns.money.offers import break_overdue_plans, expire_offers
from campaigns.money.promises import break_overdue_promises


@dataclass
class Settlement:
    offers_expired: int = 0
    plans_broken: int = 0
    promises_broken: int = 0
    accounts_placed: int = 0
    placement_file: str | None = None
    agency_events: int = 0
    activity_file: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def settle_day(engine: Engine, ladder: Ladder, as_of: date, now: datetime, placement_dir: Path,
               dry_run: bool = False, zone: ZoneInfo | None = None) -> Settlement:
    """Expire, break, place and report what ``as_of`` calls for (a dry run changes nothing and reports
    nothing)."""
    done = Settlement()
    if dry_run:
        return done
    zone = zone or ZoneInfo("UTC")
    with engine.begin() as conn:
        done.offers_expired = expire_offers(conn, now)
        if ladder.plan_rules is not None:
            done.plans_broken = break_overdue_plans(conn, as_of, now, ladder.plan_rules, zone)
        done.promises_broken = break_overdue_promises(conn, as_of, now)
    if ladder.agency is not None:
        placement = place_with_agency(engine, ladder.agency, as_of, now, placement_dir, zone)
        done.accounts_placed = placement.accounts
        done.placement_file = placement.file.name if placement.file else None
        feed = report_to_agency(engine, ladder.agency.name, now, placement_dir)
        done.agency_events = feed.rows
        done.activity_file = feed.file.name if feed.file else None
    return done
