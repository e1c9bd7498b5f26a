"""Amounts in a currency's own minor unit (0, 2 or 3 decimals), as ISO 4217 (through Babel) says."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

from babel.numbers import get_currency_precision


@lru_cache(maxsize=512)  # Babel looks the currency up in its data on every call; a ledger asks millions of times
def minor_unit(currency: str) -> Decimal:
    """``Decimal("0.01")`` for USD, ``Decimal("1")`` for JPY, ``Decimal("0.001")`` for KWD."""
    return Decimal(1).scaleb(-get_currency_precision(currency))


def in_currency(amount: Decimal, currency: str) -> Decimal:
    """The amount with exactly the currency's decimals (``25.0000`` from the database → ``25.00``)."""
    return Decimal(amount).quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)
