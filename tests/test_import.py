"""Portfolio import: good rows load, each bad row is named by file, row and field."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from campaigns.db.models import Account, Customer, Dispute
from campaigns.portfolio.importer import COLUMNS, PortfolioFileError, import_portfolio
from tests.conftest import NOW

GOOD = {
    "account_id": "A1", "customer_id": "C1", "name": "Ada Lovelace", "email": "ada@example.com",
    "phone": "+12125550123", "locale": "en-US", "timezone": "America/New_York", "country": "US",
    "currency": "USD", "balance": "500.00", "amount_due": "125.50", "due_date": "2026-11-25",
    "status": "open", "product": "card", "email_opt_out": "false", "sms_opt_out": "", "sms_consent": "yes",
    "disputed": "false", "cease_contact": "0",
}


def write_csv(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(**changes) -> dict:
    return {**GOOD, **changes}


def test_good_rows_load_with_normalised_values(engine, tmp_path):
    path = write_csv(tmp_path / "p.csv", [
        row(),
        row(account_id="A2", customer_id="C2", phone="(415) 555-0100", email="Bob@Example.COM",
            locale="zh_CN", country="cn", currency="cny", timezone="Asia/Shanghai"),
        row(account_id="A3", customer_id="C1", disputed="true"),
    ])
    report = import_portfolio(engine, path, now=NOW)
    assert report.ok and report.accounts_loaded == 3 and report.customers_loaded == 2
    assert report.disputes_opened == 1
    with engine.connect() as conn:
        a1 = conn.execute(select(Account).where(Account.id == "A1")).one()
        c2 = conn.execute(select(Customer).where(Customer.id == "C2")).one()
        disputes = conn.execute(select(func.count()).select_from(Dispute)).scalar_one()
    assert a1.amount_due == Decimal("125.50") and isinstance(a1.amount_due, Decimal)
    assert a1.due_date.isoformat() == "2026-11-25"
    assert c2.locale == "zh-CN" and c2.country == "CN" and c2.email == "Bob@example.com"
    assert c2.phone is not None and c2.phone.startswith("+")
    assert disputes == 1


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"due_date": "2026-13-01"}, "due_date", "is not a date"),
        ({"due_date": "25/11/2026"}, "due_date", "is not a date"),
        ({"balance": "-5"}, "balance", "is negative"),
        ({"amount_due": "lots"}, "amount_due", "is not a number"),
        ({"amount_due": "NaN"}, "amount_due", "is not a finite number"),
        ({"currency": "XYZ"}, "currency", "ISO 4217"),
        ({"currency": "JPY", "balance": "100.50", "amount_due": "100"}, "balance", "more decimals than JPY"),
        ({"email": "not-an-email"}, "email", "not a valid email"),
        ({"phone": "12345"}, "phone", "not a valid phone number"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not an IANA time zone"),
        ({"account_id": ""}, "account_id", "is required"),
        ({"status": "lost"}, "status", "is not one of"),
        ({"sms_consent": "maybe"}, "sms_consent", "is not true/false"),
        ({"country": "XX"}, "country", "ISO 3166"),
        ({"locale": "not a locale"}, "locale", "not a known locale"),
    ],
)
def test_a_bad_row_is_reported_and_the_others_still_load(engine, tmp_path, changes, field, message):
    path = write_csv(tmp_path / "p.csv", [row(), row(**{"account_id": "A2", "customer_id": "C2", **changes}),
                                          row(account_id="A3", customer_id="C3")])
    report = import_portfolio(engine, path, now=NOW)
    assert report.accounts_loaded == 2 and report.rows_rejected == 1
    [error] = [e for e in report.errors if e.field == field]
    assert error.row == 3  # header is row 1: the second account is row 3
    assert message in error.message
    assert str(error).startswith(f"{path}: row 3, field {field}: ")
    with engine.connect() as conn:
        assert set(conn.execute(select(Account.id)).scalars()) == {"A1", "A3"}


def test_errors_never_echo_personal_data(engine, tmp_path):
    path = write_csv(tmp_path / "p.csv", [row(email="secret.person@@nowhere", phone="555-SECRET")])
    report = import_portfolio(engine, path, now=NOW)
    text = "\n".join(str(e) for e in report.errors)
    assert {e.field for e in report.errors} == {"email", "phone"}
    assert "secret" not in text.lower() and "555" not in text


def test_one_row_with_several_bad_fields_reports_each(engine, tmp_path):
    path = write_csv(tmp_path / "p.csv", [row(due_date="soon", currency="ZZZ", balance="-1")])
    report = import_portfolio(engine, path, now=NOW)
    assert {e.field for e in report.errors} == {"due_date", "currency", "balance"}
    assert report.rows_rejected == 1


def test_duplicate_account_in_file_is_an_error_naming_the_first(engine, tmp_path):
    path = write_csv(tmp_path / "p.csv", [row(), row(balance="1.00")])
    report = import_portfolio(engine, path, now=NOW)
    assert report.accounts_loaded == 1
    assert [str(e).split(": ", 1)[1] for e in report.errors] == ["row 3, field account_id: duplicate of row 2"]


def test_unknown_and_missing_columns_reject_the_file(engine, tmp_path):
    with pytest.raises(PortfolioFileError, match="unknown column.*favourite_colour"):
        import_portfolio(engine, write_csv(tmp_path / "a.csv", [{**row(), "favourite_colour": "red"}],
                                           COLUMNS + ["favourite_colour"]))
    with pytest.raises(PortfolioFileError, match="missing required column.*due_date"):
        import_portfolio(engine, write_csv(tmp_path / "b.csv", [{k: v for k, v in row().items() if k != "due_date"}],
                                           [c for c in COLUMNS if c != "due_date"]))
    with pytest.raises(PortfolioFileError, match="no such file"):
        import_portfolio(engine, tmp_path / "missing.csv")
    (tmp_path / "c.xlsx").write_text("x")
    with pytest.raises(PortfolioFileError, match="unknown file type"):
        import_portfolio(engine, tmp_path / "c.xlsx")


def test_optional_columns_may_be_absent_or_blank(engine, tmp_path):
    required = ["account_id", "customer_id", "currency", "balance", "amount_due", "due_date"]
    path = write_csv(tmp_path / "p.csv", [{k: GOOD[k] for k in required}], required)
    report = import_portfolio(engine, path, now=NOW)
    assert report.ok and report.accounts_loaded == 1
    with engine.connect() as conn:
        customer = conn.execute(select(Customer)).one()
    assert customer.locale == "en-US" and customer.email is None and customer.sms_consent is False


def test_parquet_import_and_upsert_updates_existing_rows(engine, tmp_path):
    frame = pd.DataFrame([row(), row(account_id="A2", customer_id="C2", due_date="not a date")])
    frame["balance"] = frame["balance"].astype(float)
    frame.to_parquet(tmp_path / "p.parquet")
    report = import_portfolio(engine, tmp_path / "p.parquet", now=NOW)
    assert report.accounts_loaded == 1
    assert [(e.row, e.field) for e in report.errors] == [(2, "due_date")]  # parquet: first record is row 1

    write_csv(tmp_path / "again.csv", [row(amount_due="99.99", status="paid")])
    assert import_portfolio(engine, tmp_path / "again.csv", now=NOW).ok
    with engine.connect() as conn:
        account = conn.execute(select(Account)).one()
        count = conn.execute(select(func.count()).select_from(Account)).scalar_one()
    assert count == 1 and account.amount_due == Decimal("99.99") and account.status == "paid"
