"""The customer's page as a customer sees it: a phone's Chromium (Debian's, driven by Playwright), in English and in
Chinese, every action end to end, no console error, and axe-core (the npm package, injected into the page) finding no
serious or critical accessibility problem on any page the customer meets.

The receiver runs in uvicorn, as `campaigns serve-webhooks` does. Screenshots and axe's results are kept in
``test-output/`` (docs/customer-page.md shows them).
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from campaigns.db.models import AgentWorklistItem, Customer, CustomerAction, Dispute, PaymentPromise
from campaigns.delivery.customer_page import CustomerPages
from campaigns.ladder.config import DeferralRules
from campaigns.settings import PROJECT_ROOT
from tests.conftest import NOW, debian_chromium, served_by_uvicorn
from tests.delivery.test_customer_page import BRAND, SECRET as PAGE_SECRET, TODAY, token
from tests.factories import add_account
from tests.money.test_plan_lifecycle import RULES, SECRET as PLAN_SECRET, offer, plan_row

pytestmark = pytest.mark.slow
OUTPUT = PROJECT_ROOT / "test-output"
SCREENSHOTS = OUTPUT / "screenshots"
AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
ZONE = ZoneInfo("America/New_York")
WORDS = {  # what each language says where the test looks
    "en-US": {"why": "Tell us why you have not paid", "hardship": "Money is tight right now", "send": "Send",
              "thanks": "Thank you", "time": "Ask for more time", "ask_time": "Ask for this date",
              "more_time": "You have more time", "until": "You have until", "call": "Ask us to call you",
              "evening": "Evening, 17:00 to 20:00", "call_me": "Call me back", "calling": "We will call you back",
              "stop": "Stop messages", "stop_sms": "Stop text messages", "done": "Done",
              "dispute": "I do not owe this", "dispute_it": "Dispute this debt", "checking": "We are looking into it",
              "disputed": "We are looking into your dispute", "again": "We already have this",
              "plans": "See my plan options", "choose": "Choose this plan", "set_up": "Your plan is set up",
              "chosen": "You already chose this plan", "rate": "Send my rating", "rated": "Thank you for your rating",
              "back": "Back to your account", "pay": "Pay $120.50", "ending": "Your account ending"},
    "zh-CN": {"why": "告诉我们您尚未还款的原因", "hardship": "目前手头紧张", "send": "发送", "thanks": "谢谢",
              "time": "申请延期还款", "ask_time": "申请延期至该日期", "more_time": "延期成功", "until": "您可在",
              "call": "请我们给您回电", "evening": "晚上 17:00 至 20:00", "call_me": "请给我回电",
              "calling": "我们会给您回电", "stop": "停止接收消息", "stop_sms": "停止短信", "done": "已完成",
              "dispute": "我不欠这笔款", "dispute_it": "对这笔欠款提出异议", "checking": "我们正在核实",
              "disputed": "我们正在核实您的异议", "again": "我们已收到", "plans": "查看我的分期方案",
              "choose": "选择此方案", "set_up": "您的分期方案已设立", "chosen": "您已选择此方案",
              "rate": "提交评分", "rated": "感谢您的评分", "back": "返回您的账户", "pay": "还款 US$120.50",
              "ending": "尾号为"},
}


@contextmanager
def served(engine):
    """The receiver (customer pages and plan pages) in uvicorn, and a phone's Chromium: (base url, page, errors)."""
    from campaigns.delivery.webhooks import PlanLinks, create_app

    def app(base: str):
        brand = replace(BRAND, plan_url=f"{base}/plans/{{token}}", plan_link_secret=PLAN_SECRET,
                        lender_timezone="America/New_York")
        return create_app(engine, customer_pages=CustomerPages(PAGE_SECRET, brand, ZONE, DeferralRules(),
                                                               clock=lambda: NOW),
                          plan_links=PlanLinks(PLAN_SECRET, RULES, ZONE, clock=lambda: NOW, brand=brand))

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with served_by_uvicorn(app) as base, debian_chromium() as browser:
        # bypass_csp: axe is injected into pages whose policy allows no script at all.
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                      device_scale_factor=1, bypass_csp=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        yield base, page, errors
        context.close()


