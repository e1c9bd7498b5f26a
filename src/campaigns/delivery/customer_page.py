"""The customer's self-service page: ``GET /c/{token}`` and its forms, ``POST /c/{token}/{action}``.

The page is one server-rendered HTML document (no JavaScript): what is owed and by when, the one main action (pay),
then the rest (how to pay, a plan, more time, why, a call back, a dispute, rating us, stopping a channel), in the
customer's language, with the brand's name, logo and colour. GET changes nothing (mail scanners open links); each
form carries a key made for that page view, so sending it twice records it once
(``campaigns.customers.self_service``). A forged or another account's token is 403, an expired one 410, both
before anything is looked up; the abuse middleware of the receiver counts them.

Languages are gettext catalogs (``pages/locales/<ll_CC>/LC_MESSAGES/pages.po``), read with Babel when the app
starts: docs/customer-page.md says how to add one.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from babel import negotiate_locale
from babel.dates import get_timezone_name
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from campaigns.contact.brand import Brand
from campaigns.contact.page_links import read_page_token
from campaigns.contact.render import babel_locale, format_day, format_money
from campaigns.customers import self_service
from campaigns.customers.self_service import CALL_DAYS_AHEAD, ActionRefused, PageFacts, page_facts
from campaigns.delivery.bodies import BodyTooLarge, read_body
from campaigns.ladder.config import DeferralRules, SegmentRules
from campaigns.money.links import LinkError

PAGES = Path(__file__).with_name("pages")
LOCALES = PAGES / "locales"
DOMAIN = "pages"
SOURCE_LOCALE = "en_US"  # the msgids are the English text
MAX_FORM_BYTES = 8192
HEADERS = {
    "Cache-Control": "no-store",
    # The token is in the URL: no page we link to learns it.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


class RedactLinks(logging.Filter):
    """Log lines (uvicorn's access log) without the signature of a page or plan link: a link is the key to the
    customer's page, so whoever reads the logs must not be able to use it. The account id stays (ids, not data)."""

    SIGNATURE = re.compile(r"~[a-z2-7]{20}(?=$|[/?#\s\"'])")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.SIGNATURE.sub("~…", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self.SIGNATURE.sub("~…", record.msg)
        return True


def uvicorn_log_config() -> dict:
    """uvicorn's own logging configuration with ``RedactLinks`` on its access log."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_links"] = {"()": RedactLinks}
    config["handlers"]["access"]["filters"] = ["redact_links"]
    config["handlers"]["default"]["filters"] = ["redact_links"]
    return config


def available_locales() -> list[str]:
    """The page's languages: English (the source) and every catalog under ``pages/locales``."""
    return list(_locales())


@lru_cache(maxsize=1)
def _locales() -> tuple[str, ...]:  # read once a process: the catalogs ship with the code
    return (SOURCE_LOCALE, *sorted(p.name for p in LOCALES.iterdir() if (p / "LC_MESSAGES" / f"{DOMAIN}.po").exists()))


@lru_cache(maxsize=None)
def translations(locale: str) -> NullTranslations:
    """The catalog of ``locale`` (``zh_CN``), compiled from its .po in memory; the source language has none."""
    po = LOCALES / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if locale == SOURCE_LOCALE or not po.exists():
        return NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@lru_cache(maxsize=256)
def page_locale(wanted: str | None) -> str:
    """The page language for a customer's ``en-US`` style locale: theirs if we have it, else its language's, else
    English."""
    found = negotiate_locale([(wanted or "en-US").replace("-", "_")], available_locales(), sep="_")
    if found is None and wanted:
        language = wanted.replace("-", "_").split("_")[0]
        found = next((loc for loc in available_locales() if loc.split("_")[0] == language), None)
    return found or SOURCE_LOCALE


def browser_locale(accept_language: str) -> str:
    """For a page that knows no account (a refused link): the browser's first language we have."""
    wanted = [part.split(";")[0].strip().replace("-", "_") for part in accept_language.split(",") if part.strip()]
    return negotiate_locale(wanted, available_locales(), sep="_") or SOURCE_LOCALE


@lru_cache(maxsize=None)
def environment(locale: str) -> Environment:
    env = Environment(loader=FileSystemLoader(PAGES), autoescape=select_autoescape(["j2", "html"]),
                      extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(translations(locale), newstyle=True)
    return env


@dataclass(frozen=True)
class CustomerPages:
    """What the pages need: the link key, the brand, the lender's zone, the deferral and segment rules, the plan
    links' key (to link an open offer), and the clock."""

    secret: bytes = field(repr=False)
    brand: Brand
    zone: ZoneInfo
    deferral: DeferralRules = field(default_factory=DeferralRules)
    segments: SegmentRules | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)


class LocalPage:
    """One answer in one language, with the brand's header and contacts (the customer pages and the plan pages)."""

    def __init__(self, locale: str, brand: Brand):
        self.locale, self.brand = locale, brand
        self.tr = translations(locale)
        self.env = environment(locale)
        self.tag = locale.replace("_", "-")

    def _(self, text: str, **values) -> str:
        return self.tr.gettext(text) % values if values else self.tr.gettext(text)

    def render(self, name: str, status: int = 200, **context) -> HTMLResponse:
        html = self.env.get_template(name).render(brand=self.brand, lang=self.tag, **context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def message(self, title: str, lines: list[str], status: int = 200, back: str | None = None,
                schedule: list[tuple[str, str]] | None = None, after: list[str] | None = None) -> HTMLResponse:
        return self.render("message.html.j2", status, title=title, lines=lines, back=back, schedule=schedule,
                           after=after or [])

    def money(self, amount: Decimal, currency: str) -> str:
        return format_money(amount, currency, self.tag)

    def day(self, day: date) -> str:
        return format_day(day, self.tag)


NO_BRAND = Brand(lender_name="", pay_url="", email_preferences_url="", support_phone="")


def account_locale(engine: Engine, account_id: str) -> str:
    """The page language of an account's customer (English when unknown)."""
    from sqlalchemy import select

    from campaigns.db.models import Account, Customer

    with engine.connect() as conn:
        wanted = conn.execute(select(Customer.locale).join(Account, Account.customer_id == Customer.id)
                              .where(Account.id == account_id)).scalar_one_or_none()
    return page_locale(wanted)


def refusal(page: LocalPage, exc: LinkError) -> HTMLResponse:
    """A link that cannot be used, in the page's language: expired (410), or not ours (403) and nothing more."""
    _ = page._
    if exc.status == 410:
        return page.message(_("This link has expired"), [_("Open the link in our latest message, or call us.")], 410)
    return page.message(_("This link cannot be used"), [_("Check that you opened the whole link from our message, "
                                                          "or call us.")], exc.status)


def customer_routes(engine: Engine, pages: CustomerPages) -> list[Route]:
    """``GET /c/{token}``, ``POST /c/{token}/{action}`` (reason, time, call, dispute, stop, rate)."""

    def facts_for(token: str, now: datetime) -> PageFacts:
        link = read_page_token(pages.secret, token, now, pages.zone)
        facts = page_facts(engine, link.account_id, now, pages.zone, pages.deferral, pages.segments)
        if facts is None:  # erased, or an account that is gone: as if the link had never been ours
            raise LinkError("not ours")
        return facts

    async def facts_or_refusal(request: Request, now: datetime) -> PageFacts | Response:
        try:
            return await run_in_threadpool(facts_for, request.path_params["token"], now)
        except LinkError as exc:  # the browser's language: the link says nothing of whose it is
            return refusal(LocalPage(browser_locale(request.headers.get("accept-language", "")), pages.brand), exc)

    async def show(request: Request) -> Response:
        now = pages.clock()
        facts = await facts_or_refusal(request, now)
        if isinstance(facts, Response):
            return facts
        page = LocalPage(page_locale(facts.locale), pages.brand)
        return page.render("account.html.j2", title=page._("Your account"),
                           **_account_view(page, facts, request.path_params["token"], now, pages))

    async def act(request: Request) -> Response:
        token, action, now = request.path_params["token"], request.path_params["action"], pages.clock()
        facts = await facts_or_refusal(request, now)
        if isinstance(facts, Response):
            return facts
        page = LocalPage(page_locale(facts.locale), pages.brand)
        try:
            body = await read_body(request, MAX_FORM_BYTES)
        except BodyTooLarge:
            return page.message(page._("That was too long"), [page._("Please write less and send it again.")],
                                413, back=_back(token))
        form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        try:
            outcome = await run_in_threadpool(_apply, engine, pages, facts, action, form, now)
        except ActionRefused as exc:
            return page.message(page._("We could not do that"), [_refused_words(page, exc.code)], exc.status,
                                back=_back(token))
        return _done(page, facts, outcome, token)

    return [Route("/c/{token}", show, methods=["GET"]),
            Route("/c/{token}/{action}", act, methods=["POST"])]


def _back(token: str) -> str:
    return f"../{token}"  # from /c/{token}/{action} back to /c/{token}, behind any path prefix


def _parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        return None


def _apply(engine: Engine, pages: CustomerPages, facts: PageFacts, action: str, form: dict[str, str],
           now: datetime) -> self_service.Outcome:
    key = form.get("key", "")
    if action == "reason":
        return self_service.state_reason(engine, facts, form.get("reason", ""), form.get("note"), key, now)
    if action == "time":
        return self_service.ask_for_time(engine, facts, _parse_day(form.get("until")), key, now, pages.zone,
                                         pages.deferral)
    if action == "call":
        return self_service.ask_for_call(engine, facts, _parse_day(form.get("day")), form.get("window", ""), key, now)
    if action == "dispute":
        return self_service.dispute(engine, facts, form.get("note"), key, now)
    if action == "stop":
        return self_service.stop_channel(engine, facts, form.get("channel", ""), key, now)
    if action == "rate":
        score = form.get("score", "")
        # Only the five ASCII digits: str.isdigit() is true of "¹" and "٣", which int() refuses or reads.
        return self_service.rate(engine, facts, int(score) if score in ("1", "2", "3", "4", "5") else None,
                                 form.get("note"), key, now)
    raise ActionRefused("unknown_action", 404)


def plan_offer_page(page: LocalPage, offer: dict, accept_links: dict[int, str], last_day: date,
                    back: str | None = None) -> HTMLResponse:
    """A plan offer's options (as ``offers.offer_for_link`` gives them), each with its accept button."""
    _ = page._
    currency, options = offer["currency"], []
    for option in offer["options"]:
        if offer["option"] not in (0, option["option"]):
            continue
        amounts = [page.money(Decimal(i["amount"]), currency) for i in option["instalments"]]
        count = int(option["count"])
        values = {"count": count, "first": page.day(date.fromisoformat(option["instalments"][0]["due"])),
                  "total": page.money(Decimal(option["total"]), currency)}
        if amounts[0] == amounts[-1]:
            words = _("%(count)s payments of %(amount)s, starting %(first)s: %(total)s in total",
                      amount=amounts[-1], **values)
        else:
            words = _("%(count)s payments: the first of %(first_amount)s, then %(rest)s of %(amount)s, starting "
                      "%(first)s: %(total)s in total", first_amount=amounts[0], rest=count - 1, amount=amounts[-1],
                      **values)
        options.append({"words": words, "action": accept_links[option["option"]]})
    return page.render("plans.html.j2", title=_("Choose a payment plan"), options=options,
                       last_day=page.day(last_day), back=back)


def plan_set_up_page(page: LocalPage, plan, again: bool = False) -> HTMLResponse:
    """The plan a customer chose (``again``: the button pressed twice, or the link opened after choosing)."""
    _ = page._
    schedule = [(page.day(d), page.money(a, plan.currency)) for d, a in plan.schedule]
    if again:
        return page.message(_("You already chose this plan"), [_("Your plan is set up. Your payments:")],
                            schedule=schedule, after=[_("There is nothing more to do here; we will remind you a few "
                                                        "days before each one.")])
    return page.message(_("Your plan is set up"), [_("Thank you. Your payments:")], schedule=schedule,
                        after=[_("We will remind you a few days before each one.")])


def _reasons(page: LocalPage) -> list[tuple[str, str]]:
    _ = page._
    return [("hardship", _("Money is tight right now")), ("problem_paying", _("I tried to pay but could not")),
            ("did_not_know", _("I did not know I owed this")), ("dispute", _("I do not think I owe this")),
            ("other", _("Something else"))]


def _channel_words(page: LocalPage) -> tuple[dict[str, str], dict[str, str]]:
    _ = page._
    labels = {"email": _("Stop emails"), "sms": _("Stop text messages"), "push": _("Stop app notifications")}
    names = {"email": _("emails"), "sms": _("text messages"), "push": _("app notifications")}
    return labels, names


def _account_view(page: LocalPage, facts: PageFacts, token: str, now: datetime, pages: CustomerPages) -> dict:
    _ = page._
    brand = pages.brand
    owed_amount = facts.plan_amount_due if facts.plan_due_date is not None and facts.plan_amount_due else \
        facts.amount_due if facts.amount_due > 0 else facts.balance
    plan_href = None
    if facts.offer_day is not None and facts.offer_expires_at is not None:
        plan_href = brand.plan_link(facts.account_id, facts.offer_day, 0, facts.offer_expires_at)
    today = now.astimezone(pages.zone).date()
    deferral_days = [(d.isoformat(), page.day(d)) for d in
                     (today + timedelta(days=n) for n in range(1, pages.deferral.longest_days + 1))]
    zone = ZoneInfo(facts.zone)
    local_today = now.astimezone(zone).date()
    call_days = [(d.isoformat(), page.day(d)) for d in
                 (local_today + timedelta(days=n) for n in range(0, CALL_DAYS_AHEAD + 1))]
    labels, names = _channel_words(page)
    return {
        "facts": facts, "token": token, "form_key": secrets.token_urlsafe(16),
        "owed": page.money(owed_amount, facts.currency), "balance": page.money(facts.balance, facts.currency),
        "due_day": page.day(facts.due_date),
        "plan_day": page.day(facts.plan_due_date) if facts.plan_due_date else "",
        "promise_day": page.day(facts.open_promise[1]) if facts.open_promise else "",
        "pay_href": brand.payment_page(facts.account_id, owed_amount),
        "plan_href": plan_href, "hardship": facts.stated_reason == "hardship",
        "guide_first": facts.stated_reason == "problem_paying",
        "deferral_days": deferral_days, "reasons": _reasons(page), "call_days": call_days,
        "call_windows": [("morning", _("Morning, 9:00 to 12:00")), ("afternoon", _("Afternoon, 12:00 to 17:00")),
                         ("evening", _("Evening, 17:00 to 20:00"))],
        "zone_name": get_timezone_name(zone, locale=babel_locale(page.tag)),
        "call_when": (_when(page, facts.called_back.astimezone(zone)) if facts.called_back else ""),
        "channel_list": sorted(facts.channels.items()), "channel_labels": labels, "channel_names": names,
    }


def _when(page: LocalPage, moment: datetime) -> str:
    from babel.dates import format_datetime

    return format_datetime(moment, "medium", tzinfo=moment.tzinfo, locale=babel_locale(page.tag))


def _refused_words(page: LocalPage, code: str) -> str:
    _ = page._
    return {
        "choose_a_reason": _("Please choose one of the reasons."),
        "choose_a_date": _("Please choose one of the dates offered."),
        "choose_a_time": _("Please choose a day and a time from the ones offered."),
        "choose_a_channel": _("Please choose one of the ways we contact you."),
        "choose_a_score": _("Please choose a rating from 1 to 5."),
        "note_too_long": _("Please keep your note under 1,000 characters."),
        "form_expired": _("This form has expired. Go back, reload the page and try again."),
        "already_deferred": _("You already have more time on this account."),
        "promise_open": _("You already promised to pay by a date: we are waiting until then."),
        "deferred_recently": _("You had more time recently, so we cannot offer it again yet. Call us and we "
                               "will find a way together."),
        "not_eligible_now": _("We cannot offer more time on this account now. Call us and we will find a way "
                              "together."),
        "nothing_due": _("Nothing is due on this account now."),
        "in_plan": _("Your account is in a payment plan."),
        "disputed": _("We are looking into your dispute: nothing is due until we have answered."),
        "not_offered": _("Call us and we will find a way together."),
        "unknown_action": _("That is not something this page can do."),
    }.get(code, _("Call us and we will find a way together."))


def _done(page: LocalPage, facts: PageFacts, outcome: self_service.Outcome, token: str) -> HTMLResponse:
    _ = page._
    back = _back(token)
    if outcome.again:
        return page.message(_("We already have this"), [_("You sent this before and we recorded it then. There "
                                                          "is nothing more to do.")], back=back)
    if outcome.action == "asked_for_time":
        until = page.day(outcome.detail["until"])
        return page.message(_("You have more time"), [
            _("You can pay %(amount)s by %(day)s. We will not send you reminders until then.",
              amount=page.money(facts.amount_due, facts.currency), day=until)], back=back)
    if outcome.action == "stated_reason":
        lines = [_("Thank you for telling us. It helps us help you.")]
        if outcome.code == "hardship":
            lines.append(_("A plan or more time may help: both are on your account page."))
        elif outcome.code == "problem_paying":
            lines.append(_("The steps to pay are on your account page; if they do not work, call us."))
        elif outcome.code == "dispute":
            lines.append(_("If you do not owe this, use \"I do not owe this\" on your account page."))
        return page.message(_("Thank you"), lines, back=back)
    if outcome.action == "asked_for_call":
        zone = ZoneInfo(facts.zone)
        return page.message(_("We will call you back"), [
            _("We will call you between %(start)s and %(end)s, your time.",
              start=_when(page, outcome.detail["from"].astimezone(zone)),
              end=_when(page, outcome.detail["until"].astimezone(zone)))], back=back)
    if outcome.action == "disputed":
        return page.message(_("We are looking into it"), [
            _("We have paused all reminders on this account while we check, and we will tell you what we find.")],
            back=back)
    if outcome.action == "stopped_channel":
        _labels, names = _channel_words(page)
        return page.message(_("Done"), [_("You will get no more %(what)s from us about this account.",
                                          what=names[outcome.code])], back=back)
    return page.message(_("Thank you for your rating"), [_("It helps us do better.")], back=back)


__all__ = ["NO_BRAND", "CustomerPages", "RedactLinks", "uvicorn_log_config", "LocalPage", "account_locale", "browser_locale", "plan_offer_page",
           "plan_set_up_page", "refusal", "available_locales", "customer_routes", "page_locale", "translations"]
