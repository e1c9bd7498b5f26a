"""Payments: import (good, duplicate, conflicting and bad rows), what a payment does to the account, re-imports."""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from campaigns.attempts.log import attempt_row
from campaigns.db.models import Account, AgentWorklistItem, Base, CampaignRun, ContactAttempt, LedgerEntry, Payment
from campaigns.money.payments import (
    OPTIONAL,
    REQUIRED,
    PaymentError,
    import_payments,
    record_payment,
    store_processes,
)
from campaigns.portfolio.importer import import_portfolio
from campaigns.intake.rows import RowFileError
from tests.conftest import AS_OF, NOW
from tests.factories import add_account
from tests.portfolio.test_import import GOOD, write_csv as write_portfolio

ZONE = ZoneInfo("America/New_York")
COLUMNS = REQUIRED + OPTIONAL


def payment(**changes) -> dict:
    return {"payment_id": "P1", "account_id": "A1", "amount": "20.50", "currency": "USD",
            "paid_at": "2026-11-21T10:00:00-05:00", "method": "card", "reference": "INV-7", **changes}


def write_csv(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def account(engine, account_id: str = "A1"):
    with engine.connect() as conn:
        return conn.execute(select(Account).where(Account.id == account_id)).one()


def test_good_payments_lower_the_balance_and_the_amount_due(engine, tmp_path):
    add_account(engine, "A1", days_past_due=5)  # balance 600.00, amount due 120.50
    report = import_payments(engine, write_csv(tmp_path / "p.csv", [
        payment(), payment(payment_id="P2", amount="100", reference="", method=""),
    ]), NOW, ZONE)
    assert report.ok and report.payments_loaded == 2 and report.applied == {"USD": Decimal("120.50")}
    a = account(engine)
    assert (a.balance, a.amount_due, a.status, a.credit) == (Decimal("479.50"), Decimal("0"), "open", Decimal("0"))
    with engine.connect() as conn:
        stored = conn.execute(select(Payment.payment_id, Payment.method, Payment.reference, Payment.paid_at)
                              .order_by(Payment.payment_id)).all()
    assert stored[0].paid_at.isoformat() == "2026-11-21T15:00:00+00:00"
    assert [(p.payment_id, p.method, p.reference) for p in stored] == [("P1", "card", "INV-7"), ("P2", None, None)]


def test_the_same_file_twice_changes_nothing(engine, tmp_path):
    add_account(engine, "A1", days_past_due=5)
    path = write_csv(tmp_path / "p.csv", [payment()])
    import_payments(engine, path, NOW, ZONE)
    again = import_payments(engine, path, NOW, ZONE)
    assert again.ok and again.payments_loaded == 0 and again.already_recorded == 1
    assert account(engine).balance == Decimal("579.50")


def test_a_known_payment_id_with_other_values_is_an_error_for_its_row(engine, tmp_path):
    add_account(engine, "A1", days_past_due=5)
    import_payments(engine, write_csv(tmp_path / "a.csv", [payment()]), NOW, ZONE)
    report = import_payments(engine, write_csv(tmp_path / "b.csv", [
        payment(amount="20.51"), payment(payment_id="P3", amount="1"),
    ]), NOW, ZONE)
    assert [str(e) for e in report.errors] == [
        f"{tmp_path / 'b.csv'}: row 2, field amount: payment P1 is already recorded with a different amount"]
    assert report.payments_loaded == 1 and account(engine).balance == Decimal("578.50")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"currency": "EUR"}, "currency", "EUR is not the account's currency (USD)"),
    ({"account_id": "NOPE"}, "account_id", "'NOPE' is not a known account"),
    ({"amount": "0"}, "amount", "is zero"),
    ({"amount": "-5"}, "amount", "is negative"),
    ({"amount": "1.234"}, "amount", "more decimals than USD allows"),
    ({"paid_at": "2026-11-21T10:00:00"}, "paid_at", "has no UTC offset"),
    ({"paid_at": "yesterday"}, "paid_at", "is not an ISO 8601 timestamp"),
    ({"paid_at": "2027-01-01T00:00:00Z"}, "paid_at", "is in the future"),
    ({"payment_id": "has space"}, "payment_id", "is not a valid id"),
    ({"reference": "=cmd|' /C calc'!A0"}, "reference", "value withheld"),
])
def test_a_bad_row_costs_only_itself(engine, tmp_path, changes, field, message):
    add_account(engine, "A1", days_past_due=5)
    report = import_payments(engine, write_csv(tmp_path / "p.csv", [
        payment(payment_id="GOOD1"), payment(**{"payment_id": "BAD", **changes}), payment(payment_id="GOOD2"),
    ]), NOW, ZONE)
    [error] = report.errors
    assert (error.row, error.field) == (3, field) and message in error.message, str(error)
    assert report.payments_loaded == 2 and account(engine).balance == Decimal("559.00")


