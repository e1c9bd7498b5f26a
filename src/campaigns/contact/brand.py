"""The lender as every message shows it: its name, how to pay, how to opt out, who to call, the signed links of
plan offers and of each customer's self-service page (from settings, wired by ``campaigns.bootstrap``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from campaigns.contact.page_links import make_page_token
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
    # The customer's self-service page (campaigns.contact.page_links); no secret: messages carry pay_url instead.
    page_url: str = "https://pay.example.com/c/{token}"
    page_secret: bytes = b""
    page_valid_days: int = 30
    # How the page looks and who it sends people to (the brand's own settings).
    logo_url: str = ""
    colour: str = "#1d4ed8"
    support_email: str = ""
    support_hours: str = ""

    def payment_page(self, account_id: str, amount: Decimal | str = "") -> str:
        """The lender's own payment page for an account (``pay_url``; ``{amount}`` is optional in it)."""
        return self.pay_url.format(account_id=account_id, amount=amount)

    def page_link(self, account_id: str, on: date) -> str | None:
        """The customer's self-service page, signed to work for ``page_valid_days`` after ``on`` (the campaign day:
        a re-run of the day makes the same link); None without a secret."""
        try:
            token = make_page_token(self.page_secret, account_id, on + timedelta(days=self.page_valid_days))
        except LinkError:
            return None
        return self.page_url.format(token=token)

    def plan_link(self, account_id: str, offered_on: date, option: int, expires_at: datetime) -> str | None:
        """The signed accept link of an option (0: the page listing them all); None without a secret."""
        try:
            token = make_token(self.plan_link_secret, account_id, offered_on, option, expires_at)
        except LinkError:
            return None
        return self.plan_url.format(token=token)
