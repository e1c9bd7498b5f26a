"""The plan pages as a customer sees them: a phone's Chromium opens the link, chooses a plan, is told it is set up.

The receiver runs in uvicorn (as `campaigns serve-webhooks` does); Debian's
Chromium is driven through Playwright (never a browser Playwright downloads).
Screenshots are kept in ``test-output/screenshots``.
"""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from campaigns.money.payments import record_payment
from campaigns.settings import PROJECT_ROOT
from tests.conftest import NOW, debian_chromium, served_by_uvicorn
from tests.factories import add_account
from tests.money.test_plan_lifecycle import RULES, SECRET, offer, plan_row

pytestmark = pytest.mark.slow
SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"


@contextmanager
def plan_pages(engine):
    """The plan pages served by uvicorn, and a phone's Chromium: yields (base url, page, page errors)."""
    from campaigns.delivery.webhooks import PlanLinks, create_app

    links = PlanLinks(SECRET, RULES, ZoneInfo("America/New_York"), clock=lambda: NOW)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with served_by_uvicorn(lambda base: create_app(engine, plan_links=links)) as base, debian_chromium() as browser:
        page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield base, page, errors


def test_a_customer_chooses_a_plan_on_a_phone(engine):
    add_account(engine, "A1", days_past_due=20, customer={"name": "Grace Brown"})
    tokens = offer(engine, "A1")["tokens"]
    backend = engine.dialect.name
    with plan_pages(engine) as (base, page, errors):
        page.goto(f"{base}/plans/{tokens[0]}")
        assert page.title() == "Choose a payment plan"
        options = page.locator("li")
        assert options.count() == 3
        assert options.nth(0).inner_text().startswith("3 payments of $200.00, starting November 29, 2026: "
                                                       "$600.00 in total")
        assert "open until December 6, 2026" in page.content()
        assert "Grace" not in page.content()  # the page names no one
        page.screenshot(path=SCREENSHOTS / f"plan-offer-page-{backend}.png", full_page=True)
        page.get_by_role("button", name="Choose this plan").first.click()
        page.wait_for_load_state()
        assert page.title() == "Your plan is set up"
        assert page.locator("ol li").all_inner_texts() == [
            "November 29, 2026: $200.00", "December 29, 2026: $200.00", "January 29, 2027: $200.00"]
        page.screenshot(path=SCREENSHOTS / f"plan-accepted-page-{backend}.png", full_page=True)
        # The button pressed again (a double click lands after the first answer): the plan, not an error.
        again = page.request.post(f"{base}/plans/{tokens[1]}")
        assert again.status == 200 and "<title>You already chose this plan</title>" in again.text()
        page.goto(f"{base}/plans/{tokens[0]}")  # the email's link opened again
        assert page.title() == "You already chose this plan"
        assert page.locator("ol li").all_inner_texts()[0] == "November 29, 2026: $200.00"
        page.screenshot(path=SCREENSHOTS / f"plan-already-chosen-page-{backend}.png", full_page=True)
        response = page.goto(f"{base}/plans/{tokens[2]}")  # another option of the offer, after one was chosen
        assert response.status == 409 and page.title() == "This offer cannot be accepted any more"
        assert errors == []
    assert plan_row(engine, "A1").chosen_option == 1


def test_the_plan_page_shows_what_is_owed_when_it_is_opened_not_when_the_offer_was_sent(engine):
    """The offer's email split $600.00; a payment since then lowered what is owed, and the page (and the
    plan it sets up) split what is owed now. Paid off, the link has nothing left to offer."""
    zone = ZoneInfo("America/New_York")
    add_account(engine, "A2", days_past_due=20)
    tokens = offer(engine, "A2")["tokens"]
    record_payment(engine, "A2", Decimal("150.00"), NOW, NOW, zone)
    backend = engine.dialect.name
    with plan_pages(engine) as (base, page, errors):
        page.goto(f"{base}/plans/{tokens[0]}")
        assert page.title() == "Choose a payment plan"
        assert page.locator("li").nth(0).inner_text().startswith(
            "3 payments of $150.00, starting November 29, 2026: $450.00 in total")
        page.screenshot(path=SCREENSHOTS / f"plan-offer-page-after-a-payment-{backend}.png", full_page=True)

        record_payment(engine, "A2", Decimal("450.00"), NOW, NOW, zone, payment_id="rest")
        response = page.goto(f"{base}/plans/{tokens[1]}")
        assert response.status == 409 and page.title() == "Nothing is owed on this account"
        assert page.locator("p").first.inner_text() == "Thank you. There is nothing more to pay."
        page.screenshot(path=SCREENSHOTS / f"plan-offer-page-paid-off-{backend}.png", full_page=True)
        assert errors == []
    assert plan_row(engine, "A2").status == "offered"  # nothing was accepted
