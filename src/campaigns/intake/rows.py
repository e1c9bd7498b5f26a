"""Reading files of rows (CSV or Parquet) that people hand over: the portfolio export, payment files.

A file is read as a stream of records (``RowSource``), each parsed field by field (``RowParser``) so that a bad
row is reported with the file, its row number and the field (``RowError``) and the other rows still load
(``FileReport``). A row number is the line a person sees in an editor: in a CSV the header is line 1, blank lines
count, and a record that spans several lines (a quoted newline) is numbered by its first line; in Parquet the first
record is row 1. Values of personal fields are never echoed in errors, and no cell of a file is shown as a column
name. What a row *means* (an account, a payment) is its reader's: ``campaigns.portfolio.importer`` and
``campaigns.money.payments``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.numbers import get_currency_precision, list_currencies

from campaigns.db.models import Account, Customer

READ_BATCH = 1000  # Parquet records decoded at a time
PERSONAL = {"name", "email", "phone"}
TRUE = {"true", "t", "yes", "y", "1"}
FALSE = {"false", "f", "no", "n", "0", ""}
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# C0 and C1 control characters (NUL above all: PostgreSQL refuses it in text); tab is allowed.
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# A header cell shown in an error must look like a column name, never like a cell of data.
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")
# Where each imported text field is stored, so its length limit is the schema's own.
# (Phone numbers and locales are checked once normalised: E.164 and language-TERRITORY are always short.)
STORED_AS = {
    "name": Customer.__table__.c.name, "email": Customer.__table__.c.email,
    "timezone": Customer.__table__.c.timezone, "product": Account.__table__.c.product,
}
# Money columns are Numeric(18, 4): at most 14 digits before the point.
MONEY_LIMIT = Decimal(10) ** (Account.__table__.c.balance.type.precision - Account.__table__.c.balance.type.scale)

class RowFileError(Exception):
    """The file as a whole cannot be read (missing, unknown format, no header, wrong columns)."""


@dataclass(frozen=True)
class RowError:
    file: str
    row: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}, field {self.field}" if self.field else f"row {self.row}"
        return f"{self.file}: {where}: {self.message}"


@dataclass
class FileReport:
    """What reading a file of rows gave: how many rows, and each bad row's errors."""

    file: str
    rows_read: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return len({e.row for e in self.errors})

    @property
    def ok(self) -> bool:
        return not self.errors

@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())

@dataclass(frozen=True)
class Record:
    """One record of the file: where it starts, its cells by column, and what went wrong reading it."""

    row: int
    values: dict[str, str]
    problem: str | None = None  # the record as a whole (wrong number of cells, unreadable CSV)
    undecodable: bool = False  # some byte on its lines is not UTF-8


class RowSource:
    """A file of rows (a portfolio, payments: its ``required`` and ``optional`` columns) opened for streaming:
    its columns, then its records one by one."""

    def __init__(self, path: Path, required: list[str], optional: list[str], row_is: str):
        self.path = Path(path)
        self.required = required
        self.columns = self.required + optional
        self.row_is = row_is  # what one row of the file stands for, in messages
        if self.path.is_dir():
            raise RowFileError(f"{self.path}: is a directory; give the file itself (CSV or Parquet)")
        if not self.path.is_file():
            raise RowFileError(f"{self.path}: no such file")
        suffix = self.path.suffix.lower()
        self.completed = 0  # how far reading has got: bytes of a CSV, records of a Parquet file
        if suffix == ".csv":
            self.kind, self.total = "csv", self.path.stat().st_size
        elif suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            self.kind = "parquet"
            try:
                self._parquet_file = pq.ParquetFile(self.path)
            except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
                raise RowFileError(f"{self.path}: not a readable Parquet file ({type(exc).__name__})") from None
            self.total = self._parquet_file.metadata.num_rows
        else:
            raise RowFileError(f"{self.path}: unknown file type {suffix!r}; use .csv or .parquet")

    def records(self) -> Iterator[Record]:
        try:
            yield from (self._csv() if self.kind == "csv" else self._parquet())
        except OSError as exc:
            raise RowFileError(f"{self.path}: cannot be read: {type(exc).__name__}") from None

    def _csv(self) -> Iterator[Record]:
        undecodable: set[int] = set()

        def lines(handle) -> Iterator[str]:
            for number, raw in enumerate(handle, start=1):
                self.completed += len(raw)
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    undecodable.add(number)
                    yield raw.decode("utf-8", errors="replace")

        with self.path.open("rb") as handle:
            reader = csv.reader(lines(handle))
            columns: list[str] | None = None
            last_line = 0
            while True:
                try:
                    cells = next(reader)
                    problem = None
                except StopIteration:
                    break
                except csv.Error as exc:  # e.g. a cell longer than the csv module's field limit
                    cells, problem = None, f"cannot be read as CSV ({exc})"
                first_line, last_line = last_line + 1, reader.line_num
                if cells is not None and not any(c.strip() for c in cells):
                    continue  # a blank line, or one of only commas
                if columns is None:
                    if cells is None:
                        raise RowFileError(f"{self.path}: the header row cannot be read as CSV")
                    columns = _checked_columns(self.path, cells, self.required, self.columns)
                    continue
                bad_bytes = any(n in undecodable for n in range(first_line, last_line + 1))
                if cells is not None and len(cells) != len(columns):
                    problem = f"has {len(cells)} cells; the header has {len(columns)}"
                values = {} if problem else {c: v.strip() for c, v in zip(columns, cells)}
                yield Record(first_line, values, problem, bad_bytes)
            if columns is None:
                raise RowFileError(f"{self.path}: the file is empty: it needs a header row and one row per "
                                         f"{self.row_is}")

    def _parquet(self) -> Iterator[Record]:
        parquet = self._parquet_file
        columns = _checked_columns(self.path, [str(n) for n in parquet.schema_arrow.names], self.required,
                                   self.columns)
        row = 0
        for batch in parquet.iter_batches(batch_size=READ_BATCH):
            for item in batch.to_pylist():
                row += 1
                self.completed = row
                yield Record(row, {c: _text(item.get(c)) for c in columns})


