"""Messages from Jinja2 templates, with amounts and dates formatted for the customer's locale.

Templates live at ``templates/<stage>/<channel>.<locale>[.<variant>].j2``. Email
templates define the blocks ``subject``, ``text`` and ``html``; SMS and push define
``text``. The ``html`` block is always rendered with autoescaping on, whatever the
template author did, and every template with StrictUndefined, so a missing value
is an error and never an empty gap in a letter to a customer.

Any error while rendering fails that one message (``template_error``); a rendered message
that lacks the amount, the due date, how to pay, or how to opt out fails too
(``content_incomplete``): nothing incomplete reaches a customer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from campaigns.money.plans import PlanOption

DEFAULT_LOCALE = "en-US"
BLOCKS = {"email": ("subject", "text", "html"), "sms": ("text",), "push": ("subject", "text")}


class RenderError(Exception):
    """A message could not be rendered; ``reason`` is the code logged on the attempt."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RenderedContent:
    template: str
    template_version: str
    subject: str | None
    text: str
    html: str | None


@dataclass(frozen=True)
class MessageFacts:
    """What every collection message must say, already formatted for the locale."""

    amount: str
    due_date: str
    pay_url: str
    opt_out: str
    extras: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=128)
def babel_locale(locale: str | None) -> Locale:
    """The Babel locale for ``en-US`` style tags (cached: parsing one costs ~0.2 ms)."""
    try:
        return Locale.parse((locale or DEFAULT_LOCALE).replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LOCALE.replace("-", "_"))


def format_money(amount: Decimal, currency: str, locale: str | None) -> str:
    """``amount`` in ``currency`` as the locale writes it (Babel's standard currency format)."""
    fast = _money_format(currency, locale)
    if fast is not None and isinstance(amount, (Decimal, int)) and amount >= 0:
        return fast.format(amount)
    return format_currency(amount, currency, locale=babel_locale(locale))


# Checked against Babel before a fast format is trusted: rounding ties both ways, grouping at every
# size a balance reaches, and the fraction's edge (.995 rounds into the next unit).
_MONEY_SAMPLES = tuple(Decimal(s) for s in ("0", "0.5", "0.125", "0.135", "1", "7.2", "12.345", "999.995", "1000",
                                            "12345.6", "100000", "1234567.891", "98765432.1", "123456789012.34"))


@dataclass(frozen=True)
class _MoneyFormat:
    """Babel's currency format for one (currency, locale), reduced to prefix, separators and suffix.

    Babel re-applies the locale's pattern on every call (about 70 µs; six calls a plan
    offer message); this applies the same result with Python's own number formatting.
    """

    prefix: str
    suffix: str
    group: str
    decimal: str
    quantum: Decimal

    def format(self, amount: Decimal | int) -> str:
        digits = f"{Decimal(amount).quantize(self.quantum, rounding=ROUND_HALF_EVEN):,f}"
        return self.prefix + digits.translate({44: self.group, 46: self.decimal}) + self.suffix


@lru_cache(maxsize=256)
def _money_format(currency: str, locale: str | None) -> _MoneyFormat | None:
    """The fast format for (currency, locale), or None where it would differ from Babel on any sample
    (a locale grouping in lakhs, other digits, an unknown currency): those are left to Babel."""
    babel = babel_locale(locale)
    try:
        places = get_currency_precision(currency)
        sample = format_currency(Decimal("1234567.891"), currency, locale=babel)
    except Exception:  # noqa: BLE001 - an unknown currency: Babel says why, at the call
        return None
    match = re.search(r"1(\D)234(\D)56\d(?:(\D)(\d+))?", sample)
    if match is None:
        return None
    group = match.group(1)
    if match.group(2) != group:
        return None
    fast = _MoneyFormat(prefix=sample[:match.start()], suffix=sample[match.end():], group=group,
                        decimal=match.group(3) or ".", quantum=Decimal(1).scaleb(-places))
    for value in _MONEY_SAMPLES:
        if fast.format(value) != format_currency(value, currency, locale=babel):
            return None
    return fast


@lru_cache(maxsize=4096)
def format_day(day: date, locale: str | None) -> str:
    # Cached: a run's messages share a handful of due and instalment dates.
    return format_date(day, format="long", locale=babel_locale(locale))


