"""Signed links to a customer's self-service page: ``{public page URL}/c/<token>``.

A token reads ``<account>~<YYYYMMDD>~<signature>``: the account, the last day the
link works (in the lender's time zone), and an HMAC-SHA256 over both (100 bits in
base32) under a key of its own (``CAMPAIGNS_CUSTOMER_PAGE_SECRET``), the scheme of
the plan links (``campaigns.money.links``). A token cannot be forged or moved to
another account without the key (403), and it is refused after its day (410).
A message's link is made from the campaign day, so a re-run of the day writes the
same link, and the rendered message stays the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from campaigns.money.links import LinkError

TOKEN = re.compile(r"^(?P<account>[A-Za-z0-9][A-Za-z0-9_.:-]{0,63})~(?P<day>\d{8})~(?P<signature>[a-z2-7]{20})$")
SIGNATURE_CHARS = 20  # 100 bits


@dataclass(frozen=True)
class PageLink:
    account_id: str
    last_day: date  # the link works until the end of this day, in the lender's time zone
    signature: str

    def expires_at(self, zone: ZoneInfo) -> datetime:
        return datetime.combine(self.last_day + timedelta(days=1), time.min, zone)


def _signature(secret: bytes, account_id: str, last_day: date) -> str:
    digest = hmac.new(secret, f"page|{account_id}|{last_day.isoformat()}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:SIGNATURE_CHARS]


def make_page_token(secret: bytes, account_id: str, last_day: date) -> str:
    if not secret:
        raise LinkError("no customer page secret is configured (CAMPAIGNS_CUSTOMER_PAGE_SECRET)")
    if not TOKEN.match(f"{account_id}~{last_day:%Y%m%d}~{'a' * SIGNATURE_CHARS}"):
        raise LinkError("this account id cannot be carried in a page link")
    return f"{account_id}~{last_day:%Y%m%d}~{_signature(secret, account_id, last_day)}"


def read_page_token(secret: bytes, token: str, now: datetime, zone: ZoneInfo) -> PageLink:
    """The link a token is, or ``LinkError``: 403 when it is not ours (malformed, forged, another account's), 410
    when its last day has passed. The signature is compared in constant time, before anything is looked up."""
    match = TOKEN.match(token or "")
    if not match:
        raise LinkError("not a page link")
    try:
        last_day = datetime.strptime(match["day"], "%Y%m%d").date()
    except ValueError:
        raise LinkError("not a page link") from None
    link = PageLink(match["account"], last_day, match["signature"])
    if not secret or not hmac.compare_digest(_signature(secret, link.account_id, last_day), link.signature):
        raise LinkError("the link's signature is not valid")
    if now >= link.expires_at(zone):
        raise LinkError("the link has expired", 410)
    return link
