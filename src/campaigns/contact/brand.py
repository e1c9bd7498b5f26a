"""The lender as every message shows it: its name, how to pay, how to opt out, who to call, and the signed links of
plan offers (from settings, wired by ``campaigns.bootstrap``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from campaigns.money.links import LinkError, make_token


@dataclass(frozen=True)
class Brand:
    """Lender-wide facts every message carries (from settings)."""

    lender_name: str
    pay_url: str
    email_preferences_url: str
    support_phone: str
    plan_url: str = "https://pay.example.com/plans/{token}"
    plan_link_secret: bytes = b""
    lender_timezone: str = "UTC"

    def plan_link(self, account_id: str, offered_on: date, option: int, expires_at: datetime) -> str | None:
        """The signed accept link of an option (0: the page listing them all); None without a secret."""
        try:
            token = make_token(self.plan_link_secret, account_id, offered_on, option, expires_at)
        except LinkError:
            return None
        return self.plan_url.format(token=token)