def test_a_repeated_payment_id_in_one_file_names_the_first_row(engine, tmp_path):
    add_account(engine, "A1", days_past_due=5)
    report = import_payments(engine, write_csv(tmp_path / "p.csv", [payment(), payment()]), NOW, ZONE)
    assert [(e.row, e.field, e.message) for e in report.errors] == [(3, "payment_id", "duplicate of row 2")]


def test_a_file_with_wrong_columns_is_refused_whole(engine, tmp_path):
    with pytest.raises(RowFileError, match="missing required column"):
        import_payments(engine, write_csv(tmp_path / "p.csv", [{"payment_id": "P1"}], ["payment_id"]), NOW, ZONE)


def test_parquet_payments_keep_their_time_and_zone(engine, tmp_path):
    add_account(engine, "A1", days_past_due=5)
    frame = pd.DataFrame([{"payment_id": "P1", "account_id": "A1", "amount": "20.50", "currency": "USD",
                           "paid_at": pd.Timestamp("2026-11-21T10:00:00-05:00")}])
    frame.to_parquet(tmp_path / "p.parquet")
    report = import_payments(engine, tmp_path / "p.parquet", NOW, ZONE)
    assert report.ok and report.payments_loaded == 1
    with engine.connect() as conn:
        assert conn.execute(select(Payment.paid_at)).scalar_one().isoformat() == "2026-11-21T15:00:00+00:00"


def test_an_over_payment_is_kept_as_credit_and_the_account_is_paid(engine):
    add_account(engine, "A1", days_past_due=5)
    add_account(engine, "A2", days_past_due=50)
    with engine.begin() as conn:
        conn.execute(insert(AgentWorklistItem.__table__), {
            "attempt_id": _attempt(conn, "A2", "escalation", "queued"), "account_id": "A2", "reason": "aged_debt",
            "days_past_due": 50, "amount_due": Decimal("120.50"), "currency": "USD", "tried": {}, "status": "open",
            "created_at": NOW})
    report = record_payment(engine, "A1", Decimal("650.00"), NOW - timedelta(hours=1), NOW, ZONE)
    assert report.credit == {"USD": Decimal("50.00")} and report.accounts_paid_off == 1
    a = account(engine)
    assert (a.balance, a.amount_due, a.status, a.credit) == (Decimal("0"), Decimal("0"), "paid", Decimal("50.00"))
    assert a.paid_off_at == NOW - timedelta(hours=1)
    record_payment(engine, "A2", Decimal("600.00"), NOW, NOW, ZONE)
    with engine.connect() as conn:
        assert conn.execute(select(AgentWorklistItem.status, AgentWorklistItem.outcome)).one() == ("done", "paid")


def test_recording_the_same_payment_twice_records_it_once(engine):
    add_account(engine, "A1", days_past_due=5)
    record_payment(engine, "A1", Decimal("10"), NOW, NOW, ZONE, reference="R1")
    again = record_payment(engine, "A1", Decimal("10"), NOW, NOW, ZONE, reference="R1")
    assert again.already_recorded == 1 and account(engine).balance == Decimal("590.00")
    with pytest.raises(PaymentError, match="no account 'NOPE'"):
        record_payment(engine, "NOPE", Decimal("10"), NOW, NOW, ZONE)


def _attempt(conn, account_id: str, stage: str, status: str) -> int:
    if conn.execute(select(CampaignRun.id).where(CampaignRun.id == "r1")).first() is None:
        conn.execute(insert(CampaignRun.__table__), {
            "id": "r1", "stage": stage, "as_of": AS_OF, "decided_at": NOW, "started_at": NOW, "finished_at": None,
            "status": "running", "dry_run": False, "flow_run_id": None, "cohort_size": 0, "counts": {}})
    row = attempt_row(run_id="r1", account_id=account_id, customer_id=f"C-{account_id}", stage=stage,
                      cycle=f"{stage}-{status}", as_of=AS_OF, channel="email", status=status, now=NOW)
    return conn.execute(insert(ContactAttempt.__table__).returning(ContactAttempt.id), row).scalar_one()


