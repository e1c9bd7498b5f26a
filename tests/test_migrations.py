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
