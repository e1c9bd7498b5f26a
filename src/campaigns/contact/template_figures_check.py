"""Every money figure a message states is the figure it names: a content rule checked on rendered samples.

A template can be valid Jinja, state the amount, the due date, the pay link and
the opt-out, and still mislead: "Spread your $25.00 balance" when $25.00 is the
amount due, "3x $207.95" offered against an amount due of $155.97 when the split
is of the balance, "3期每期¥849.42" when the first instalment is ¥849.44. This
module renders every template with sample accounts whose figures are all
distinct (amount due, balance, each option's instalments, uneven and even
splits, in currencies of 0, 2 and 3 decimals), finds each figure in the text,
reads what the words next to it claim it is, and checks:

1. every money amount stated is one of the message's figures (nothing computed
   in a template, nothing stale);
2. a figure named as the balance, the amount due, an instalment, the first
   instalment or a plan's total is that figure;
3. an instalment offer states the balance it splits; and when a split is uneven,
   the first instalment (the one that differs) is stated too, and "then N of"
   counts the rest right.

The words are read per language from a small lexicon (English and Chinese
today); a template in another language is checked by rules 1 and 3.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from math import lcm
from types import SimpleNamespace

from babel.numbers import get_currency_precision

from campaigns.ladder.config import Ladder
from campaigns.contact.brand import Brand
from campaigns.contact.pipeline import StageRun, message_context
from campaigns.contact.render import RenderError, TemplateLibrary, format_money
from campaigns.db.models import Stage
from campaigns.policy.content import NAME, TemplateProblem, check_templates

SAMPLE_CURRENCIES = ("USD", "JPY", "KWD")  # 2, 0 and 3 decimals
SAMPLE_DAY = date(2026, 11, 22)
TAGS = re.compile(r"<[^>]+>")

# What the words right before / right after a figure claim it is, per language.
# ("instalment" claims carry an option count when the words give one: "3x", "6 monthly payments of".)
BEFORE = {
    "en": [
        (re.compile(r"(?:balance(?: of)?|spread(?: your)?|split(?: your)?)\s*$", re.I), "balance"),
        (re.compile(r"(?:payment of|reminder:)\s*$", re.I), "amount_due"),
        (re.compile(r"first(?: payment)?(?: is| of)?\s*$", re.I), "first"),
        (re.compile(r"then (?P<rest>\d+)\s*(?:x|×|of)\s*$", re.I), "instalment"),
        (re.compile(r"(?P<count>\d+)\s*(?:x|×)\s*$", re.I), "instalment"),
        (re.compile(r"(?P<count>\d+) (?:monthly |fortnightly |weekly )?(?:payments|instalments) of\s*$", re.I),
         "instalment"),
        (re.compile(r"total(?: of)?\s*$", re.I), "total"),
    ],
    "zh": [
        (re.compile(r"余额\s*$"), "balance"),
        (re.compile(r"(?:到期的|应还)\s*$"), "amount_due"),
        (re.compile(r"首期\s*$"), "first"),
        (re.compile(r"(?:其后|之后|以后)(?:(?P<rest>\d+)期)?每期\s*$"), "instalment"),
        (re.compile(r"(?:每期|每月)\s*$"), "instalment"),
        (re.compile(r"合计\s*$"), "total"),
    ],
}
AFTER = {
    "en": [
        (re.compile(r"^\s*balance\b", re.I), "balance"),
        (re.compile(r"^\s*(?:is |was )?(?:due|overdue|from)\b", re.I), "amount_due"),
        (re.compile(r"^,?\s*then\b", re.I), "first"),
        (re.compile(r"^\s*in total\b", re.I), "total"),
    ],
    "zh": [
        (re.compile(r"^\s*(?:的)?(?:余额|欠款|可分期)"), "balance"),
        (re.compile(r"^\s*(?:的款项|还款|已逾期|尚未)"), "amount_due"),
    ],
}
# Which option a figure belongs to: the nearest count of instalments before it on its line.
OPTION_COUNT = {
    "en": re.compile(r"(?<!then )\b(\d+)\s*(?:x\b|×|(?:monthly |fortnightly |weekly )?(?:payments|instalments)\b)",
                     re.I),
    "zh": re.compile(r"(?<!其后)(\d+)期"),
}


@dataclass(frozen=True)
class Figure:
    """One money figure of a sample message: its text and every field it is (a total is also the balance)."""

    text: str
    fields: frozenset[str]


@dataclass
class Sample:
    """A sample account's figures, formatted for one locale and currency."""

    currency: str
    figures: list[Figure] = field(default_factory=list)
    uneven_options: dict[int, str] = field(default_factory=dict)  # count -> the first instalment's text

    def fields_of(self, text: str) -> frozenset[str]:
        for figure in self.figures:
            if figure.text == text:
                return figure.fields
        return frozenset()


