"""Messages in both locales, with the facts every collection message must state."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from campaigns.db.models import Stage
from campaigns.ladder.config import load_ladder
from campaigns.contact.brand import Brand
from campaigns.contact.pipeline import StageRun, compose_attempts
from campaigns.contact.render import MessageFacts, RenderError, TemplateLibrary, check_required_content
from campaigns.settings import PROJECT_ROOT
from campaigns.contact.strategy import decide_contacts

AS_OF = date(2026, 11, 22)
BRAND = Brand(lender_name="Acme Lending", pay_url="https://pay.example.com/a/{account_id}",
              email_preferences_url="https://pay.example.com/prefs/{account_id}", support_phone="+1 800 555 0100")
LADDER = load_ladder(PROJECT_ROOT / "config" / "ladder.yaml")
TEMPLATES = TemplateLibrary(PROJECT_ROOT / "templates")

EXPECTED = {  # locale -> (currency, amount as shown, due date as shown for dpd 16)
    "en-US": ("USD", "$1,234.50", "November 6, 2026"),
    "zh-CN": ("CNY", "¥1,234.50", "2026年11月6日"),
}


def one_account(locale: str, days_past_due: int, **extra) -> pd.DataFrame:
    currency = EXPECTED[locale][0]
    return pd.DataFrame([{
        "account_id": "A0001234", "customer_id": "C1", "currency": currency, "balance": Decimal("3000.01"),
        "amount_due": Decimal("1234.50"), "due_date": AS_OF - pd.Timedelta(days=days_past_due).to_pytimedelta(),
        "product": "card", "cease_contact": False, "name": extra.get("name", "Ada"),
        "email": "ada@example.com", "phone": "+12125550123", "locale": locale, "timezone": "America/New_York",
        "country": "US", "email_opt_out": extra.get("email_opt_out", False), "sms_opt_out": False,
        "sms_consent": True, "has_open_dispute": False, "days_past_due": days_past_due,
    }])


def render(stage: Stage, locale: str, days_past_due: int, templates=TEMPLATES, **extra):
    frame = one_account(locale, days_past_due, **extra)
    rule = LADDER.rule(stage)
    decisions = decide_contacts(frame, rule, LADDER.experiment.model_copy(update={"holdout_share": 0.0}))
    run = StageRun(run_id="r", stage=stage, as_of=AS_OF, now=datetime(2026, 11, 22, 14, tzinfo=timezone.utc))
    return compose_attempts(frame, decisions, rule, run, templates, BRAND)


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
@pytest.mark.parametrize(("stage", "dpd"), [(Stage.pre_due, -3), (Stage.soft_nudge, 1), (Stage.plan_offer, 16)])
@pytest.mark.parametrize("channel", ["email", "sms"])
def test_every_message_states_amount_date_how_to_pay_and_opt_out(stage, dpd, locale, channel):
    [planned] = [p for p in render(stage, locale, dpd, email_opt_out=channel == "sms") if p.message]
    assert planned.row["status"] == "queued" and planned.row["channel"] == channel
    assert planned.row["template"] == f"{stage.value}/{channel}.{locale}.j2"
    assert len(planned.row["template_version"]) == 12
    message = planned.message
    amount = EXPECTED[locale][1]
    bodies = [message["body_text"]] + ([message["body_html"]] if channel == "email" else [])
    for body in bodies:
        assert amount in body
        assert "https://pay.example.com/a/A0001234" in body
        if channel == "email":
            assert "https://pay.example.com/prefs/A0001234" in body
        else:
            assert ("Reply STOP to opt out" if locale == "en-US" else "回复TD退订") in body
    if channel == "email":
        assert message["subject"] and message["recipient"] == "ada@example.com"
    else:
        assert message["recipient"] == "+12125550123" and message["body_html"] is None


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_dates_are_formatted_for_the_locale(locale):
    [planned] = [p for p in render(Stage.plan_offer, locale, 16) if p.message]
    assert EXPECTED[locale][2] in planned.message["body_text"]


def test_plan_offer_lists_options_that_add_up_to_the_balance():
    [planned] = [p for p in render(Stage.plan_offer, "en-US", 20) if p.message]
    text = planned.message["body_text"]
    assert "3 monthly payments (the first of $1,000.01, then 2 of $1,000.00)" in text
    assert "6 monthly payments (the first of $500.01, then 5 of $500.00)" in text
    assert text.count("$3,000.01 in total") == 2


def test_html_is_autoescaped_and_text_is_not():
    [planned] = [p for p in render(Stage.soft_nudge, "en-US", 2, name="<script>x</script> & Co") if p.message]
    assert "<script>" not in planned.message["body_html"] and "&lt;script&gt;" in planned.message["body_html"]
    assert "<script>x</script> & Co" in planned.message["body_text"]


def copy_templates(tmp_path: Path) -> Path:
    root = tmp_path / "templates"
    for source in (PROJECT_ROOT / "templates").rglob("*.j2"):
        target = root / source.relative_to(PROJECT_ROOT / "templates")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return root


def test_a_template_error_fails_that_message_with_a_reason(tmp_path):
    root = copy_templates(tmp_path)
    (root / "soft_nudge" / "email.en-US.j2").write_text(
        "{% block subject %}Hi{% endblock %}{% block text %}{{ no_such_value }}{% endblock %}"
        "{% block html %}x{% endblock %}")
    [planned] = render(Stage.soft_nudge, "en-US", 2, templates=TemplateLibrary(root))
    assert planned.row["status"] == "failed" and planned.row["reason"] == "template_error"
    assert planned.row["detail"] == "soft_nudge/email.en-US.j2 line 1: UndefinedError"
    assert planned.message is None


@pytest.mark.parametrize(("expression", "error"), [
    ("{{ name + 1 }}", "TypeError"),                    # not a Jinja error: it used to abort the whole chunk
    ("{{ 1 // (days_past_due - days_past_due) }}", "ZeroDivisionError"),
    ("{{ name.upper(1) }}", "TypeError"),
    ("{{ plan_options[name] }}", "UndefinedError"),      # Jinja's text would be "... has no attribute 'Ada'"
    ("{{ '%d' | format(name) }}", "TypeError"),
    ("{{ range(1, 10, 0) | list }}", "ValueError"),
])
def test_any_exception_in_a_template_fails_that_message_and_keeps_no_text(tmp_path, expression, error):
    root = copy_templates(tmp_path)
    (root / "soft_nudge" / "email.en-US.j2").write_text(
        "{% block subject %}Hi{% endblock %}{% block text %}\nline two\n" + expression + "{% endblock %}"
        "{% block html %}x{% endblock %}")
    [planned] = render(Stage.soft_nudge, "en-US", 2, templates=TemplateLibrary(root), name="Grace Garcia")
    assert (planned.row["status"], planned.row["reason"]) == ("failed", "template_error")
    assert planned.row["detail"] == f"soft_nudge/email.en-US.j2 line 3: {error}"


def test_a_message_without_its_opt_out_line_is_not_sent(tmp_path):
    root = copy_templates(tmp_path)
    (root / "soft_nudge" / "sms.en-US.j2").write_text(
        "{% block text %}{{ amount }} due {{ due_date }}: {{ pay_url }}{% endblock %}")
    [_, planned] = render(Stage.soft_nudge, "en-US", 2, templates=TemplateLibrary(root), email_opt_out=True)
    assert planned.row["status"] == "failed" and planned.row["reason"] == "content_incomplete"
    assert "opt-out" in planned.row["detail"]


def test_a_variant_template_is_used_when_present_and_falls_back_otherwise(tmp_path):
    root = copy_templates(tmp_path)
    source = (root / "soft_nudge" / "email.en-US.j2").read_text()
    (root / "soft_nudge" / "email.en-US.warm.j2").write_text(source.replace("A quick note", "A warm note"))
    library = TemplateLibrary(root)
    assert library.resolve("soft_nudge", "email", "en-US", "warm") == "soft_nudge/email.en-US.warm.j2"
    assert library.resolve("soft_nudge", "email", "en-US", "control") == "soft_nudge/email.en-US.j2"
    assert library.resolve("soft_nudge", "email", "fr-FR", None) == "soft_nudge/email.en-US.j2"
    with pytest.raises(RenderError, match="no_template"):
        library.resolve("soft_nudge", "fax", "en-US", None)


def test_required_content_check_names_what_is_missing():
    from campaigns.contact.render import RenderedContent

    content = RenderedContent(template="t", template_version="v", subject="s", text="pay $5", html=None)
    with pytest.raises(RenderError) as info:
        check_required_content(content, MessageFacts(amount="$5", due_date="May 1", pay_url="https://p", opt_out="STOP"))
    assert info.value.reason == "content_incomplete"
    assert "due date, how to pay, opt-out" in info.value.detail


MONEY_PAIRS = [("USD", "en-US"), ("CNY", "zh-CN"), ("EUR", "fr-FR"), ("EUR", "de-DE"), ("INR", "en-IN"),
               ("JPY", "ja-JP"), ("KWD", "ar-KW"), ("BRL", "pt-BR"), ("CHF", "de-CH"), ("USD", "es-MX"),
               ("GBP", None), ("MXN", "xx-YY")]


@pytest.mark.parametrize("currency, locale", MONEY_PAIRS)
def test_money_is_written_exactly_as_babel_writes_it(currency, locale):
    """The fast money format (issue 12) never differs from Babel: rounding ties, every grouping size, negative
    amounts and floats (left to Babel), locales that group in lakhs (en-IN falls back)."""
    from hypothesis import given, settings as hsettings
    from hypothesis import strategies as st
    from babel.numbers import format_currency

    from campaigns.contact.render import babel_locale, format_money

    amounts = st.one_of(st.decimals(min_value=-10**12, max_value=10**12, places=3, allow_nan=False),
                        st.integers(min_value=0, max_value=10**13),
                        st.decimals(min_value=0, max_value=10**4, places=4, allow_nan=False))

    @hsettings(max_examples=300, deadline=None)
    @given(amounts)
    def same_as_babel(amount):
        assert format_money(amount, currency, locale) == format_currency(amount, currency, locale=babel_locale(locale))

    same_as_babel()
