"""Instalment options add up exactly to the balance, in the currency's minor unit."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.money.plans import add_months, instalment_options, split_evenly


def test_the_remainder_goes_to_the_first_instalment_alone():
    """Only one instalment differs, so a message can name it: 'the first of $16.70, then 5 of $16.67'."""
    assert split_evenly(Decimal("100.00"), 3, "USD") == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert split_evenly(Decimal("100.05"), 6, "USD") == [Decimal("16.70")] + [Decimal("16.67")] * 5
    assert split_evenly(Decimal("2548.28"), 3, "CNY") == [Decimal("849.44"), Decimal("849.42"), Decimal("849.42")]


def test_currencies_without_minor_units_split_in_whole_units():
    assert split_evenly(Decimal("1000"), 3, "JPY") == [Decimal(334), Decimal(333), Decimal(333)]
    assert split_evenly(Decimal("10.000"), 3, "KWD") == [Decimal("3.334"), Decimal("3.333"), Decimal("3.333")]
    assert split_evenly(Decimal("10.003"), 3, "KWD") == [Decimal("3.335"), Decimal("3.334"), Decimal("3.334")]


@given(
    minor=st.integers(min_value=0, max_value=10**9),
    count=st.integers(min_value=1, max_value=48),
    currency=st.sampled_from(["USD", "CNY", "JPY", "KWD", "EUR"]),
)
def test_any_split_adds_up_exactly_and_only_the_first_differs(minor, count, currency):
    from babel.numbers import get_currency_precision

    total = Decimal(minor).scaleb(-get_currency_precision(currency))
    parts = split_evenly(total, count, currency)
    assert sum(parts) == total and len(parts) == count
    unit = Decimal(1).scaleb(-get_currency_precision(currency))
    assert len(set(parts[1:])) <= 1 and 0 <= parts[0] - parts[-1] <= (count - 1) * unit


def test_options_are_monthly_from_the_first_due_date():
    [three, six] = instalment_options(Decimal("600.01"), "USD", [3, 6], date(2026, 1, 31))
    assert three.total == six.total == Decimal("600.01")
    assert [i.due_date for i in three.instalments] == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]
    assert three.regular_amount == Decimal("200.00") and three.instalments[0].amount == Decimal("200.01")


def test_add_months_clamps_to_month_end():
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


def test_bad_splits_are_refused():
    with pytest.raises(ValueError):
        split_evenly(Decimal("1"), 0, "USD")
    with pytest.raises(ValueError):
        split_evenly(Decimal("-1"), 2, "USD")
