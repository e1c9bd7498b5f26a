"""When a customer may be contacted: the local window, Sundays and public holidays, in every plausible zone.

``blocked_reason`` says why a moment is not allowed (or None); ``next_allowed``
finds the earliest allowed moment. Both are exact across DST changes: local
times come from zoneinfo, never from fixed offsets.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from campaigns.policy.profiles import Jurisdiction

OUTSIDE_WINDOW = "outside_contact_window"
SUNDAY = "sunday"
HOLIDAY = "holiday"


@lru_cache(maxsize=256)
def _calendar(code: str, year: int):
    return holidays.country_holidays(code, years=year)


def is_holiday(profile: Jurisdiction, day: date) -> bool:
    return profile.holidays is not None and day in _calendar(profile.holidays, day.year)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def blocked_reason(zones: tuple[str, ...], moment: datetime, profile: Jurisdiction, channel: str) -> str | None:
    """Why ``moment`` is not an allowed time to contact someone in ``zones`` (None: allowed)."""
    window = profile.window_for(channel)
    reasons = set()
    for name in zones:
        local = moment.astimezone(_zone(name))
        if not window.contains(local.time().replace(tzinfo=None)):
            reasons.add(OUTSIDE_WINDOW)
        elif profile.no_sunday and local.weekday() == 6:
            reasons.add(SUNDAY)
        elif is_holiday(profile, local.date()):
            reasons.add(HOLIDAY)
    for reason in (OUTSIDE_WINDOW, SUNDAY, HOLIDAY):
        if reason in reasons:
            return reason
    return None


def next_allowed(
    zones: tuple[str, ...], moment: datetime, profile: Jurisdiction, channel: str, horizon: timedelta
) -> datetime | None:
    """The earliest allowed moment at or after ``moment`` within ``horizon``, or None.

    An allowed stretch always begins either now or at the window's opening in one
    of the zones, so those are the only candidates to try.
    """
    if blocked_reason(zones, moment, profile, channel) is None:
        return moment
    window = profile.window_for(channel)
    end = moment + horizon
    candidates = set()
    for name in zones:
        zone = _zone(name)
        first = moment.astimezone(zone).date()
        for offset in range((horizon.days or 0) + 2):
            opening = datetime.combine(first + timedelta(days=offset), window.start, tzinfo=zone)
            opening = opening.astimezone(timezone.utc)
            if moment < opening <= end:
                candidates.add(opening)
    for candidate in sorted(candidates):
        if blocked_reason(zones, candidate, profile, channel) is None:
            return candidate
    return None


def local_day_start(zones: tuple[str, ...], moment: datetime, days_back: int = 0) -> datetime:
    """The earliest local midnight, ``days_back`` local days before today, among the zones (UTC).

    With several plausible zones the earliest midnight is used, so a cap counts
    everything that could be "today" (or "this week") for the customer.
    """
    starts = []
    for name in zones:
        zone = _zone(name)
        day = moment.astimezone(zone).date() - timedelta(days=days_back)
        starts.append(datetime.combine(day, datetime.min.time(), tzinfo=zone).astimezone(timezone.utc))
    return min(starts)
