"""Instalment plans: the options offered, their schedules, and how a payment is shared among instalments.

Everything here is pure: amounts in the currency's minor unit (0, 2 or 3
decimals), instalments that add up exactly to what is split, never below the
configured minimum instalment, and payments allocated oldest instalment first.
The rules come from the ``plans`` block of the ``plan_offer`` stage in
``config/ladder.yaml``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from campaigns.ladder.config import PlanFee, PlanRules
from campaigns.money.currency import in_currency, minor_unit


def plan_fee(fee: PlanFee, balance: Decimal, currency: str) -> Decimal:
    """The fee for spreading ``balance``: its percentage plus the currency's fixed part, in the minor unit."""
    amount = balance * fee.percent / 100 + fee.fixed.get(currency, Decimal(0))
    return Decimal(amount).quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)


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


def instalment_dates(first_due: date, count: int, frequency: str = "monthly") -> list[date]:
    if frequency == "fortnightly":
        return [first_due + timedelta(days=14 * i) for i in range(count)]
    return [add_months(first_due, i) for i in range(count)]


def instalment_options(
    total: Decimal, currency: str, counts: list[int], first_due: date, frequency: str = "monthly"
) -> list[PlanOption]:
    """One plan per count: equal instalments (monthly or fortnightly) starting on ``first_due``."""
    options = []
    for count in counts:
        amounts = split_evenly(total, count, currency)
        options.append(PlanOption(
            count=count,
            currency=currency,
            instalments=tuple(
                Instalment(day, amount) for day, amount in zip(instalment_dates(first_due, count, frequency), amounts)
            ),
        ))
    return options


def affordable_counts(total: Decimal, currency: str, rules: PlanRules) -> list[int]:
    """The configured counts whose every instalment is at least the currency's minimum.

    A balance too small for any of them is offered the largest count that still
    meets the minimum (at least 2); a balance too small for two instalments gets
    no plan at all: it is asked for in one payment.
    """
    minimum = rules.min_instalment.get(currency)
    if minimum is None or minimum <= 0:
        return list(rules.counts)
    exponent = minor_unit(currency)
    minor_total = int(in_currency(total, currency) / exponent)
    minor_minimum = int(in_currency(minimum, currency) / exponent)
    fits = [n for n in rules.counts if minor_total // n >= minor_minimum]
    if fits:
        return fits
    largest = minor_total // minor_minimum if minor_minimum else 0
    return [largest] if largest >= 2 else []


def offer_options(balance: Decimal, currency: str, rules: PlanRules, offered_on: date) -> list[PlanOption]:
    """The options offered on ``offered_on`` for ``balance`` (plus the fee, if one is configured)."""
    total = in_currency(balance, currency) + plan_fee(rules.fee, in_currency(balance, currency), currency)
    if total <= 0:
        return []
    first_due = offered_on + timedelta(days=rules.first_due_in_days)
    return instalment_options(total, currency, affordable_counts(total, currency, rules), first_due, rules.frequency)


def allocate(outstanding: list[Decimal], amount: Decimal) -> tuple[list[Decimal], Decimal]:
    """Share ``amount`` among instalments, oldest first: (what each receives, what is left over).

    ``outstanding`` is what each instalment still lacks, in due order. A partial
    payment fills the oldest first; an over-payment fills every one and the rest
    is returned (the caller keeps it as a credit).
    """
    if amount < 0:
        raise ValueError("cannot allocate a negative amount")
    shares = []
    left = amount
    for lacking in outstanding:
        share = min(max(lacking, Decimal(0)), left)
        shares.append(share)
        left -= share
    return shares, left