def axe(page, name: str, found: dict) -> None:
    """axe-core's checks of the page as it is (WCAG 2.1 A and AA, best practices): no serious or critical
    violation; every result is kept for the note."""
    assert AXE.exists(), "axe-core is missing: `make install` runs npm ci (package.json)"
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
        return {violations: r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length})),
                passes: r.passes.length, incomplete: r.incomplete.map(v => v.id)};
    }""")
    found[name] = result
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], (name, bad)


def submit(page, summary: str, fill, button: str) -> None:
    section = page.get_by_text(summary, exact=True)
    if not section.evaluate("el => el.parentElement.open"):  # hardship opens some sections by itself
        section.click()  # open the section (a <details>: no script needed)
    fill()
    page.get_by_role("button", name=button).click()
    page.wait_for_load_state()


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_every_action_on_a_phone_in_each_language(engine, locale):
    words, backend, short = WORDS[locale], engine.dialect.name, locale.split("-")[0]
    zone = "America/New_York" if locale == "en-US" else "Asia/Shanghai"
    add_account(engine, "A1", days_past_due=5, customer={"locale": locale, "timezone": zone, "name": "Grace Brown"})
    add_account(engine, "B2", days_past_due=20, customer={"locale": locale, "timezone": zone})
    offer(engine, "B2")
    found: dict = {}
    with served(engine) as (base, page, errors):
        url = f"{base}/c/{token('A1')}"
        page.goto(url)
        assert page.locator("h1").inner_text().startswith(words["ending"])
        assert "Grace" not in page.content()
        # The one main action comes first in the focus order: one Tab from the top lands on Pay.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent.trim()") == words["pay"]
        page.screenshot(path=SCREENSHOTS / f"customer-page-{short}-{backend}.png", full_page=True)
        axe(page, "account page", found)
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        page.screenshot(path=SCREENSHOTS / f"customer-page-{short}-open-{backend}.png", full_page=True)
        axe(page, "account page, every section open", found)
        page.goto(url)

        form_key = page.locator("input[name=key]").first.get_attribute("value")
        submit(page, words["why"], lambda: page.get_by_label(words["hardship"]).check(), words["send"])
        assert page.locator("h1").inner_text() == words["thanks"]
        axe(page, "result page", found)
        # The same form sent again (a reload that posts, a double tap): recorded once, and said so.
        again = page.request.post(f"{url}/reason", form={"key": form_key, "reason": "hardship"})
        assert again.status == 200 and words["again"] in again.text()
        page.get_by_role("link", name=words["back"]).click()
        page.wait_for_load_state()

        # Hardship opens the offers of time and a plan first.
        submit(page, words["time"], lambda: page.locator("#until").select_option(index=6), words["ask_time"])
        assert page.locator("h1").inner_text() == words["more_time"]
        page.goto(url)
        assert words["until"] in page.content()

        def evening():
            page.locator("#call-day").select_option(index=1)
            page.get_by_label(words["evening"]).check()
        submit(page, words["call"], evening, words["call_me"])
        assert page.locator("h1").inner_text() == words["calling"]
        page.goto(url)

        page.get_by_text(words["stop"], exact=True).click()
        page.get_by_role("button", name=words["stop_sms"]).click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == words["done"]
        page.goto(url)

        submit(page, words["dispute"], lambda: page.locator("#dispute-note").fill("not my loan"),
               words["dispute_it"])
        assert page.locator("h1").inner_text() == words["checking"]
        page.goto(url)
        assert page.locator("h2").first.inner_text() == words["disputed"]
        page.screenshot(path=SCREENSHOTS / f"customer-page-{short}-disputed-{backend}.png", full_page=True)

        # B2: a plan from the page's link, in the same language, then rated.
        plans_url = f"{base}/c/{token('B2')}"
        page.goto(plans_url)
        page.get_by_text(words["plans"], exact=True).click()
        page.wait_for_load_state()
        page.screenshot(path=SCREENSHOTS / f"plan-offer-page-{short}-{backend}.png", full_page=True)
        axe(page, "plan page", found)
        accept = base + page.locator("form").first.get_attribute("action")
        page.get_by_role("button", name=words["choose"]).first.click()
        page.wait_for_load_state()
        assert page.title().startswith(words["set_up"])
        axe(page, "plan set up", found)
        again = page.request.post(accept)  # the button pressed again: the plan, not an error
        assert again.status == 200 and f"<title>{words['chosen']}" in again.text()
        page.go_back()  # the link opened again: the plan
        assert page.title().startswith(words["chosen"])
        page.goto(plans_url)
        page.get_by_label("5", exact=True).check()
        page.get_by_role("button", name=words["rate"]).click()
        page.wait_for_load_state()
        assert page.locator("h1").inner_text() == words["rated"]
        assert errors == []
        forged = page.goto(f"{base}/c/{token('A1')[:-2]}xx")
        assert forged.status == 403
        axe(page, "refused link", found)
        assert [e for e in errors if "403" not in e] == []
    (OUTPUT / f"axe-customer-page-{short}-{backend}.json").write_text(json.dumps(found, indent=1))

    with engine.connect() as conn:
        actions = conn.execute(select(CustomerAction.account_id, CustomerAction.action, CustomerAction.code)
                               .order_by(CustomerAction.id)).all()
        assert conn.execute(select(PaymentPromise.kind, PaymentPromise.due_by)).one() == (
            "deferral", TODAY + timedelta(days=7))
        assert conn.execute(select(func.count()).select_from(AgentWorklistItem)).scalar_one() == 1
        assert conn.execute(select(Customer.sms_opt_out).where(Customer.id == "C-A1")).scalar_one() is True
        assert conn.execute(select(Dispute.account_id)).scalar_one() == "A1"
    assert [(a.account_id, a.action) for a in actions] == [
        ("A1", "stated_reason"), ("A1", "asked_for_time"), ("A1", "asked_for_call"), ("A1", "stopped_channel"),
        ("A1", "disputed"), ("B2", "rated")]
    assert plan_row(engine, "B2").status == "accepted"
    assert all(re.fullmatch(r"[a-z_]+", a.action) for a in actions)