def sample_accounts(counts: list[int]) -> list[tuple[str, int, int]]:
    """(currency, amount due, balance) in minor units: every split uneven in one sample, even in the other."""
    step = lcm(*counts) if counts else 1
    uneven = step * (62386 // step) + 1  # one minor unit left over for every count
    even = step * (60000 // step or 1)
    return [(currency, due, balance) for currency in SAMPLE_CURRENCIES
            for due, balance in ((15597, uneven), (14999, even))]


def _sample_row(locale: str, currency: str, due_minor: int, balance_minor: int) -> SimpleNamespace:
    unit = Decimal(1).scaleb(-get_currency_precision(currency))
    return SimpleNamespace(
        account_id="A0001234", customer_id="C1", name="Sample Customer", locale=locale, currency=currency,
        amount_due=Decimal(due_minor) * unit, balance=Decimal(balance_minor) * unit,
        due_date=SAMPLE_DAY - timedelta(days=16), days_past_due=16,
    )


def _sheet(row: SimpleNamespace, context: dict) -> Sample:
    sample = Sample(currency=row.currency)
    named: dict[str, set[str]] = {}
    named.setdefault(context["amount"], set()).add("amount_due")
    named.setdefault(context["balance"], set()).add("balance")
    for option in context.get("plan_options", []):
        count = option["count"]
        named.setdefault(option["amount"], set()).add(f"instalment:{count}")
        named.setdefault(option["total"], set()).add("total")
        named.setdefault(option["first_amount"], set()).add(f"first:{count}")
        if option["first_differs"]:
            sample.uneven_options[count] = option["first_amount"]
    sample.figures = [Figure(text, frozenset(fields)) for text, fields in named.items()]
    return sample


def _money_pattern(currency: str, locale: str) -> re.Pattern:
    """Anything that looks like an amount in ``currency`` as ``locale`` writes it."""
    shown = format_money(Decimal("1234.5"), currency, locale)
    digits = re.search(r"\d[\d\s.,\u00a0\u202f]*\d", shown)
    prefix, suffix = shown[:digits.start()].strip(), shown[digits.end():].strip()
    number = r"\d[\d.,\u00a0\u202f]*\d|\d"
    if prefix:
        return re.compile(re.escape(prefix) + r"\s?(?:" + number + ")")
    return re.compile(r"(?:" + number + r")\s?" + re.escape(suffix))


def stated_figure_problems(text: str, sample: Sample, locale: str) -> list[str]:
    """What a rendered message misstates about its money (rules 1-3 above), in words a template author reads."""
    language = locale.split("-")[0]
    problems: list[str] = []
    claimed: dict[str, set[str]] = {}  # field -> figure texts claimed as that field
    for line in text.splitlines():
        spots = _figures_on(line, sample, locale, problems)
        for i, (start, end, figure_text) in enumerate(spots):
            before = line[(spots[i - 1][1] if i else 0):start][-32:]
            after = line[end:(spots[i + 1][0] if i + 1 < len(spots) else len(line))][:20]
            claim, count, rest = _claim(before, after, language)
            if claim is None:
                continue
            option = count or _option_count(line[:start], language)
            problem = _check_claim(claim, option, rest, figure_text, sample)
            if problem:
                problems.append(problem)
            claimed.setdefault(claim, set()).add(figure_text)
    instalments = claimed.get("instalment", set())
    if instalments and not claimed.get("balance"):
        problems.append(f"offers instalments ({', '.join(sorted(instalments))}) without stating the balance they split")
    for count, first in sorted(sample.uneven_options.items()):
        regular = [f.text for f in sample.figures if f"instalment:{count}" in f.fields]
        if regular and regular[0] in instalments and first not in claimed.get("first", set()):
            problems.append(f"states {count} instalments of {regular[0]} but not that the first is {first}: "
                            "an uneven split must say which instalment differs")
    return problems


def _figures_on(line: str, sample: Sample, locale: str, problems: list[str]) -> list[tuple[int, int, str]]:
    spots = []
    for match in _money_pattern(sample.currency, locale).finditer(line):
        figure = match.group().strip()
        if not sample.fields_of(figure):
            problems.append(f"states {figure}, which is none of the message's figures")
            continue
        spots.append((match.start(), match.end(), figure))
    return spots


def _claim(before: str, after: str, language: str) -> tuple[str | None, int | None, int | None]:
    """(what the words claim, the option count they give, the "then N" count they give), nearest words first."""
    found = []
    for pattern, claim in BEFORE.get(language, []):
        match = pattern.search(before)
        if match:
            groups = match.groupdict()
            count = int(groups["count"]) if groups.get("count") else None
            rest = int(groups["rest"]) if groups.get("rest") else None
            found.append((len(before) - match.end(), claim, count, rest))
    for pattern, claim in AFTER.get(language, []):
        match = pattern.search(after)
        if match:
            found.append((match.start(), claim, None, None))
    if not found:
        return None, None, None
    _, claim, count, rest = min(found, key=lambda f: f[0])
    return claim, count, rest


def _option_count(text_before: str, language: str) -> int | None:
    pattern = OPTION_COUNT.get(language)
    counts = pattern.findall(text_before) if pattern else []
    return int(counts[-1]) if counts else None


def _check_claim(claim: str, option: int | None, rest: int | None, figure: str, sample: Sample) -> str | None:
    fields = sample.fields_of(figure)
    if claim in ("balance", "amount_due", "total"):
        if claim not in fields:
            named = {"balance": "the balance", "amount_due": "the amount due", "total": "a plan's total"}[claim]
            return f"calls {figure} {named}, but it is {_describe(fields)}"
        return None
    kind = "instalment" if claim == "instalment" else "first"
    if option is None:
        if not any(f.startswith(kind + ":") for f in fields):
            return f"calls {figure} {'an instalment' if kind == 'instalment' else 'the first instalment'}, " \
                   f"but it is {_describe(fields)}"
        return None
    if f"{kind}:{option}" not in fields:
        what = "each instalment" if kind == "instalment" else "the first instalment"
        return f"calls {figure} {what} of the {option}-instalment plan, but it is {_describe(fields)}"
    if rest is not None and rest != option - 1:
        return f"says 'then {rest}' after the first of {option} instalments: the rest are {option - 1}"
    return None


def _describe(fields: frozenset[str]) -> str:
    words = []
    for name in sorted(fields):
        kind, _, count = name.partition(":")
        words.append({"amount_due": "the amount due", "balance": "the balance", "total": "a plan's total",
                      "instalment": f"each instalment of the {count}-instalment plan",
                      "first": f"the first instalment of the {count}-instalment plan"}[kind])
    return " and ".join(words) or "none of the message's figures"


def check_stated_figures(templates: TemplateLibrary, ladder: Ladder, brand: Brand) -> list[TemplateProblem]:
    """Render every template with the sample accounts; list what any of them misstates about money."""
    problems: list[TemplateProblem] = []
    for path in sorted(templates.root.rglob("*.j2")):
        name = str(path.relative_to(templates.root))
        match = NAME.match(name)
        if not match or match["stage"] not in {s.value for s in ladder.stages} or match["channel"] == "agent":
            continue  # badly named templates are reported by the template lint
        stage, channel, locale = Stage(match["stage"]), match["channel"], match["locale"]
        rule = ladder.rule(stage)
        run = StageRun(run_id="sample", stage=stage, as_of=SAMPLE_DAY,
                       now=datetime.combine(SAMPLE_DAY, datetime.min.time(), timezone.utc))
        seen: set[str] = set()
        for currency, due, balance in sample_accounts(rule.instalment_counts or []):
            row = _sample_row(locale, currency, due, balance)
            context, _ = message_context(row, channel, rule, run, brand)
            try:
                content = templates.render(name, channel, context)
            except RenderError:
                continue  # a template that does not render fails its messages and is reported by the lint
            text = "\n".join(filter(None, (content.subject, content.text,
                                           html.unescape(TAGS.sub("", content.html or "")))))
            for problem in stated_figure_problems(text, _sheet(row, context), locale):
                shape = re.sub(r"\d[\d.,]*", "#", problem)  # the same mistake in another currency is one problem
                if shape not in seen:
                    seen.add(shape)
                    problems.append(TemplateProblem(name, f"{problem} (sample in {currency})"))
    return problems


def check_template_rules(templates: TemplateLibrary, ladder: Ladder,
                         brand: Brand) -> tuple[list[str], list[TemplateProblem], set[str]]:
    """Every content rule: the lint of the templates themselves, then the figures of rendered samples.

    Returns (templates checked, problems, templates that mention legal action).
    """
    names, problems, litigious = check_templates(templates.root)
    return names, problems + check_stated_figures(templates, ladder, brand), litigious
