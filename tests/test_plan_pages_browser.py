"""The plan pages as a customer sees them: a phone's Chromium opens the link, chooses a plan, is told it is set up.

The receiver runs in uvicorn (as `campaigns serve-webhooks` does); Debian's
Chromium is driven through Playwright (never a browser Playwright downloads).
Screenshots are kept in ``test-output/screenshots``.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from campaigns.settings import PROJECT_ROOT
from tests.conftest import NOW
from tests.factories import add_account
from tests.test_plan_lifecycle import RULES, SECRET, offer, plan_row

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_customer_chooses_a_plan_on_a_phone(engine):
    import uvicorn
    from playwright.sync_api import sync_playwright

    from campaigns.delivery.webhooks import PlanLinks, create_app

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (`.ci/run` installs it: apt-get install chromium)")
    add_account(engine, "A1", days_past_due=20, customer={"name": "Grace Brown"})
    tokens = offer(engine, "A1")["tokens"]
    app = create_app(engine, plan_links=PlanLinks(SECRET, RULES, ZoneInfo("America/New_York"), clock=lambda: NOW))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    backend = engine.dialect.name
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"http://127.0.0.1:{port}/plans/{tokens[0]}")
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
                response = page.goto(f"http://127.0.0.1:{port}/plans/{tokens[2]}")
                assert response.status == 409 and page.title() == "This link cannot be used"
                assert errors == []
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert plan_row(engine, "A1").chosen_option == 1
