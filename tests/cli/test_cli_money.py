"""The money commands as a person uses them: payments, plans, promises, the worklist, the agency."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from campaigns.db.models import Account, ContactAttempt, PaymentPromise
from tests.conftest import AS_OF, NOW
from tests.factories import add_account
from tests.cli.test_cli import invoke
from tests.money.test_payments import payment, write_csv
from tests.money.test_plan_lifecycle import offer
from tests.customers.test_worklist_agency import item


@pytest.mark.parametrize("processes", [[], ["--processes", "2"]], ids=["default", "two-processes"])
def test_payments_import_reports_each_bad_row_a_summary_and_exits_non_zero(engine, tmp_path, processes):
    add_account(engine, "A1", days_past_due=5)
    path = write_csv(tmp_path / "p.csv", [payment(), payment(payment_id="P2", currency="EUR"),
                                          payment(payment_id="P3", amount="1000")])
    result = invoke("payments", "import", path, "--now", NOW.isoformat(), *processes)
    assert result.exit_code == 1
    assert f"{path}: row 3, field currency: EUR is not the account's currency (USD)" in result.output
    assert ("3 rows read, 2 payments loaded ($600.00 applied), 0 already recorded, 1 rows rejected; "
            "1 account(s) paid in full, 0 plan(s) completed, 0 promise(s) kept; "
            "over-payments kept as credit: $420.50") in " ".join(result.output.split())
    again = invoke("payments", "import", write_csv(tmp_path / "ok.csv", [payment()]), "--now", NOW.isoformat())
    assert again.exit_code == 0 and "0 payments loaded" in again.output and "1 already recorded" in again.output


def test_payments_record_says_what_it_did_and_refuses_in_one_line(engine):
    add_account(engine, "A1", days_past_due=5)
    result = invoke("payments", "record", "A1", "120.50", "--paid-at", "2026-11-22T08:00:00-05:00",
                    "--reference", "R-1", "--now", NOW.isoformat())
    assert result.exit_code == 0
    assert "account A1: $120.50 applied; balance $479.50, amount due $0.00, status open" in result.output
    for args, message in ((["NOPE", "5"], "error: no account 'NOPE'"),
                          (["A1", "0"], "error: '0' is not a positive amount (to undo a payment: campaigns "
                                        "payments reverse PAYMENT_ID --reason CODE)"),
                          (["A1", "-5"], "error: '-5' is not a positive amount (to undo a payment: campaigns "
                                         "payments reverse PAYMENT_ID --reason CODE)"),
                          (["A1", "5.001"], "error: amount: '5.001' has more decimals than USD allows (2)")):
        bad = invoke("payments", "record", *args, "--paid-at", "2026-11-22T08:00:00Z", "--now", NOW.isoformat())
        assert bad.exit_code == 1 and bad.output.strip() == message, bad.output
    naive = invoke("payments", "record", "A1", "5", "--paid-at", "2026-11-22T08:00:00", "--now", NOW.isoformat())
    assert naive.exit_code == 1 and "has no UTC offset" in naive.output


def test_plans_accept_and_show(engine):
    add_account(engine, "A1", days_past_due=20)
    assert "has no plan and no offer" in invoke("plans", "show", "A1").output
    offer(engine, "A1")
    shown = " ".join(invoke("plans", "show", "A1").output.split())
    assert "offer of 2026-11-22 is offered" in shown and "option 2: 6 instalments, $600.00" in shown
    accepted = invoke("plans", "accept", "A1", "--option", "2", "--start", "2026-12-01", "--now", NOW.isoformat())
    assert accepted.exit_code == 0 and "plan accepted for account A1: option 2, 6 instalments" in accepted.output
    invoke("payments", "record", "A1", "150", "--paid-at", NOW.isoformat(), "--now", NOW.isoformat())
    shown = " ".join(invoke("plans", "show", "A1").output.split())
    assert "plan accepted (6 instalments, $600.00 in total, accepted 2026-11-22 via cli)" in shown
    assert "│ 1 │ 2026-12-01 │ $100.00 │ $100.00 │ paid │" in shown and "│ 2 │ 2027-01-01 │ $100.00 │ $50.00 │ $50.00 │" in shown
    again = invoke("plans", "accept", "A1", "--option", "1", "--now", NOW.isoformat())
    assert again.exit_code == 1 and again.output.strip() == "error: account A1 is already in a plan " \
                                                             "(campaigns plans show A1)"


def test_promises_record(engine):
    add_account(engine, "A1", days_past_due=5)
    by = (AS_OF + timedelta(days=3)).isoformat()
    result = invoke("promises", "record", "A1", "50", "--by", by, "--channel", "call", "--now", NOW.isoformat())
    assert result.exit_code == 0 and f"promise recorded for account A1: 50 by {by}" in result.output
    with engine.connect() as conn:
        assert conn.execute(select(PaymentPromise.channel, PaymentPromise.amount)).one() == ("call", Decimal("50"))
    late = invoke("promises", "record", "A1", "50", "--by", "2027-06-01", "--now", NOW.isoformat())
    assert late.exit_code == 1 and late.output.startswith("error: the promised date 2027-06-01 is more than 30 days")


def test_worklist_export_and_record(engine, tmp_path):
    item(engine, "EVIL")
    out = tmp_path / "agents.csv"
    result = invoke("worklist", "export", "--out", out)
    assert result.exit_code == 0 and "1 open worklist item(s) written" in result.output
    assert "'=HYPERLINK" in out.read_text()
    assert "1 open worklist item(s), highest priority first" in invoke("worklist").output
    recorded = invoke("worklist", "record", "EVIL", "no_answer", "--now", NOW.isoformat())
    assert recorded.exit_code == 0 and "account EVIL: no_answer recorded" in recorded.output
    bad = invoke("worklist", "record", "EVIL", "maybe", "--now", NOW.isoformat())
    assert bad.exit_code == 1 and "unknown outcome 'maybe'" in bad.output


def test_agency_place_and_recall(engine, tmp_path):
    add_account(engine, "OLD", days_past_due=95)
    placed = invoke("agency", "place", "--as-of", AS_OF.isoformat(), "--out-dir", tmp_path, "--now", NOW.isoformat(),
                    "--yes")
    assert placed.exit_code == 0 and "1 account(s) placed with Northwind Recoveries" in placed.output
    with engine.connect() as conn:
        assert conn.execute(select(Account.status, Account.placed_with)).one() == ("placed", "Northwind Recoveries")
    assert "recalled from Northwind Recoveries" in invoke("agency", "recall", "OLD").output
    again = invoke("agency", "recall", "OLD")
    assert again.exit_code == 1 and again.output.strip() == "error: account OLD is open, not placed with an agency"


def test_a_placement_is_a_dry_run_without_yes_never_for_a_day_to_come_and_undone_in_bulk(engine, tmp_path):
    """Issue 24 item 15: `agency place --as-of 2027-01-20` placed 657 accounts at once, and recall was one by one."""
    for i in range(3):
        add_account(engine, f"OLD{i}", days_past_due=95)
    add_account(engine, "YOUNG", days_past_due=20)
    now = ("--now", NOW.isoformat())
    out_dir = tmp_path / "agency"
    future = invoke("agency", "place", "--as-of", "2027-01-20", "--out-dir", out_dir, "--yes", *now)
    assert future.exit_code == 1 and "that day has not come (today is 2026-11-22" in future.output
    dry = invoke("agency", "place", "--out-dir", out_dir, *now)
    assert dry.exit_code == 0 and "3 account(s) would be placed with Northwind Recoveries on 2026-11-22" in dry.output
    assert "nothing was written" in dry.output and not out_dir.exists()
    with engine.connect() as conn:
        assert set(conn.execute(select(Account.status)).scalars()) == {"open"}
    assert "3 account(s) placed" in invoke("agency", "place", "--out-dir", out_dir, "--yes", *now).output
    asked = invoke("agency", "recall", "--placed-on", "2026-11-22", *now)
    assert "3 account(s) would be recalled (OLD0, OLD1, OLD2); nothing changed" in asked.output
    done = invoke("agency", "recall", "--placed-on", "2026-11-22", "--yes", *now)
    assert done.exit_code == 0 and "3 account(s) recalled, 0 refused" in done.output
    with engine.connect() as conn:
        assert set(conn.execute(select(Account.status)).scalars()) == {"open"}
    nothing = invoke("agency", "recall", "--placed-on", "2026-11-22", "--yes", *now)
    assert nothing.exit_code == 1 and "no account placed on 2026-11-22 is still with the agency" in nothing.output
    mixed = invoke("agency", "recall", "OLD0", "YOUNG", "--yes", *now)
    assert mixed.exit_code == 1 and "0 account(s) recalled, 2 refused" in mixed.output


def test_a_live_run_for_a_day_to_come_is_refused_a_dry_run_may_look_ahead(prefect_harness, engine):
    """Issue 24 item 15: `daily --as-of` a future day expired offers for good."""
    from tests.cli.test_cli import one_line_error

    add_account(engine, "A1", days_past_due=5)
    line = one_line_error(invoke("daily", "--as-of", "2026-12-01", "--now", NOW.isoformat()))
    assert "the daily campaign for 2026-12-01 is refused: that day has not come (today is 2026-11-22" in line
    line = one_line_error(invoke("run", "soft_nudge", "--as-of", "2026-12-01", "--now", NOW.isoformat()))
    assert "a live soft_nudge run for 2026-12-01 is refused" in line
    assert invoke("daily", "--as-of", "2026-12-01", "--now", NOW.isoformat(), "--dry-run").exit_code == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContactAttempt)).scalar_one() == 0


def test_reverse_refund_and_the_ledger_as_a_person_uses_them(engine, tmp_path):
    add_account(engine, "A1", days_past_due=5)
    now = ["--now", NOW.isoformat()]
    invoke("payments", "record", "A1", "650", "--paid-at", NOW.isoformat(), "--payment-id", "PAY-1", *now)
    refund = invoke("payments", "refund", "A1", "50", "--reference", "RF-1", *now)
    assert refund.exit_code == 0 and refund.output.strip() == (
        "refund RF-1 of $50.00 recorded; account A1: balance $0.00, amount due $0.00, status paid")
    assert "already recorded" in invoke("payments", "refund", "A1", "50", "--reference", "RF-1", *now).output
    too_much = invoke("payments", "refund", "A1", "1", "--reference", "RF-2", *now)
    assert too_much.exit_code == 1 and too_much.output.strip() == (
        "error: is more than the credit account A1 holds (0.00 USD)")
    reversed_ = invoke("payments", "reverse", "PAY-1", "--reason", "chargeback", *now)
    assert reversed_.exit_code == 0 and reversed_.output.strip() == (
        "payment PAY-1 reversed (chargeback); account A1: balance $650.00, amount due $120.50, status open; "
        "it owes again")
    assert "already reversed; nothing changed" in invoke("payments", "reverse", "PAY-1", "--reason", "x", *now).output
    assert invoke("payments", "reverse", "NOPE", "--reason", "x", *now).output.strip() == \
        "error: no payment 'NOPE' is recorded"
    shown = " ".join(invoke("ledger", "show", "A1").output.split())
    assert "statement" in shown and "PAY-1, reversed" in shown and "refund" in shown
    assert "account A1: balance $650.00, amount due $120.50, status open (derived from 4 event(s))" in shown
    checked = invoke("ledger", "check")
    assert checked.exit_code == 0 and "1 account(s) checked, 0 disagree with their ledger" in checked.output
    with engine.begin() as conn:  # someone writes a balance by hand: the check names the account, --fix mends it
        conn.execute(Account.__table__.update().values(balance=Decimal("1.00")))
    broken = invoke("ledger", "check")
    assert broken.exit_code == 1 and "account A1: balance disagree with its ledger" in broken.output
    assert invoke("ledger", "check", "--fix").exit_code == 0 and invoke("ledger", "check").exit_code == 0


def test_import_with_the_moment_of_its_figures(engine, tmp_path):
    from tests.portfolio.test_import import GOOD, write_csv as write_portfolio

    path = write_portfolio(tmp_path / "p.csv", [GOOD])
    assert invoke("import", path, "--now", NOW.isoformat()).exit_code == 0
    invoke("payments", "record", "A1", "100", "--paid-at", (NOW + timedelta(hours=1)).isoformat(),
           "--now", (NOW + timedelta(hours=1)).isoformat())
    later = write_portfolio(tmp_path / "later.csv", [dict(GOOD, due_date="2026-12-25")])
    refused = invoke("import", later, "--now", (NOW + timedelta(hours=2)).isoformat())
    assert refused.exit_code == 1 and "field balance: account A1: this statement would raise what is owed, and 1 " \
                                      "payment(s)" in " ".join(refused.output.split())
    taken = invoke("import", later, "--balance-as-of", NOW.isoformat(), "--now", (NOW + timedelta(hours=2)).isoformat())
    assert taken.exit_code == 0 and "statements: 1 new, 0 unchanged" in " ".join(taken.output.split())
    with engine.connect() as conn:  # the lender's figures as of before the payment: the payment still counts
        assert conn.execute(select(Account.balance, Account.due_date)).one() == (Decimal("400.00"),
                                                                                 date(2026, 12, 25))
    bad = invoke("import", later, "--balance-as-of", "yesterday")
    assert bad.exit_code == 1 and bad.output.startswith("error: --balance-as-of:")


def test_arguments_that_were_accepted_though_wrong_are_refused_in_one_line(engine, tmp_path):
    # Issue 24 item 14.
    from tests.cli.test_cli import one_line_error

    add_account(engine, "A1", days_past_due=20)
    now = ("--now", NOW.isoformat())
    assert one_line_error(invoke("promises", "record", "A1", "10", "--by", "2026-11-30", "--channel", "fax", *now)) \
        == "error: unknown channel 'fax' for a promise; use one of call, email, sms, web, agent"
    assert one_line_error(invoke("plans", "accept", "ZZZ", "--option", "1", *now)) == "error: no such account: ZZZ"
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert one_line_error(invoke("payments", "import", empty, *now)) == (
        f"error: {empty}: the file is empty: it needs a header row and one row per payment (or reversal, refund)")
    assert one_line_error(invoke("payments", "import", tmp_path, *now)) == (
        f"error: {tmp_path}: is a directory; give the file itself (CSV or Parquet)")
    assert one_line_error(invoke("import", tmp_path)) == (
        f"error: {tmp_path}: is a directory; give the file itself (CSV or Parquet)")


def test_two_payments_of_the_same_amount_in_the_same_second_are_two_when_their_references_differ(engine):
    # Issue 24 item 14: the second was refused as "already recorded with a different reference".
    add_account(engine, "A1", days_past_due=5)
    args = ("payments", "record", "A1", "20", "--paid-at", "2026-11-22T08:00:00Z", "--now", NOW.isoformat())
    assert "$20.00 applied" in invoke(*args, "--reference", "R-1").output
    assert "$20.00 applied" in invoke(*args, "--reference", "R-2").output
    assert "already recorded" in invoke(*args, "--reference", "R-2").output  # the same one again is one
    assert "$20.00 applied" in invoke(*args).output  # no reference: its own payment, once
    assert "already recorded" in invoke(*args).output
    with engine.connect() as conn:
        assert conn.execute(select(Account.balance).where(Account.id == "A1")).scalar() == Decimal("540.00")


def test_a_reference_is_a_code_never_an_email_or_a_name(engine):
    # Issue 24 item 6: "@" and spaces were accepted, and a reference is stored unsealed.
    add_account(engine, "A1", days_past_due=5)
    for reference in ("jane.doe@example.com", "Jane Doe", "Zoë"):
        result = invoke("payments", "record", "A1", "20", "--paid-at", "2026-11-22T08:00:00Z",
                        "--reference", reference, "--now", NOW.isoformat())
        assert result.exit_code == 1 and "no spaces or @" in result.output and reference not in result.output
    ok = invoke("payments", "record", "A1", "20", "--paid-at", "2026-11-22T08:00:00Z",
                "--reference", "INV-2026/11#7+a_b:c", "--now", NOW.isoformat())
    assert ok.exit_code == 0, ok.output
