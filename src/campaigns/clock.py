"""The run's clock: ``now`` is given (``--now``) or real; ``as_of`` is that moment's date for the lender."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo


class NaiveTimestampError(ValueError):
    pass


def parse_now(text: str) -> datetime:
    """An ISO 8601 timestamp that must carry its offset (``2026-11-22T09:00:00-05:00`` or ``...Z``)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp; write e.g. 2026-11-22T09:00:00-05:00 "
                         "or 2026-11-22T14:00:00Z") from None
    if value.tzinfo is None:
        raise NaiveTimestampError(f"{text!r} has no UTC offset; write e.g. {text}+00:00 or {text}-05:00")
    return value


def resolve_clock(as_of: date | None, now: datetime | None, lender_zone: ZoneInfo) -> tuple[date, datetime]:
    """(as_of, now in UTC). ``now`` defaults to the real clock, ``as_of`` to now's date in the lender's zone."""
    if now is None:
        now = datetime.now(timezone.utc)
    elif now.tzinfo is None:
        raise NaiveTimestampError("now must be timezone-aware")
    now = now.astimezone(timezone.utc)
    return (as_of or now.astimezone(lender_zone).date()), now


class FutureDayError(ValueError):
    """A live run for a day that has not come: what it settles (offers expired, plans broken, accounts placed)
    cannot be undone when the day really comes."""


def refuse_a_future_day(as_of: date, now: datetime, lender_zone: ZoneInfo, what: str) -> None:
    """A live run or an irreversible action is for today or a past day (in the lender's zone); a dry run may
    look ahead."""
    today = now.astimezone(lender_zone).date()
    if as_of > today:
        raise FutureDayError(f"{what} for {as_of} is refused: that day has not come (today is {today} in the "
                             "lender's zone) and what it settles cannot be undone; use --dry-run to look ahead")