def test_a_partial_payment_that_cures_the_amount_due_stops_what_was_queued(engine):
    add_account(engine, "A1", days_past_due=5)
    add_account(engine, "A2", days_past_due=5)
    with engine.begin() as conn:
        cured = [_attempt(conn, "A1", "soft_nudge", "deferred"), _attempt(conn, "A1", "pre_due", "queued")]
        still_owed = _attempt(conn, "A2", "soft_nudge", "deferred")
    record_payment(engine, "A1", Decimal("120.50"), NOW, NOW, ZONE)  # the amount due, not the balance
    record_payment(engine, "A2", Decimal("20"), NOW, NOW, ZONE)  # not enough to cure it
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(ContactAttempt.id, ContactAttempt.status.concat(":").concat(
            ContactAttempt.reason))).all())
        reasons = {i: conn.execute(select(ContactAttempt.status, ContactAttempt.reason)
                                   .where(ContactAttempt.id == i)).one() for i in cured + [still_owed]}
    assert statuses  # read back on both databases
    assert [tuple(reasons[i]) for i in cured] == [("suppressed", "paid")] * 2
    assert tuple(reasons[still_owed]) == ("deferred", None)
    assert account(engine).status == "open" and account(engine, "A2").amount_due == Decimal("100.50")


def test_a_portfolio_reimport_does_not_undo_a_payment_and_a_statement_with_its_moment_wins(engine, tmp_path):
    statement = dict(GOOD, balance="500.00", amount_due="125.50", due_date="2026-11-25")
    write_portfolio(tmp_path / "p.csv", [statement])
    import_portfolio(engine, tmp_path / "p.csv", now=NOW - timedelta(hours=2))
    record_payment(engine, "A1", Decimal("125.50"), NOW, NOW, ZONE)
    again = import_portfolio(engine, tmp_path / "p.csv", now=NOW)  # yesterday's export again
    assert again.ok and again.statements_unchanged == 1 and again.statements_recorded == 0
    a = account(engine)
    assert (a.balance, a.amount_due) == (Decimal("374.50"), Decimal("0"))

    record_payment(engine, "A1", Decimal("374.50"), NOW + timedelta(hours=1), NOW, ZONE)
    import_portfolio(engine, tmp_path / "p.csv", now=NOW + timedelta(hours=2))
    assert account(engine).status == "paid"  # paid stays paid on the same statement

    # The lender's next statement, without its moment: it would raise what is owed while two payments recorded
    # here may not be in it. Refused for its row, naming the account and how many payments, not their amounts.
    nxt = dict(statement, balance="80.00", amount_due="80.00", due_date="2026-12-25")
    write_portfolio(tmp_path / "next.csv", [nxt])
    refused = import_portfolio(engine, tmp_path / "next.csv", now=NOW + timedelta(hours=3))
    [error] = refused.errors
    assert (error.row, error.field) == (2, "balance")
    assert "account A1" in error.message and "2 payment(s)" in error.message and "balance_as_of" in error.message
    assert "374.50" not in error.message and "125.50" not in error.message
    assert account(engine).status == "paid"
    # With the moment its figures were taken (after both payments): it is the lender's word (new debt).
    import_portfolio(engine, tmp_path / "next.csv", now=NOW + timedelta(hours=3),
                     balance_as_of=NOW + timedelta(hours=2))
    a = account(engine)
    assert (a.balance, a.amount_due, a.status, a.due_date.isoformat()) == (
        Decimal("80.00"), Decimal("80.00"), "open", "2026-12-25")


def test_a_placed_account_stays_placed_through_a_reimport(engine, tmp_path):
    from campaigns.money import ledger

    write_portfolio(tmp_path / "p.csv", [GOOD])
    import_portfolio(engine, tmp_path / "p.csv", now=NOW)
    with engine.begin() as conn:
        conn.execute(Account.__table__.update().values(placed_at=NOW, placed_with="Agency"))
        ledger.refresh(conn, ["A1"], NOW, ZONE)
    assert account(engine).status == "placed"
    write_portfolio(tmp_path / "next.csv", [dict(GOOD, status="open", amount_due="1.00")])
    import_portfolio(engine, tmp_path / "next.csv", now=NOW + timedelta(hours=1))
    assert account(engine).status == "placed"