class TemplateLibrary:
    """Finds and renders templates from one directory."""

    def __init__(self, root: Path):
        self.root = Path(root)
        loader = FileSystemLoader(str(self.root))
        # auto_reload off: a library renders the templates as they were when it loaded them (their versions
        # are hashed once), and no message pays for a stat() of its template file (under the GIL, each
        # stat handed the other chunk thread the interpreter: a fifth of a chunk's time, issue 12's profile).
        self._plain = Environment(loader=loader, undefined=StrictUndefined, autoescape=False, auto_reload=False,
                                  keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True)
        self._html = Environment(loader=loader, undefined=StrictUndefined, autoescape=True, auto_reload=False,
                                 trim_blocks=True, lstrip_blocks=True)
        self._loaded: dict[tuple[int, str], Any] = {}
        for env in (self._plain, self._html):
            env.filters["money"] = lambda amount, currency, locale: format_money(amount, currency, locale)
            env.filters["day"] = format_day

    @lru_cache(maxsize=1024)
    def resolve(self, stage: str, channel: str, locale: str | None, variant: str | None) -> str:
        """The most specific template that exists: variant, then locale, then the default locale."""
        candidates = []
        for loc in dict.fromkeys([locale or DEFAULT_LOCALE, DEFAULT_LOCALE]):
            if variant:
                candidates.append(f"{stage}/{channel}.{loc}.{variant}.j2")
            candidates.append(f"{stage}/{channel}.{loc}.j2")
        for name in candidates:
            if (self.root / name).is_file():
                return name
        raise RenderError("no_template", f"no template for {stage}/{channel} locale {locale} variant {variant}")

    @lru_cache(maxsize=256)
    def version(self, name: str) -> str:
        return hashlib.sha256((self.root / name).read_bytes()).hexdigest()[:12]

    def _template(self, env: Environment, name: str):
        template = self._loaded.get((id(env), name))
        if template is None:
            template = env.get_template(name)
            # Jinja keeps a template's globals as a ChainMap over the environment's, and walks it twice for
            # every context (a tenth of a chunk's time in issue 12's profile); nothing adds globals after
            # loading here, so a plain copy answers the same.
            template.globals = dict(template.globals)
            self._loaded[(id(env), name)] = template
        return template

    def _blocks(self, channel: str) -> list[tuple[Environment, tuple[str, ...]]]:
        """The channel's blocks grouped by the environment that renders them, in the channel's order."""
        plain = tuple(b for b in BLOCKS[channel] if b != "html")
        html = tuple(b for b in BLOCKS[channel] if b == "html")
        return [(env, blocks) for env, blocks in ((self._plain, plain), (self._html, html)) if blocks]

    def render(self, name: str, channel: str, context: dict[str, Any]) -> RenderedContent:
        """Render one message; any failure is a ``RenderError`` for this message alone.

        Whatever goes wrong inside a template (a Jinja error, or ``{{ name + 1 }}``
        raising ``TypeError``) fails that message, never the run. The error's
        detail names the template, the line and the class of the error, never its
        text: Jinja's messages can echo values (``'dict object' has no attribute
        'Grace Garcia'``), and ``detail`` holds no personal data.
        """
        parts: dict[str, str | None] = {}
        template = None
        try:
            # One context per environment (plain, html), shared by its blocks.
            for env, blocks in self._blocks(channel):
                template = self._template(env, name)
                missing = [block for block in blocks if block not in template.blocks]
                if missing:
                    raise RenderError("template_error", f"{name}: no '{missing[0]}' block")
                ctx = template.new_context(context)
                for block in blocks:
                    parts[block] = "".join(template.blocks[block](ctx)).strip()
        except RenderError:
            raise
        except TemplateNotFound as exc:
            raise RenderError("no_template", f"{name}: TemplateNotFound") from exc
        except Exception as exc:  # noqa: BLE001 - one message's failure, whatever it is, is that message's
            raise RenderError("template_error", error_detail(name, exc, template)) from exc
        return RenderedContent(
            template=name,
            template_version=self.version(name),
            subject=parts.get("subject"),
            text=parts["text"] or "",
            html=parts.get("html"),
        )


def error_detail(name: str, exc: BaseException, template: Any = None) -> str:
    """``soft_nudge/email.en-US.j2 line 4: UndefinedError``: where and what, never the error's text.

    The line is the template's: the compiled template's frame in the traceback is
    mapped back through its debug information (a syntax error carries it itself).
    """
    line = getattr(exc, "lineno", None)
    traceback = exc.__traceback__
    while traceback is not None:
        if template is not None and traceback.tb_frame.f_code.co_filename.endswith(name):
            line = template.get_corresponding_lineno(traceback.tb_lineno)
        traceback = traceback.tb_next
    return f"{name}{f' line {line}' if line else ''}: {type(exc).__name__}"


def check_required_content(content: RenderedContent, facts: MessageFacts) -> None:
    """Every electronic collection message states amount, due date, how to pay, how to opt out."""
    missing = [
        label
        for label, needle in (("amount", facts.amount), ("due date", facts.due_date),
                              ("how to pay", facts.pay_url), ("opt-out", facts.opt_out))
        if needle not in content.text or (content.html is not None and _html_lacks(content.html, needle))
    ]
    if missing:
        raise RenderError("content_incomplete", f"{content.template} lacks {', '.join(missing)}")


def _html_lacks(html: str, needle: str) -> bool:
    from markupsafe import escape

    return needle not in html and str(escape(needle)) not in html


def plan_option_view(option: PlanOption, locale: str | None) -> dict[str, Any]:
    """An instalment option as templates use it.

    ``amount`` is each regular instalment; when the split is uneven the first
    differs (``first_differs``, ``first_amount``) and ``rest_count`` instalments
    of ``amount`` follow it, so a template can say exactly which one differs.
    """
    first = option.instalments[0]
    return {
        "count": option.count,
        "amount": format_money(option.regular_amount, option.currency, locale),
        "first_amount": format_money(first.amount, option.currency, locale),
        "first_differs": option.first_differs,
        "rest_count": option.count - 1,
        "first_due": format_day(first.due_date, locale),
        "total": format_money(option.total, option.currency, locale),
    }
