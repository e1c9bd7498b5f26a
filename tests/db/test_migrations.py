"""The schema comes from Alembic, from empty, on both backends, and matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from campaigns.db.engine import downgrade_database, make_engine, schema_revision
from campaigns.schema_upgrade import upgrade_database
from campaigns.db.models import Base
from tests.conftest import create_postgres_schema, drop_postgres_schema, postgres_schema_url
from tests.factories import keyed_engine

TABLES = {"customers", "accounts", "payments", "contact_attempts", "campaign_runs", "disputes",
          "repayment_plans", "rendered_messages", "outbox_messages", "agent_worklist"}


def _fresh_url(backend: str, tmp_path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}", None
    schema = create_postgres_schema()
    return postgres_schema_url(schema), schema


def test_session_database_is_at_head(engine):
    current, head = schema_revision(engine)
    assert current == head is not None
    assert TABLES <= set(inspect(engine).get_table_names())


def test_models_and_migrations_agree(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_upgrade_from_empty_then_down_and_up_again(database_url, tmp_path):
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    url, schema = _fresh_url(backend, tmp_path)
    engine = keyed_engine(url)  # the way down opens what 0010 sealed
    try:
        assert inspect(engine).get_table_names() == []
        upgrade_database(engine)
        assert TABLES <= set(inspect(engine).get_table_names())
        downgrade_database(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade_database(engine)
        assert schema_revision(engine)[0] == schema_revision(engine)[1]
    finally:
        engine.dispose()
        if schema:
            drop_postgres_schema(schema)


def test_idempotency_key_is_unique_in_the_schema(engine):
    uniques = inspect(engine).get_unique_constraints("contact_attempts")
    indexes = [i for i in inspect(engine).get_indexes("contact_attempts") if i.get("unique")]
    columns = [tuple(u["column_names"]) for u in uniques] + [tuple(i["column_names"]) for i in indexes]
    assert ("idempotency_key",) in columns


def test_times_round_trip_as_aware_utc(engine):
    from datetime import datetime, timedelta, timezone

    import pytest
    from sqlalchemy import select

    from tests.factories import add_customer
    from campaigns.db.models import Customer

    local = datetime(2026, 3, 8, 1, 30, tzinfo=timezone(timedelta(hours=-5)))
    add_customer(engine, "C-TZ", created_at=local, updated_at=local)
    with engine.connect() as conn:
        stored = conn.execute(select(Customer.created_at).where(Customer.id == "C-TZ")).scalar_one()
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == local
    with pytest.raises(Exception, match="naive datetime"):
        add_customer(engine, "C-NAIVE", created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1))


def test_0005_reduces_old_details_that_could_echo_personal_data(database_url, tmp_path):
    """Details written before 0005 kept Jinja's and SendGrid's text (a name, the message): they are cut back."""
    from sqlalchemy import insert, select, text

    from campaigns.db.models import CampaignRun, ContactAttempt
    from campaigns.attempts.log import attempt_row
    from tests.conftest import AS_OF, NOW

    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    url, schema = _fresh_url(backend, tmp_path)
    engine = keyed_engine(url)
    try:
        upgrade_database(engine, "0004")
        _old_account(engine, "A1")
        old = {
            "template_error": "soft_nudge/email.en-US.j2: UndefinedError: 'dict object' has no attribute 'Grace Garcia'",
            "provider_rejected": "SendGrid 400: content.0.value: content 'Hi Avery Allen,' flagged",
            "sms_too_long": "soft_nudge/sms.en-US.j2: 5 GSM-7 segments, at most 4",
        }
        with engine.begin() as conn:
            conn.execute(insert(CampaignRun.__table__), {
                "id": "r1", "stage": "soft_nudge", "as_of": AS_OF, "decided_at": NOW, "started_at": NOW,
                "finished_at": None, "status": "completed", "dry_run": False, "flow_run_id": None,
                "cohort_size": 0, "counts": {}})
            for n, (reason, detail) in enumerate(old.items()):
                row = attempt_row(run_id="r1", account_id="A1", customer_id="C-A1", stage="soft_nudge",
                                  cycle=f"c{n}", as_of=AS_OF, channel="email", status="failed", now=NOW,
                                  reason=reason, detail=detail)
                conn.execute(insert(ContactAttempt.__table__).values(
                    {k: v for k, v in row.items() if k not in ("policy_trace", "experiment", "tone", "amount_due",
                                                               "days_past_due", "figures")}))
        upgrade_database(engine)
        with engine.connect() as conn:
            details = dict(conn.execute(select(ContactAttempt.reason, ContactAttempt.detail)).all())
            assert conn.execute(text("select count(*) from provider_event_problems")).scalar_one() == 0
        assert details == {"template_error": "soft_nudge/email.en-US.j2: UndefinedError",
                           "provider_rejected": "SendGrid 400",
                           "sms_too_long": "soft_nudge/sms.en-US.j2: 5 GSM-7 segments, at most 4"}
    finally:
        engine.dispose()
        if schema:
            drop_postgres_schema(schema)


def _old_account(engine, account_id: str) -> None:
    """An account written as an older schema had it (today's models carry columns it has not)."""
    from sqlalchemy import text

    from tests.conftest import AS_OF, NOW

    with engine.begin() as conn:
        conn.execute(text("insert into customers (id, locale, email_opt_out, sms_opt_out, sms_consent, created_at, "
                          "updated_at) values (:c, 'en-US', false, false, true, :now, :now)"),
                     {"c": f"C-{account_id}", "now": NOW})
        conn.execute(text("insert into accounts (id, customer_id, currency, balance, amount_due, due_date, status, "
                          "cease_contact, created_at, updated_at) values (:a, :c, 'USD', 600, 120.5, :due, 'open', "
                          "false, :now, :now)"),
                     {"a": account_id, "c": f"C-{account_id}", "due": AS_OF, "now": NOW})


def test_0012_opens_a_ledger_that_derives_every_accounts_figures(database_url, tmp_path):
    """Accounts written in place by 0011 (payments applied, credit, a plan, promises, a placement, and the
    impossible states in-place writes left: a plan still accepted on a paid account) move to the ledger: each
    gets its opening statement and its payments, derives the figures it had, and what was impossible is settled."""
    from datetime import timedelta
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from sqlalchemy import MetaData, Table, select

    from campaigns.db.models import Account, LedgerEntry, PaymentPromise, PlanInstalment, RepaymentPlan
    from campaigns.money import ledger
    from campaigns.money.payments import refund_credit, reverse_payment
    from tests.conftest import AS_OF, NOW

    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    url, schema = _fresh_url(backend, tmp_path)
    engine = keyed_engine(url)
    zone = ZoneInfo("America/New_York")
    day = timedelta(days=1)
    try:
        upgrade_database(engine, "0011")
        with engine.begin() as conn:
            t = {name: Table(name, MetaData(), autoload_with=conn) for name in
                 ("customers", "accounts", "payments", "repayment_plans", "plan_instalments", "payment_promises")}
            base = {"currency": "USD", "due_date": AS_OF - 20 * day, "cease_contact": False, "time_barred": False,
                    "credit": 0, "created_at": NOW - 30 * day, "updated_at": NOW - 10 * day}
            accounts = {  # what 0011's in-place writes left
                "OPEN": dict(balance=479.5, amount_due=0, status="open"),
                "CREDIT": dict(balance=0, amount_due=0, status="paid", credit=50, paid_off_at=NOW - 2 * day),
                "PLAN": dict(balance=400, amount_due=120.5, status="open", plan_due_date=AS_OF + 37 * day,
                             plan_amount_due=200),
                "IMPOSSIBLE": dict(balance=0, amount_due=0, status="paid", plan_due_date=AS_OF + 7 * day,
                                   plan_amount_due=179.94, paid_off_at=NOW - day),
                "PROMISED": dict(balance=560, amount_due=80.5, status="open"),
                "PLACED": dict(balance=0, amount_due=0, status="paid", placed_at=NOW - 5 * day,
                               placed_with="Northwind", paid_off_at=NOW - day),
            }
            for account_id, values in accounts.items():
                conn.execute(t["customers"].insert(), {"id": f"C-{account_id}", "locale": "en-US",
                                                       "email_opt_out": False, "sms_opt_out": False,
                                                       "sms_consent": True, "created_at": NOW, "updated_at": NOW})
                conn.execute(t["accounts"].insert(), {"id": account_id, "customer_id": f"C-{account_id}",
                                                      **base, **values})
            payments = [("P-OPEN", "OPEN", 120.5, 120.5, 0), ("P-CREDIT", "CREDIT", 650, 600, 50),
                        ("P-PLAN", "PLAN", 200, 200, 0), ("P-IMP", "IMPOSSIBLE", 50, 50, 0),
                        ("P-PROM", "PROMISED", 40, 40, 0), ("P-PLACED", "PLACED", 600, 600, 0)]
            for n, (payment_id, account_id, amount, applied, credit) in enumerate(payments):
                conn.execute(t["payments"].insert(), {
                    "payment_id": payment_id, "account_id": account_id, "amount": amount, "currency": "USD",
                    "paid_at": NOW - 2 * day + n * timedelta(minutes=1), "source": "import",
                    "recorded_at": NOW - 2 * day + n * timedelta(minutes=1), "applied": applied, "credit": credit})
            for account_id, total, paid in (("PLAN", 600, 200), ("IMPOSSIBLE", 229.94, 50)):
                plan_id = conn.execute(t["repayment_plans"].insert().returning(t["repayment_plans"].c.id), {
                    "offer_key": f"{account_id}|2026-11-01", "account_id": account_id, "status": "accepted",
                    "instalments": 3, "total": total, "currency": "USD", "schedule": [],
                    "created_at": NOW - 3 * day, "offered_on": AS_OF - 3 * day, "chosen_option": 1,
                    "accepted_at": NOW - 3 * day, "accepted_via": "cli"}).scalar_one()
                share = round(total / 3, 2)
                for seq in (1, 2, 3):
                    conn.execute(t["plan_instalments"].insert(), {
                        "plan_id": plan_id, "account_id": account_id, "seq": seq,
                        "due_date": AS_OF + (7 + 30 * (seq - 1)) * day, "amount": share if seq > 1 else total - 2 * share,
                        "paid": min(paid, share) if seq == 1 else 0})
            conn.execute(t["payment_promises"].insert(), {
                "account_id": "PROMISED", "amount": 100, "currency": "USD", "due_by": AS_OF + 3 * day,
                "status": "open", "paid": 40, "promised_at": NOW - 3 * day, "source": "cli"})

        upgrade_database(engine, lender_zone=zone)  # 0012, then every account reconciled with its ledger

        report = ledger.check(engine, zone, NOW)
        assert report.ok and report.accounts == 6, report.mismatched
        with engine.connect() as conn:
            got = {r.id: r for r in conn.execute(select(Account))}
            openings = dict(conn.execute(select(LedgerEntry.account_id, LedgerEntry.balance)
                                         .where(LedgerEntry.kind == "statement")).all())
            plans = dict(conn.execute(select(RepaymentPlan.account_id, RepaymentPlan.status)).all())
            instalments = conn.execute(select(PlanInstalment.paid).where(PlanInstalment.account_id == "PLAN")
                                       .order_by(PlanInstalment.seq)).scalars().all()
            promise = conn.execute(select(PaymentPromise.status, PaymentPromise.paid)).one()
        # The figures each account had, now derived: its opening statement holds them before its payments.
        assert (got["OPEN"].balance, got["OPEN"].amount_due, got["OPEN"].status) == (Decimal("479.5"), 0, "open")
        assert openings["OPEN"] == Decimal("600") and openings["CREDIT"] == Decimal("600")
        assert (got["CREDIT"].credit, got["CREDIT"].status) == (Decimal("50"), "paid")
        assert (got["PLAN"].balance, got["PLAN"].plan_amount_due) == (Decimal("400"), Decimal("200"))
        assert instalments == [Decimal("200"), Decimal("0"), Decimal("0")]  # the payment recorded after acceptance
        assert plans["IMPOSSIBLE"] == "completed" and got["IMPOSSIBLE"].plan_due_date is None
        assert got["PLACED"].status == "closed"  # paid while placed: closed for us, not thanked
        assert tuple(promise) == ("open", Decimal("40"))
        # And the ledger works on them: a payment reversed, credit refunded.
        reverse_payment(engine, "P-OPEN", "chargeback", NOW, zone)
        refund_credit(engine, "CREDIT", Decimal("50"), "RF-1", NOW, zone)
        with engine.connect() as conn:
            after = dict(conn.execute(select(Account.id, Account.balance - Account.credit)).all())
        assert after["OPEN"] == Decimal("600") and after["CREDIT"] == 0
        assert ledger.check(engine, zone, NOW).ok
        downgrade_database(engine, "0011")
        upgrade_database(engine, lender_zone=zone)
        assert ledger.check(engine, zone, NOW).ok
    finally:
        engine.dispose()
        if schema:
            drop_postgres_schema(schema)
