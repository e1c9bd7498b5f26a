"""Import a portfolio export (CSV or Parquet, one row per account), upserting customers and accounts.

Every bad row is reported with the file, its row number and the field, and the
good rows still load. Row numbers are as a spreadsheet shows them: in a CSV the
header is row 1 and the first account row 2; in Parquet the first record is row 1.
Values of personal fields (name, email, phone) are never echoed in errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

import pandas as pd
import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.numbers import get_currency_precision, list_currencies
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine, and_, insert, select

from campaigns.db.engine import upsert
from campaigns.db.models import Account, Customer, Dispute

REQUIRED = ["account_id", "customer_id", "currency", "balance", "amount_due", "due_date"]
OPTIONAL = [
    "name", "email", "phone", "locale", "timezone", "country", "status", "product",
    "email_opt_out", "sms_opt_out", "sms_consent", "disputed", "cease_contact",
    "email_is_employer", "email_employer_consent", "vulnerable", "time_barred", "push_enabled", "push_opt_out",
]
FLAGS = ("email_opt_out", "sms_opt_out", "sms_consent", "disputed", "cease_contact", "email_is_employer",
         "email_employer_consent", "vulnerable", "time_barred", "push_enabled", "push_opt_out")
COLUMNS = REQUIRED + OPTIONAL
# An opt-out we hold (from a reply, an unsubscribe, the CLI) outlives a re-import that says "false".
OPT_OUTS = ("email_opt_out", "sms_opt_out", "push_opt_out")
PERSONAL = {"name", "email", "phone"}
STATUSES = {"open", "paid", "closed"}
TRUE = {"true", "t", "yes", "y", "1"}
FALSE = {"false", "f", "no", "n", "0", ""}
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
BATCH = 1000


class PortfolioFileError(Exception):
    """The file as a whole cannot be read (missing, unknown format, wrong columns)."""


@dataclass(frozen=True)
class RowError:
    file: str
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: row {self.row}, field {self.field}: {self.message}"


@dataclass
class ImportReport:
    file: str
    rows_read: int = 0
    accounts_loaded: int = 0
    customers_loaded: int = 0
    disputes_opened: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return len({e.row for e in self.errors})

    @property
    def ok(self) -> bool:
        return not self.errors


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(code for code in Locale("en").territories if len(code) == 2 and code.isalpha() and code != "ZZ")


def read_portfolio_file(path: Path) -> tuple[pd.DataFrame, int]:
    """Read the file as text cells; return the frame and the row number of its first record."""
    path = Path(path)
    if not path.is_file():
        raise PortfolioFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
            first_row = 2
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            first_row = 1
        else:
            raise PortfolioFileError(f"{path}: unknown file type {suffix!r}; use .csv or .parquet")
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, ValueError) as exc:
        raise PortfolioFileError(f"{path}: cannot be read: {type(exc).__name__}: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    unknown = [c for c in frame.columns if c not in COLUMNS]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if unknown:
        raise PortfolioFileError(f"{path}: unknown column(s) {', '.join(unknown)}; expected {', '.join(COLUMNS)}")
    if missing:
        raise PortfolioFileError(f"{path}: missing required column(s) {', '.join(missing)}")
    return frame, first_row


@lru_cache(maxsize=256)
def _normal_locale(tag: str) -> str | None:
    """``zh_CN``/``zh-cn``/``zh-Hans-CN`` → ``zh-CN``; None if Babel does not know it.

    Templates are named language-TERRITORY, so a script subtag is left out.
    """
    try:
        parsed = Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return None
    return "-".join(x for x in (parsed.language, parsed.territory) if x)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


class _RowParser:
    """Parses one row field by field, collecting errors instead of stopping at the first."""

    def __init__(self, file: str, row_number: int, values: dict[str, str], errors: list[RowError]):
        self.file, self.row, self.values, self.errors = file, row_number, values, errors

    def fail(self, field_name: str, message: str) -> None:
        self.errors.append(RowError(self.file, self.row, field_name, message))

    def shown(self, field_name: str) -> str:
        return "(value withheld: personal data)" if field_name in PERSONAL else repr(self.values[field_name])

    def required(self, field_name: str) -> str | None:
        value = self.values.get(field_name, "")
        if not value:
            self.fail(field_name, "is required")
            return None
        return value

    def identifier(self, field_name: str) -> str | None:
        value = self.required(field_name)
        if value is not None and not ID_PATTERN.match(value):
            self.fail(field_name, f"{value!r} is not a valid id (letters, digits, . _ : -; at most 64)")
            return None
        return value

    def currency(self) -> str | None:
        value = self.required("currency")
        if value is None:
            return None
        code = value.upper()
        if code not in _currencies():
            self.fail("currency", f"{value!r} is not an ISO 4217 currency code")
            return None
        return code

    def amount(self, field_name: str, currency: str | None) -> Decimal | None:
        value = self.required(field_name)
        if value is None:
            return None
        try:
            amount = Decimal(value)
        except InvalidOperation:
            self.fail(field_name, f"{value!r} is not a number")
            return None
        if not amount.is_finite():
            self.fail(field_name, f"{value!r} is not a finite number")
            return None
        if amount < 0:
            self.fail(field_name, f"{value} is negative")
            return None
        if currency is not None:
            places = get_currency_precision(currency)
            if -amount.as_tuple().exponent > places and amount != amount.quantize(Decimal(1).scaleb(-places)):
                self.fail(field_name, f"{value} has more decimals than {currency} allows ({places})")
                return None
        return amount

    def day(self, field_name: str) -> date | None:
        value = self.required(field_name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value[:10] if "T" in value or " " in value else value)
        except ValueError:
            self.fail(field_name, f"{value!r} is not a date (YYYY-MM-DD)")
            return None

    def flag(self, field_name: str) -> bool:
        value = self.values.get(field_name, "").lower()
        if value in TRUE:
            return True
        if value not in FALSE:
            self.fail(field_name, f"{self.values[field_name]!r} is not true/false")
        return False

    def optional(self, field_name: str) -> str | None:
        return self.values.get(field_name) or None


def parse_row(file: str, row_number: int, values: dict[str, str], errors: list[RowError]):
    """Validate one row; return (customer, account, disputed) or None if it has errors."""
    before = len(errors)
    p = _RowParser(file, row_number, values, errors)
    account_id = p.identifier("account_id")
    customer_id = p.identifier("customer_id")
    currency = p.currency()
    balance = p.amount("balance", currency)
    amount_due = p.amount("amount_due", currency)
    due_date = p.day("due_date")

    status = (p.optional("status") or "open").lower()
    if status not in STATUSES:
        p.fail("status", f"{values['status']!r} is not one of {', '.join(sorted(STATUSES))}")

    country = p.optional("country")
    if country is not None:
        country = country.upper()
        if country not in _countries():
            p.fail("country", f"{values['country']!r} is not an ISO 3166 two-letter country code")
            country = None

    zone = p.optional("timezone")
    if zone is not None and zone not in _zones():
        p.fail("timezone", f"{zone!r} is not an IANA time zone")

    locale = _normal_locale(p.optional("locale") or "en-US")
    if locale is None:
        p.fail("locale", f"{values['locale']!r} is not a known locale (e.g. en-US, zh-CN)")

    email = p.optional("email")
    if email is not None:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            p.fail("email", "is not a valid email address (value withheld: personal data)")

    phone = p.optional("phone")
    if phone is not None:
        try:
            number = phonenumbers.parse(phone, country)
            if not phonenumbers.is_valid_number(number):
                raise phonenumbers.NumberParseException(0, "invalid")
            phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            hint = "" if country else "; give it in +<country code> form or fill in country"
            p.fail("phone", f"is not a valid phone number (value withheld: personal data){hint}")

    flags = {f: p.flag(f) for f in FLAGS}
    if len(errors) > before:
        return None
    customer = {
        "id": customer_id, "name": p.optional("name"), "email": email, "phone": phone, "locale": locale,
        "timezone": zone, "country": country, "email_opt_out": flags["email_opt_out"],
        "sms_opt_out": flags["sms_opt_out"], "sms_consent": flags["sms_consent"],
        "email_is_employer": flags["email_is_employer"], "email_employer_consent": flags["email_employer_consent"],
        "vulnerable": flags["vulnerable"], "push_enabled": flags["push_enabled"],
        "push_opt_out": flags["push_opt_out"],
    }
    account = {
        "id": account_id, "customer_id": customer_id, "currency": currency, "balance": balance,
        "amount_due": amount_due, "due_date": due_date, "status": status, "product": p.optional("product"),
        "cease_contact": flags["cease_contact"], "time_barred": flags["time_barred"],
    }
    return customer, account, flags["disputed"]


def import_portfolio(engine: Engine, path: Path, now: datetime | None = None) -> ImportReport:
    """Validate and upsert a portfolio file. File-level problems raise ``PortfolioFileError``."""
    now = now or datetime.now(timezone.utc)
    frame, first_row = read_portfolio_file(path)
    report = ImportReport(file=str(path), rows_read=len(frame))
    columns = list(frame.columns)
    seen: dict[str, int] = {}
    customers: dict[str, dict] = {}
    accounts: list[dict] = []
    disputed: list[str] = []
    for offset, raw in enumerate(frame.itertuples(index=False, name=None)):
        row_number = first_row + offset
        values = {c: _text(v) for c, v in zip(columns, raw)}
        parsed = parse_row(report.file, row_number, values, report.errors)
        if parsed is None:
            continue
        customer, account, is_disputed = parsed
        if account["id"] in seen:
            report.errors.append(RowError(report.file, row_number, "account_id",
                                          f"duplicate of row {seen[account['id']]}"))
            continue
        seen[account["id"]] = row_number
        customers[customer["id"]] = {**customer, "created_at": now, "updated_at": now}
        accounts.append({**account, "created_at": now, "updated_at": now})
        if is_disputed:
            disputed.append(account["id"])

    customer_rows = list(customers.values())
    with engine.begin() as conn:
        for i in range(0, len(customer_rows), BATCH):
            upsert(conn, Customer.__table__, customer_rows[i:i + BATCH], ["id"], keep_on_update=["created_at"],
                   only_set=OPT_OUTS)
        for i in range(0, len(accounts), BATCH):
            upsert(conn, Account.__table__, accounts[i:i + BATCH], ["id"], keep_on_update=["created_at"])
        report.disputes_opened = _open_disputes(conn, disputed, now)
    report.accounts_loaded = len(accounts)
    report.customers_loaded = len(customer_rows)
    return report


def _open_disputes(conn, account_ids: list[str], now: datetime) -> int:
    """A ``disputed`` flag opens a dispute unless one is open; it never resolves one (agents do)."""
    opened = 0
    for i in range(0, len(account_ids), BATCH):
        batch = account_ids[i:i + BATCH]
        already = set(conn.execute(
            select(Dispute.account_id).where(and_(Dispute.account_id.in_(batch), Dispute.resolved_at.is_(None)))
        ).scalars())
        rows = [{"account_id": a, "opened_at": now, "resolved_at": None, "source": "import"}
                for a in batch if a not in already]
        if rows:
            conn.execute(insert(Dispute.__table__), rows)
            opened += len(rows)
    return opened