def _checked_columns(path: Path, names: list[str], required: list[str], columns: list[str]) -> list[str]:
    """The header's column names, or a file error that says what is wrong (never echoing a data cell)."""
    names = [str(n).strip() for n in names]
    if not any(n in columns for n in names):
        raise RowFileError(
            f"{path}: has no header row: its first row names none of the columns; "
            f"the file must start with column names such as {', '.join(required)}"
        )
    unknown = [n if COLUMN_NAME.match(n) else f"column {i} (name withheld)"
               for i, n in enumerate(names, start=1) if n not in columns]
    if unknown:
        raise RowFileError(f"{path}: unknown column(s) {', '.join(unknown)}; expected {', '.join(columns)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise RowFileError(f"{path}: column(s) {', '.join(repeated)} appear more than once")
    missing = [c for c in required if c not in names]
    if missing:
        raise RowFileError(f"{path}: missing required column(s) {', '.join(missing)}")
    return names

def _text(value: Any) -> str:
    if value is None or value != value:  # None, NaN
        return ""
    if isinstance(value, datetime):  # a timestamp with its zone is kept whole (payments' paid_at)
        return value.isoformat() if value.tzinfo is not None else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


class RowParser:
    """Parses one row field by field, collecting errors instead of stopping at the first."""

    def __init__(self, file: str, row_number: int, values: dict[str, str], errors: list[RowError]):
        self.file, self.row, self.values, self.errors = file, row_number, values, errors
        self.bad: set[str] = set()

    def fail(self, field_name: str, message: str) -> None:
        self.bad.add(field_name)
        self.errors.append(RowError(self.file, self.row, field_name, message))

    def shown(self, field_name: str) -> str:
        """The value for an error message: withheld for personal fields, cut short otherwise."""
        if field_name in PERSONAL:
            return "(value withheld: personal data)"
        value = self.values[field_name]
        return repr(value if len(value) <= 40 else value[:40] + "…")

    def screen(self, undecodable: bool) -> None:
        """Checks every cell needs: valid UTF-8, no control characters, within the schema's length."""
        for name, value in self.values.items():
            if undecodable and "\ufffd" in value:
                self.fail(name, "is not valid UTF-8 text")
            elif CONTROL.search(value):
                self.fail(name, "contains a control character (such as NUL)")
            elif name in STORED_AS and len(value) > STORED_AS[name].type.length:
                self.fail(name, f"is {len(value)} characters long; at most {STORED_AS[name].type.length}")

    def get(self, field_name: str) -> str:
        return "" if field_name in self.bad else self.values.get(field_name, "")

    def required(self, field_name: str) -> str | None:
        if field_name in self.bad:
            return None
        value = self.values.get(field_name, "")
        if not value:
            self.fail(field_name, "is required")
            return None
        return value

    def identifier(self, field_name: str) -> str | None:
        value = self.required(field_name)
        if value is not None and not ID_PATTERN.match(value):
            self.fail(field_name, f"{self.shown(field_name)} is not a valid id (letters, digits, . _ : -; at most 64)")
            return None
        return value

    def currency(self) -> str | None:
        value = self.required("currency")
        if value is None:
            return None
        code = value.upper()
        if code not in _currencies():
            self.fail("currency", f"{self.shown('currency')} is not an ISO 4217 currency code")
            return None
        return code

    def amount(self, field_name: str, currency: str | None) -> Decimal | None:
        value = self.required(field_name)
        if value is None:
            return None
        try:
            amount = Decimal(value)
        except InvalidOperation:
            self.fail(field_name, f"{self.shown(field_name)} is not a number")
            return None
        if not amount.is_finite():
            self.fail(field_name, f"{self.shown(field_name)} is not a finite number")
            return None
        if amount < 0:
            self.fail(field_name, f"{self.shown(field_name)} is negative")
            return None
        if amount >= MONEY_LIMIT:
            self.fail(field_name, f"{self.shown(field_name)} is too large (at most 14 digits before the point)")
            return None
        if currency is None:
            return None  # its precision cannot be checked; the currency's own error says why
        unit = Decimal(1).scaleb(-get_currency_precision(currency))
        exact = amount.quantize(unit)
        if exact != amount:
            self.fail(field_name, f"{self.shown(field_name)} has more decimals than {currency} allows "
                                  f"({get_currency_precision(currency)})")
            return None
        return exact

    def day(self, field_name: str) -> date | None:
        value = self.required(field_name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
        try:  # a full ISO timestamp is accepted for its date; anything after it is not
            return datetime.fromisoformat(value).date()
        except ValueError:
            self.fail(field_name, f"{self.shown(field_name)} is not a date (YYYY-MM-DD)")
            return None

    def flag(self, field_name: str) -> bool:
        value = self.get(field_name).lower()
        if value in TRUE:
            return True
        if value not in FALSE:
            self.fail(field_name, f"{self.shown(field_name)} is not true/false")
        return False

    def optional(self, field_name: str) -> str | None:
        return self.get(field_name) or None
