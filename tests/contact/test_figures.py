"""Every money figure a message states is the figure it names (issue 8: 13).

The three misstatements found in the plan-offer templates are kept here as they
were, and the content rule must catch each; the shipped templates must pass it.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from campaigns.contact.template_figures_check import Sample, _sheet, check_template_rules, stated_figure_problems
from campaigns.ladder.config import load_ladder
from campaigns.contact.pipeline import StageRun, message_context
from campaigns.contact.render import TemplateLibrary
from campaigns.db.models import Stage
from campaigns.settings import PROJECT_ROOT
from tests.contact.test_pipeline import BRAND
from tests.contact.test_render import copy_templates

LADDER = load_ladder(PROJECT_ROOT / "config" / "ladder.yaml")
OLD = {  # as they were before the fix
    "plan_offer/sms.en-US.j2": "{% block text %}{{ lender }}: {{ amount }} due {{ due_date }} is overdue. Spread it: "
                               "{% for option in plan_options %}{{ option.count }}x {{ option.amount }}{% if not loop.last %}"
                               " or {% endif %}{% endfor %}. Choose: {{ pay_url }} Reply {{ opt_out_keyword }} to opt out."
                               "{% endblock %}",
    "plan_offer/sms.zh-CN.j2": "{% block text %}【{{ lender }}】您{{ due_date }}到期的{{ amount }}已逾期，可分期："
                               "{% for option in plan_options %}{{ option.count }}期每期{{ option.amount }}"
                               "{% if not loop.last %}或{% endif %}{% endfor %}。办理：{{ pay_url }} 回复{{ opt_out_keyword }}退订"
                               "{% endblock %}",
}
OLD_SUBJECT = ("{% block subject %}Spread your {{ amount }} balance into smaller payments{% endblock %}",
               "{% block subject %}Spread your {{ balance }} balance into smaller payments{% endblock %}")


def plan_sample(locale: str, currency: str, due: str, balance: str):
    row = type("Row", (), dict(account_id="A0001234", customer_id="C1", name="Ada", locale=locale, currency=currency,
                               amount_due=Decimal(due), balance=Decimal(balance), due_date=date(2026, 10, 28),
                               days_past_due=25))()
    run = StageRun("r", Stage.plan_offer, date(2026, 11, 22), datetime(2026, 11, 22, 15, tzinfo=timezone.utc))
    context, _ = message_context(row, "sms", LADDER.rule(Stage.plan_offer), run, BRAND)
    return row, context


def test_the_shipped_templates_state_every_figure_right():
    names, problems, _ = check_template_rules(TemplateLibrary(PROJECT_ROOT / "templates"), LADDER, BRAND)
    assert len(names) >= 30 and problems == []


def test_each_misstatement_found_in_the_old_templates_is_caught(tmp_path):
    root = copy_templates(tmp_path)
    for name, text in OLD.items():
        (root / name).write_text(text, encoding="utf-8")
    email = root / "plan_offer" / "email.en-US.j2"
    email.write_text(email.read_text(encoding="utf-8").replace(OLD_SUBJECT[1], OLD_SUBJECT[0]), encoding="utf-8")
    _, problems, _ = check_template_rules(TemplateLibrary(root), LADDER, BRAND)
    found = {(p.template, p.problem.split(" (sample")[0]) for p in problems}
    assert ("plan_offer/email.en-US.j2", "calls $155.97 the balance, but it is the amount due") in found
    assert ("plan_offer/sms.en-US.j2", "offers instalments ($103.97, $207.94) without stating the balance they split") in found
    assert any(t == "plan_offer/sms.zh-CN.j2" and "an uneven split must say which instalment differs" in p
               for t, p in found)
    assert {t for t, _ in found} == {"plan_offer/email.en-US.j2", "plan_offer/sms.en-US.j2", "plan_offer/sms.zh-CN.j2"}


def test_the_templates_check_command_fails_on_a_misstated_figure(tmp_path, monkeypatch):
    from campaigns.cli import app

    root = copy_templates(tmp_path)
    (root / "plan_offer" / "sms.en-US.j2").write_text(OLD["plan_offer/sms.en-US.j2"], encoding="utf-8")
    monkeypatch.setenv("CAMPAIGNS_TEMPLATES_DIR", str(root))
    result = CliRunner().invoke(app, ["templates", "check"])
    assert result.exit_code == 1
    assert "plan_offer/sms.en-US.j2: offers instalments" in result.output


@pytest.mark.parametrize(("locale", "currency", "expected"), [
    ("zh-CN", "CNY", "¥2,548.28余额可分期：3期（首期¥849.44，其后每期¥849.42）或6期（首期¥424.73，其后每期¥424.71）"),
    ("en-US", "USD", "Spread your $2,548.28 balance: 3 payments ($849.44 then 2x $849.42) or 6 payments "
                     "($424.73 then 5x $424.71)"),
    ("en-US", "JPY", "Spread your ¥254,828 balance: 3 payments (¥84,944 then 2x ¥84,942) or 6 payments "
                     "(¥42,473 then 5x ¥42,471)"),
])
def test_an_uneven_split_says_which_instalment_differs_and_adds_up(locale, currency, expected):
    balance = "254828" if currency == "JPY" else "2548.28"  # yen instalments above the ¥2,500 minimum
    row, context = plan_sample(locale, currency, "155.97" if currency != "JPY" else "156", balance)
    text = TemplateLibrary(PROJECT_ROOT / "templates").render(f"plan_offer/sms.{locale}.j2", "sms", context).text
    assert expected in text
    for option in context["plan_options"]:
        assert option["rest_count"] == option["count"] - 1


def test_a_figure_that_is_none_of_the_messages_is_reported():
    row, context = plan_sample("en-US", "USD", "155.97", "2548.28")
    sample: Sample = _sheet(row, context)
    assert stated_figure_problems("There is a $999.99 fee.", sample, "en-US") == [
        "states $999.99, which is none of the message's figures"]
    assert stated_figure_problems("Your $2,548.28 balance: 3 payments ($849.44 then 3x $849.42).", sample,
                                  "en-US") == ["says 'then 3' after the first of 3 instalments: the rest are 2"]
    assert stated_figure_problems("Your $2,548.28 balance: 3 payments ($849.44 then 2x $849.42).", sample,
                                  "en-US") == []
