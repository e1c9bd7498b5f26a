"""Instalment plans: options that add up exactly to the balance, in the currency's minor unit."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from campaigns.money.currency import in_currency, minor_unit


@dataclass(frozen=True)
class Instalment:
    due_date: date
    amount: Decimal


@dataclass(frozen=True)
class PlanOption:
    count: int
    currency: str
    instalments: tuple[Instalment, ...]

    @property
    def total(self) -> Decimal:
        return sum((i.amount for i in self.instalments), Decimal(0))

    @property
    def regular_amount(self) -> Decimal:
        """The amount of the later instalments (the first may carry the remainder)."""
        return self.instalments[-1].amount

    @property
    def first_differs(self) -> bool:
        return self.instalments[0].amount != self.regular_amount


def add_months(day: date, months: int) -> date:
    """Same day of month ``months`` later, clamped to the month's end (Jan 31 + 1 = Feb 28/29)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def split_evenly(total: Decimal, count: int, currency: str) -> list[Decimal]:
    """``count`` amounts in the currency's minor unit that add up exactly to ``total``.

    All are equal but the first, which carries the remainder of the division (at
    most ``count - 1`` minor units): a message can then say it plainly, "the first
    of $207.96, then 2 of $207.95", and every figure it states is exact.
    """
    if count < 1:
        raise ValueError("an instalment plan needs at least one instalment")
    if total < 0:
        raise ValueError("cannot split a negative amount")
    exponent = minor_unit(currency)
    minor_total = int(in_currency(total, currency) / exponent)
    base, remainder = divmod(minor_total, count)
    return [(Decimal(base + (remainder if i == 0 else 0)) * exponent).quantize(exponent) for i in range(count)]


def instalment_options(
    total: Decimal, currency: str, counts: list[int], first_due: date
) -> list[PlanOption]:
    """One plan per count: equal monthly instalments starting on ``first_due``."""
    options = []
    for count in counts:
        amounts = split_evenly(total, count, currency)
        options.append(PlanOption(
            count=count,
            currency=currency,
            instalments=tuple(
                Instalment(add_months(first_due, i), amount) for i, amount in enumerate(amounts)
            ),
        ))
    return options


def first_instalment_date(as_of: date, days_to_accept: int = 7) -> date:
    """When the first instalment of an offer made on ``as_of`` falls due."""
    return as_of + timedelta(days=days_to_accept)