BAD = {
    "payment_id": st.sampled_from(["", "has space", "x" * 65, "P\x00"]),
    "account_id": st.sampled_from(["", "NOPE", "A 1", "A1\x07"]),
    "amount": st.one_of(st.sampled_from(["", "abc", "NaN", "-1", "0", "1.001", "1e20", "5,00"]),
                        st.integers(min_value=10**14, max_value=10**30).map(str)),
    "currency": st.sampled_from(["", "XYZ", "EUR", "usd1"]),
    "paid_at": st.sampled_from(["", "2026-11-21", "2026-11-21T10:00:00", "2099-01-01T00:00:00Z", "later",
                                "2026-02-30T10:00:00Z"]),
    "method": st.sampled_from(["x" * 33, "=SUM(A1)", "a\x1bb"]),
    "reference": st.sampled_from(["y" * 65, "semi;colon", "tab\there", "quote\"d"]),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_bad_cell_costs_exactly_its_row(engine, tmp_path, data):
    """Hypothesis: one broken cell in a file of good payments is one error, on its row and field; the rest load."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))
    add_account(engine, "A1", days_past_due=5)
    field = data.draw(st.sampled_from(sorted(BAD)))
    value = data.draw(BAD[field])
    broken = data.draw(st.integers(min_value=0, max_value=4))
    rows = [payment(payment_id=f"P{i}", amount="1.00") for i in range(5)]
    rows[broken][field] = value
    report = import_payments(engine, write_csv(tmp_path / "fuzz.csv", rows), NOW, ZONE)
    assert {(e.row, e.field) for e in report.errors} == {(broken + 2, field)}, [str(e) for e in report.errors]
    assert report.payments_loaded == 4 and account(engine).balance == Decimal("596.00")


def _mixed_file(path: Path) -> Path:
    """Payments, reversals and refunds over eight accounts, an account's events in several batches, and rows that
    fail: a payment on an unknown account, a bad amount, a repeated id, a reversal of another account's payment
    (of this file, and of the database), a reversal of a payment already reversed, a refund beyond the credit."""
    rows = []
    for i in range(24):
        rows.append(payment(payment_id=f"P{i}", account_id=f"A{i % 8}", amount="40.00",
                            paid_at=f"2026-11-2{i % 3}T1{i % 10}:00:00Z", reference=f"R{i}"))
    rows += [
        payment(payment_id="P-big", account_id="A3", amount="700.00", paid_at="2026-11-21T09:00:00Z"),
        payment(payment_id="P-nobody", account_id="NOPE"),
        payment(payment_id="P-bad", amount="twelve"),
        payment(payment_id="P3", account_id="A3", amount="40.00"),  # repeated id
        payment(payment_id="V1", account_id="A1", amount="40.00", type="reversal", reverses="P1",
                paid_at="2026-11-22T12:00:00Z", reason="chargeback"),
        payment(payment_id="V2", account_id="A2", amount="40.00", type="reversal", reverses="P5",
                paid_at="2026-11-22T12:00:00Z", reason="chargeback"),  # P5 is A5's
        payment(payment_id="V3", account_id="A6", amount="40.00", type="reversal", reverses="OLD7",
                paid_at="2026-11-22T12:00:00Z", reason="chargeback"),  # OLD7 is A7's, in the database
        payment(payment_id="V4", account_id="A1", amount="40.00", type="reversal", reverses="P1",
                paid_at="2026-11-22T13:00:00Z", reason="chargeback"),  # reversed already, by V1
        payment(payment_id="F1", account_id="A3", amount="10.00", type="refund", paid_at="2026-11-22T14:00:00Z"),
        payment(payment_id="F2", account_id="A3", amount="900.00", type="refund", paid_at="2026-11-22T15:00:00Z"),
    ]
    return write_csv(path, rows)


def _state(engine) -> dict:
    """What an import leaves, without the ids a database's sequences hand out."""
    derived = [c for c in ("balance", "amount_due", "due_date", "status", "credit", "paid_off_at", "payoff_seen_at",
                           "figures")]
    with engine.connect() as conn:
        accounts = conn.execute(select(Account.id, *(getattr(Account, c) for c in derived)).order_by(Account.id)).all()
        entries = conn.execute(select(LedgerEntry.entry_key, LedgerEntry.account_id, LedgerEntry.kind,
                                      LedgerEntry.effective_at, LedgerEntry.amount, LedgerEntry.reason,
                                      LedgerEntry.source).order_by(LedgerEntry.entry_key)).all()
        payments = conn.execute(select(Payment.payment_id, Payment.account_id, Payment.amount, Payment.paid_at,
                                       Payment.method, Payment.reference).order_by(Payment.payment_id)).all()
        attempts = conn.execute(select(ContactAttempt.account_id, ContactAttempt.stage, ContactAttempt.status,
                                       ContactAttempt.reason).order_by(ContactAttempt.account_id,
                                                                       ContactAttempt.stage)).all()
    return {"accounts": accounts, "entries": entries, "payments": payments, "attempts": attempts}


def test_a_file_stored_by_several_processes_leaves_what_one_process_leaves(engine, tmp_path):
    """Each process holds its own accounts' rows, in file order: the report (its errors in row order), the ledger,
    the accounts' figures and the stopped messages are those of one process storing the file, batch by batch."""
    path = _mixed_file(tmp_path / "mixed.csv")
    outcomes = []
    for processes in (0, 2):
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(delete(table))
        for i in range(8):
            add_account(engine, f"A{i}", days_past_due=5)
        record_payment(engine, "A7", Decimal("40.00"), NOW - timedelta(days=3), NOW, ZONE, payment_id="OLD7")
        with engine.begin() as conn:
            _attempt(conn, "A3", "soft_nudge", "queued")  # A3 pays off: this stops
            _attempt(conn, "A4", "soft_nudge", "deferred")  # A4 pays 120 of 120.50 due: this waits
        report = import_payments(engine, path, NOW, ZONE, processes=processes, batch=3)
        outcomes.append((report, _state(engine)))
    (one, one_state), (two, two_state) = outcomes
    assert [(e.row, e.field, e.message) for e in two.errors] == [(e.row, e.field, e.message) for e in one.errors]
    assert {(e.row, e.field) for e in one.errors} == {(27, "account_id"), (28, "amount"), (29, "payment_id"),
                                                     (31, "reverses"), (32, "reverses"), (33, "reverses"),
                                                     (35, "amount")}, [str(e) for e in one.errors]
    messages = {e.row: e.message for e in one.errors}
    assert messages[31] == "payment P5 is for account A5 (row 7), not this one"
    assert messages[32] == "payment OLD7 is on account A7, not this one"
    assert two_state == one_state
    fields = ("rows_read", "payments_loaded", "reversals_loaded", "refunds_loaded", "already_recorded",
              "accounts_paid_off", "accounts_reopened", "in_statement", "applied", "credit")
    assert {f: getattr(two, f) for f in fields} == {f: getattr(one, f) for f in fields}
    assert (one.payments_loaded, one.reversals_loaded, one.refunds_loaded, one.accounts_paid_off) == (25, 1, 1, 1)
    assert {a.account_id: a.status for a in one_state["attempts"]} == {"A3": "suppressed", "A4": "deferred"}


def test_two_imports_at_once_that_share_a_payment_id_on_different_accounts_record_it_once(engine, tmp_path):
    """Each import locks only its own accounts, so both may find the id new; the one that commits second fails its
    unique key, is retried row by row, and only the shared row is an error. Run many times: the race is real."""
    import threading

    for i in range(8):
        add_account(engine, f"A{i}", days_past_due=5)
    for attempt in range(3):
        shared = f"P-shared-{attempt}"
        files = [write_csv(tmp_path / f"f{attempt}-{side}.csv",
                           [payment(payment_id=f"P{attempt}-{side}-{i}", account_id=f"A{side * 4 + i}", amount="1.00")
                            for i in range(4)] + [payment(payment_id=shared, account_id=f"A{side * 4}", amount="2.00")])
                 for side in (0, 1)]
        start, reports = threading.Barrier(2), [None, None]

        def run(side: int) -> None:
            start.wait()
            reports[side] = import_payments(engine, files[side], NOW, ZONE, processes=0)

        threads = [threading.Thread(target=run, args=(side,)) for side in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.payments_loaded for r in reports) == [4, 5]
        errors = [(e.row, e.field) for r in reports for e in r.errors]
        assert errors == [(6, "account_id")], [str(e) for r in reports for e in r.errors]
        with engine.connect() as conn:
            assert conn.execute(select(Payment.account_id).where(Payment.payment_id == shared)).scalars().all() in (
                ["A0"], ["A4"])


@pytest.mark.parametrize(("dialect", "rows", "asked", "cores", "processes"), [
    ("postgresql", 49_999, None, 2, 0),  # a small file: starting processes costs more than it saves
    ("postgresql", 50_000, None, 2, 2),  # one per core
    ("postgresql", 5_000_000, None, 64, 4),  # at most four by default: each holds a connection and ~150 MB
    ("postgresql", 100, 3, 2, 3),  # asked for
    ("postgresql", 5_000_000, 0, 8, 0),  # asked for: this process
    ("sqlite", 5_000_000, 4, 8, 0),  # one writer at a time
])
def test_how_many_processes_store_a_file(dialect, rows, asked, cores, processes):
    assert store_processes(dialect, rows, asked, cores) == processes
