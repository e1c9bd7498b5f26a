"""Cells that a spreadsheet would run as formulas are written as text.

Agents open exports in Excel or LibreOffice. A cell that begins with ``=``,
``+``, ``-`` or ``@`` (or a tab or carriage return, which some programs skip
before reading one of those) is a formula there: a customer named
``=HYPERLINK("http://evil", "Click")`` must stay a name. OWASP's advice is to
put a single quote in front, which the spreadsheet shows as text and hides.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise(values: Iterable[Any]) -> list[Any]:
    return [neutralise_cell(v) for v in values]


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every text cell of ``frame`` made safe for a spreadsheet (numbers are left alone)."""
    safe = frame.copy()
    for column in safe.columns:
        if pd.api.types.is_object_dtype(safe[column]) or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_cell)
    return safe
