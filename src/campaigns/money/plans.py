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
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from campaigns.money.currency import in_currency, minor_unit


class PlanFee(BaseModel):
    """An optional fee for spreading the payments: a percentage of the balance and/or a fixed amount per currency."""

    model_config = ConfigDict(extra="forbid")
    percent: Decimal = Field(default=Decimal(0), ge=0, le=25)
    fixed: dict[str, Decimal] = Field(default_factory=dict)

    def amount(self, balance: Decimal, currency: str) -> Decimal:
        fee = balance * self.percent / 100 + self.fixed.get(currency, Decimal(0))
        return Decimal(fee).quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)


class PlanRules(BaseModel):
    """How instalment options are made (the ``plans`` block of a stage in the ladder config)."""

    model_config = ConfigDict(extra="forbid")
    counts: list[int] = Field(min_length=1)
    frequency: Literal["monthly", "fortnightly"] = "monthly"
    first_due_in_days: int = Field(default=7, ge=1, le=60, description="from the offer to the first instalment")
    offer_valid_days: int = Field(default=14, ge=1, le=90)
    max_start_days: int = Field(default=30, ge=1, le=365,
                                description="a plan's first instalment at most this many days after its offer")
    min_instalment: dict[str, Decimal] = Field(default_factory=dict, description="per currency; others: none")
    fee: PlanFee = Field(default_factory=PlanFee)
    break_after_days: int = Field(default=10, ge=0, le=90,
                                  description="an instalment this many days unpaid after its date breaks the plan")

    @field_validator("counts")
    @classmethod
    def _counts(cls, counts: list[int]) -> list[int]:
        if any(n < 2 or n > 60 for n in counts):
            raise ValueError("an instalment plan has between 2 and 60 instalments")
        if len(set(counts)) != len(counts):
            raise ValueError("an instalment count is listed twice")
        return sorted(counts)

    @field_validator("min_instalment")
    @classmethod
    def _minimums(cls, minimums: dict[str, Decimal]) -> dict[str, Decimal]:
        return {code.upper(): amount for code, amount in minimums.items()}

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if any(amount < 0 for amount in self.min_instalment.values()):
            raise ValueError("a minimum instalment cannot be negative")
        return self


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
    total = in_currency(balance, currency) + rules.fee.amount(in_currency(balance, currency), currency)
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
