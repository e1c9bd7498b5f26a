"""Signed plan-acceptance links: an HMAC over account, offer, option and expiry.

A token reads ``<account>~<YYYYMMDD>~<option>~<signature>``: the account and the
campaign day name the offer (``offer_key``), option 0 is the page that lists
every option, and the signature (HMAC-SHA256, 100 bits in base32) also covers
the offer's expiry, which is stored with the offer. A token cannot be forged
without the secret, is refused after its expiry, and stops working once any
option of its offer is accepted (the offer is no longer ``offered``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

TOKEN = re.compile(r"^(?P<account>[A-Za-z0-9][A-Za-z0-9_.:-]{0,63})~(?P<day>\d{8})~(?P<option>\d{1,2})~"
                   r"(?P<signature>[a-z2-7]{20})$")
SIGNATURE_CHARS = 20  # 100 bits


class LinkError(ValueError):
    """A plan link that is not ours, not valid any more, or already used: one line, no personal data.

    ``status`` is the HTTP answer: 403 not ours, 410 expired, 409 used (or superseded), 422 otherwise.
    """

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PlanLink:
    account_id: str
    offered_on: date
    option: int  # 0: the page listing every option
    signature: str

    @property
    def offer_key(self) -> str:
        return offer_key(self.account_id, self.offered_on)


def offer_key(account_id: str, offered_on: date) -> str:
    return f"{account_id}|{offered_on.isoformat()}"


def offer_expiry(offered_on: date, valid_days: int, zone: ZoneInfo) -> datetime:
    """Links work until the end of the last valid day in the lender's time zone."""
    return datetime.combine(offered_on + timedelta(days=valid_days + 1), time.min, zone)


def _signature(secret: bytes, account_id: str, offered_on: date, option: int, expires_at: datetime) -> str:
    message = f"{account_id}|{offered_on.isoformat()}|{option}|{int(expires_at.timestamp())}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:SIGNATURE_CHARS]


def make_token(secret: bytes, account_id: str, offered_on: date, option: int, expires_at: datetime) -> str:
    if not secret:
        raise LinkError("no plan link secret is configured (CAMPAIGNS_PLAN_LINK_SECRET)")
    sig = _signature(secret, account_id, offered_on, option, expires_at)
    return f"{account_id}~{offered_on:%Y%m%d}~{option}~{sig}"


def parse_token(token: str) -> PlanLink:
    """The parts of a token, or ``LinkError`` if it cannot be one of ours (checked before any lookup)."""
    match = TOKEN.match(token or "")
    if not match:
        raise LinkError("not a plan link")
    try:
        day = datetime.strptime(match["day"], "%Y%m%d").date()
    except ValueError:
        raise LinkError("not a plan link") from None
    return PlanLink(match["account"], day, int(match["option"]), match["signature"])


def verify(secret: bytes, link: PlanLink, expires_at: datetime, now: datetime) -> None:
    """Refuse a forged or expired link (constant-time comparison)."""
    expected = _signature(secret, link.account_id, link.offered_on, link.option, expires_at)
    if not secret or not hmac.compare_digest(expected, link.signature):
        raise LinkError("the link's signature is not valid")
    if now >= expires_at:
        raise LinkError("the link has expired", 410)
