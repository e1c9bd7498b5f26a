"""The schema comes from Alembic, from empty, on both backends, and matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from campaigns.db.engine import downgrade_database, make_engine, schema_revision, upgrade_database
from campaigns.db.models import Base
from tests.conftest import create_postgres_schema, drop_postgres_schema, postgres_schema_url

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
    engine = make_engine(url)
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
    from campaigns.contact.outcomes import attempt_row
    from tests.conftest import AS_OF, NOW

    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    url, schema = _fresh_url(backend, tmp_path)
    engine = make_engine(url)
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
                                                               "days_past_due")}))
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
