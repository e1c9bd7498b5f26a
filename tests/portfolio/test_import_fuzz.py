"""Fuzz the importer: any single bad cell costs exactly its row, named by line and field, on both databases.

Each example writes a file of good rows with blank lines scattered between them,
breaks one cell of one row with a value drawn for that column, and checks that
the import reports exactly one error, on the line an editor shows and the field
that was broken, that every other row loads, and that no personal value of any
row appears in any error.
"""

from __future__ import annotations

import csv
import io
import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from campaigns.db.models import Account, Base
from campaigns.portfolio.importer import COLUMNS, import_portfolio
from tests.conftest import NOW
from tests.portfolio.test_import import GOOD

ROWS = 5


def long(n: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=n, max_value=n + 3000).map(lambda k: "x" * k)


def with_control(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\x85", "\n"]).map(lambda c: text[:1] + c + text[1:])


BAD = {
    "account_id": st.one_of(st.sampled_from(["", "has space", "ü-ü", "-lead"]), long(65), with_control("A9")),
    "customer_id": st.one_of(st.sampled_from(["", "has space", "C/1"]), long(65), with_control("C9")),
    "currency": st.sampled_from(["", "XYZ", "US", "dollars", "U$D"]),
    "balance": st.one_of(st.sampled_from(["", "abc", "NaN", "-Infinity", "-1", "1.001", "1e20", "1e-9", "5,00"]),
                         st.integers(min_value=10**14, max_value=10**40).map(str)),
    "amount_due": st.one_of(st.sampled_from(["", "lots", "sNaN", "-0.01", "0.001", "1E+15"]),
                            st.decimals(min_value=501, max_value=10**13, places=2).map(str)),  # > balance
    "due_date": st.sampled_from(["", "2026-13-01", "2026-02-30", "2026-11-30 garbage", "tomorrow", "30/11/2026",
                                 "2026-11-30T25:00"]),
    "name": st.one_of(long(201), with_control("Ada Lovelace")),
    "email": st.one_of(st.sampled_from(["not-an-email", "a@@b", "@example.com"]), with_control("ada@example.com"),
                       long(321).map(lambda s: s + "@example.com")),
    "phone": st.sampled_from(["12345", "555-SECRET", "+1" + "9" * 30, "+999 123"]),
    "locale": st.sampled_from(["not a locale", "xx-YY", "12"]),
    "timezone": st.one_of(st.sampled_from(["Mars/Olympus", "EST5EDT/x", "UTC+3"]), long(65)),
    "country": st.sampled_from(["XX", "USA", "1"]),
    "status": st.sampled_from(["lost", "OPEN!", "deleted"]),
    "product": st.one_of(long(65), with_control("card")),
    "sms_consent": st.sampled_from(["maybe", "2", "yes please"]),
    "vulnerable": st.sampled_from(["unknown", "-1"]),
}


def good_row(n: int) -> dict[str, str]:
    return {**GOOD, "account_id": f"A{n}", "customer_id": f"C{n}", "name": f"Person Number{n}",
            "email": f"person{n}@example.com", "phone": f"+1212555{n:04d}"}


def csv_line(values: dict[str, str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([values.get(c, "") for c in COLUMNS])
    return buffer.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_bad_cell_costs_exactly_its_row(engine, tmp_path, caplog, data):
    column = data.draw(st.sampled_from(sorted(BAD)), label="column")
    bad_value = data.draw(BAD[column], label="bad value")
    victim = data.draw(st.integers(min_value=0, max_value=ROWS - 1), label="bad row")
    blanks = data.draw(st.lists(st.integers(min_value=0, max_value=2), min_size=ROWS, max_size=ROWS), label="blanks")
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))

    rows = [good_row(n) for n in range(ROWS)]
    rows[victim] = {**rows[victim], column: bad_value}
    text, line, bad_line = csv_line({c: c for c in COLUMNS}), 1, None
    for n, values in enumerate(rows):
        text += "\n" * blanks[n]
        line += blanks[n] + 1
        if n == victim:
            bad_line = line
        rendered = csv_line(values)
        text += rendered
        line += rendered.count("\n") - 1  # a quoted line break makes a record span lines
    path = tmp_path / "fuzz.csv"
    path.write_text(text, encoding="utf-8")

    caplog.set_level(logging.DEBUG)
    caplog.clear()
    report = import_portfolio(engine, path, now=NOW)

    assert [(e.row, e.field) for e in report.errors] == [(bad_line, column)], report.errors
    with engine.connect() as conn:
        loaded = set(conn.execute(select(Account.id)).scalars())
    assert loaded == {f"A{n}" for n in range(ROWS) if n != victim}
    personal = [v for r in rows for k, v in r.items() if k in ("name", "email", "phone") and len(v) > 3]
    shown = "\n".join(map(str, report.errors)) + caplog.text
    assert not [v for v in personal if v in shown], "an error or a log line echoed personal data"
