"""Bulk writes (issue 12): COPY on PostgreSQL stores exactly what an INSERT would, and keys still decide.

Every test runs on SQLite (executemany) and PostgreSQL (COPY through a staging table).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from campaigns.attempts.log import attempt_row
from campaigns.db.bulk import COPY_FROM, copy_rows, insert_ignoring_conflicts
from campaigns.db.models import ContactAttempt, RenderedMessage, Stage
from campaigns.runs.records import start_run
from tests.conftest import AS_OF, NOW
from tests.factories import add_account

N = COPY_FROM * 3  # above the threshold: PostgreSQL takes the COPY path


@pytest.fixture
def accounts(engine):
    ids = [f"B{i:05d}" for i in range(N)]
    for account_id in ids:
        add_account(engine, account_id, days_past_due=5)
    return ids


def _rows(run_id: str, accounts: list[str], **overrides) -> list[dict]:
    rows = []
    for i, account_id in enumerate(accounts):
        row = attempt_row(run_id=run_id, account_id=account_id, customer_id=f"C-{account_id}", stage=Stage.soft_nudge,
                          cycle=AS_OF.isoformat(), as_of=AS_OF, channel="email", status="queued", now=NOW,
                          amount_due=Decimal("12.30") if i % 2 else None, days_past_due=5 if i % 2 else None,
                          policy_trace=[{"check": "enqueue", "n": i, "note": "tab\there, ünïcode, \\N"}] if i % 3 else None)
        row.update(overrides)
        rows.append(row)
    return rows


def test_new_keys_are_written_once_and_taken_keys_are_skipped(engine, accounts):
    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    with engine.begin() as conn:
        first = insert_ignoring_conflicts(conn, ContactAttempt.__table__, _rows(run_id, accounts[:10]), "idempotency_key")
    assert len(first) == 10
    rows = _rows(run_id, accounts)
    rows.append(dict(rows[-1]))  # the same key twice in one batch
    with engine.begin() as conn:
        created = insert_ignoring_conflicts(conn, ContactAttempt.__table__, rows, "idempotency_key")
        # a second batch in the same transaction starts from an empty staging table
        again = insert_ignoring_conflicts(conn, ContactAttempt.__table__, _rows(run_id, accounts), "idempotency_key")
    assert sorted(key for _, key in created) == sorted(r["idempotency_key"] for r in _rows(run_id, accounts[10:]))
    assert again == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContactAttempt)).scalar_one() == N
        stored = {r.account_id: r for r in conn.execute(select(ContactAttempt))}
    # each new row comes back with its own id (on SQLite read back after the executemany, by rowid)
    assert sorted([*first, *created]) == sorted((r.id, r.idempotency_key) for r in stored.values())
    for i, account_id in enumerate(accounts):
        row = stored[account_id]
        assert row.created_at == NOW and row.as_of == AS_OF
        assert row.amount_due == (Decimal("12.30") if i % 2 else None)
        assert row.policy_trace == ([{"check": "enqueue", "n": i, "note": "tab\there, ünïcode, \\N"}] if i % 3 else None)


def test_a_naive_timestamp_is_refused_as_an_insert_would_refuse_it(engine, accounts):
    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    rows = _rows(run_id, accounts, created_at=NOW.replace(tzinfo=None))
    with pytest.raises(Exception, match="naive datetime"):
        with engine.begin() as conn:
            insert_ignoring_conflicts(conn, ContactAttempt.__table__, rows, "idempotency_key")


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(text, min_size=N, max_size=N), subject=st.one_of(st.none(), text))
def test_any_message_text_comes_back_as_it_was_copied(engine, accounts, bodies, subject):
    """Tabs, newlines, backslashes, COPY's own ``\\N`` and any Unicode survive COPY byte for byte."""
    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    with engine.begin() as conn:
        conn.execute(delete(RenderedMessage))
        conn.execute(delete(ContactAttempt))
        created = insert_ignoring_conflicts(conn, ContactAttempt.__table__, _rows(run_id, accounts), "idempotency_key")
        ids = sorted(attempt_id for attempt_id, _ in created)
        copy_rows(conn, RenderedMessage.__table__, [
            {"attempt_id": attempt_id, "recipient": None, "subject": subject, "body_text": body,
             "body_html": body or None, "payload": {"body": body}} for attempt_id, body in zip(ids, bodies)])
    with engine.connect() as conn:
        stored = conn.execute(select(RenderedMessage).order_by(RenderedMessage.attempt_id)).all()
    assert [(m.subject, m.body_text, m.body_html, m.payload) for m in stored] == [
        (subject, body, body or None, {"body": body}) for body in bodies]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(details=st.lists(st.one_of(st.none(), text), min_size=N, max_size=N))
def test_copied_attempts_with_their_ids_come_back_as_given(engine, accounts, details):
    """``copy_rows`` of attempts with their ids given (how a stage writes them): an unsealed text column with tabs,
    newlines, backslashes, ``\\N`` or any Unicode, a JSON trace, money, dates and timestamps come back as given."""
    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    rows = [{"id": 1000 + i, **row, "detail": detail}
            for i, (row, detail) in enumerate(zip(_rows(run_id, accounts), details))]
    with engine.begin() as conn:
        conn.execute(delete(ContactAttempt))
        copy_rows(conn, ContactAttempt.__table__, rows)
    with engine.connect() as conn:
        stored = conn.execute(select(ContactAttempt).order_by(ContactAttempt.id)).all()
    assert [(r.id, r.detail, r.policy_trace, r.amount_due, r.as_of, r.created_at) for r in stored] == [
        (r["id"], r["detail"], r["policy_trace"], r["amount_due"], r["as_of"], r["created_at"]) for r in rows]


def test_a_row_missing_a_key_or_with_timestamps_of_its_own_is_copied_as_an_insert_would_bind_it(engine, accounts):
    """Rows are read in C over the first row's keys and a chunk's shared timestamp is converted once: a later row
    without some key still gets None there, a row's own timestamp is its own, and a naive one in the middle of a
    batch is refused."""
    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    rows = [{"id": 2000 + i, **row, "detail": f"d{i}"} for i, row in enumerate(_rows(run_id, accounts))]
    for i, row in enumerate(rows):
        if i % 4 == 1:
            del row["detail"], row["template"]
        if i % 3 == 2:
            row["created_at"] = row["updated_at"] = NOW + timedelta(minutes=i)
    with engine.begin() as conn:
        conn.execute(delete(ContactAttempt))
        copy_rows(conn, ContactAttempt.__table__, rows)
    with engine.connect() as conn:
        stored = conn.execute(select(ContactAttempt).order_by(ContactAttempt.id)).all()
    assert [(r.id, r.detail, r.template, r.created_at, r.updated_at) for r in stored] == [
        (r["id"], r.get("detail"), r.get("template"), r["created_at"], r["updated_at"]) for r in rows]

    naive = [{**row, "id": 3000 + i, "idempotency_key": f"naive-{i}"} for i, row in enumerate(rows)]
    naive[7]["updated_at"] = NOW.replace(tzinfo=None)
    with pytest.raises(Exception, match="naive datetime"):
        with engine.begin() as conn:
            copy_rows(conn, ContactAttempt.__table__, naive)


def test_rows_are_updated_only_where_the_condition_still_holds(engine, accounts):
    from sqlalchemy import update

    from campaigns.db.bulk import update_rows

    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    table = ContactAttempt.__table__
    with engine.begin() as conn:
        created = dict(insert_ignoring_conflicts(conn, table, _rows(run_id, accounts), "idempotency_key"))
        ids = sorted(created)
        conn.execute(update(table).where(table.c.id == ids[0]).values(status="sent"))  # someone else got there first
    later = NOW.replace(hour=NOW.hour + 1)
    with engine.begin() as conn:
        update_rows(conn, table, [{"id": i, "status": "suppressed", "reason": f"r{i}", "policy_trace": [{"n": i}]}
                                  for i in ids], where=[table.c.status == "queued"], values={"updated_at": later})
    with engine.connect() as conn:
        stored = {r.id: r for r in conn.execute(select(ContactAttempt))}
    assert (stored[ids[0]].status, stored[ids[0]].reason, stored[ids[0]].updated_at) == ("sent", None, NOW)
    for i in ids[1:]:
        assert (stored[i].status, stored[i].reason, stored[i].policy_trace, stored[i].updated_at) == \
            ("suppressed", f"r{i}", [{"n": i}], later)


@pytest.mark.parametrize("size", [3, N])  # an executemany, and the staging table (COPY on PostgreSQL)
def test_updated_keys_come_back_and_a_trace_grows_in_the_database_keeping_its_order(engine, accounts, size):
    """``returning`` says which rows the condition let through; ``append`` adds one element to a JSON array
    (NULL, empty or not) without reading it back, and what was there keeps its keys in their order."""
    from sqlalchemy import update

    from campaigns.db.bulk import update_rows

    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    table = ContactAttempt.__table__
    with engine.begin() as conn:
        ids = sorted(dict(insert_ignoring_conflicts(conn, table, _rows(run_id, accounts[:size]), "idempotency_key")))
        conn.execute(update(table).where(table.c.id == ids[-1]).values(status="sent"))
        conn.execute(update(table).where(table.c.id == ids[0]).values(policy_trace=[]))
        conn.execute(update(table).where(table.c.id == ids[1]).values(
            policy_trace=[{"zeta": 1, "alpha": [1, {"]": "["}], "check": "enqueue"}]))
    element = lambda i: {"check": "release", "n": i, "text": 'a],\\"b\n\t ünï'}  # noqa: E731
    with engine.begin() as conn:
        taken = update_rows(conn, table, [{"id": i, "policy_trace": element(i)} for i in ids],
                            where=[table.c.status == "queued"], values={"status": "sending"}, returning=True,
                            append=["policy_trace"])
    assert sorted(taken) == ids[:-1]
    with engine.connect() as conn:
        stored = {r.id: r.policy_trace for r in conn.execute(select(ContactAttempt.id, ContactAttempt.policy_trace))}
    assert stored[ids[0]] == [element(ids[0])]
    assert stored[ids[1]] == [{"zeta": 1, "alpha": [1, {"]": "["}], "check": "enqueue"}, element(ids[1])]
    assert list(stored[ids[1]][0]) == ["zeta", "alpha", "check"]
    assert stored[ids[-1]] == _rows(run_id, accounts[:size])[len(ids) - 1]["policy_trace"]  # not taken
    for n, i in enumerate(ids[2:-1], start=2):
        before = _rows(run_id, accounts[:size])[n]["policy_trace"] or []
        assert stored[i] == before + [element(i)]


def test_a_key_taken_by_a_concurrent_writer_between_the_lookup_and_the_copy_is_left_to_the_database(
        engine, accounts, monkeypatch):
    """The quick path looks up which keys are taken, then copies the rest straight in; a key another run
    writes in between makes the copy fail, and the batch goes the staging way instead: still each key once."""
    from campaigns.db import bulk

    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    table = ContactAttempt.__table__
    with engine.begin() as conn:
        insert_ignoring_conflicts(conn, table, _rows(run_id, accounts[:5]), "idempotency_key")
    monkeypatch.setattr(bulk, "taken_keys", lambda *args: set())  # the lookup misses what is already there
    real_staging, staged = bulk._staging_table, []
    monkeypatch.setattr(bulk, "_staging_table", lambda *args: staged.append(1) or real_staging(*args))
    with engine.begin() as conn:
        created = insert_ignoring_conflicts(conn, table, _rows(run_id, accounts), "idempotency_key")
    assert staged == ([1] if engine.dialect.name == "postgresql" else [])
    assert sorted(key for _, key in created) == sorted(r["idempotency_key"] for r in _rows(run_id, accounts[5:]))
    with engine.connect() as conn:
        keys = conn.execute(select(ContactAttempt.idempotency_key)).scalars().all()
    assert len(keys) == len(set(keys)) == N


def test_a_bad_row_in_a_batch_is_the_database_error_an_insert_gives(engine, accounts):
    """The batch paths (COPY, sqlite3's executemany) fail as ``conn.execute`` would: SQLAlchemy's
    IntegrityError (what callers catch), its parameters hidden, and the transaction keeps nothing of the batch."""
    from sqlalchemy.exc import IntegrityError

    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    rows = _rows(run_id, accounts)
    rows[7]["status"] = None  # NOT NULL
    with pytest.raises(IntegrityError) as caught:
        with engine.begin() as conn:
            insert_ignoring_conflicts(conn, ContactAttempt.__table__, rows, "idempotency_key")
    assert caught.value.hide_parameters and "parameters" not in str(caught.value)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContactAttempt)).scalar_one() == 0


def test_a_batch_upsert_inserts_updates_keeps_and_never_switches_a_sticky_flag_off(engine):
    """``upsert`` of a batch (COPY and one INSERT ... SELECT on PostgreSQL, sqlite3's executemany on SQLite)
    leaves what upserting the rows one by one would: new rows in, stored rows updated but for the columns
    kept, an opt-out switched on by any row and never off, a key repeated in the batch written once."""
    from campaigns.db.engine import upsert
    from campaigns.db.models import Customer

    table = Customer.__table__
    later = NOW.replace(year=NOW.year + 1)

    def customer(i: int, at, **values) -> dict:
        return {"id": f"C{i:04d}", "name": f"name {i}", "email": None, "phone": None, "locale": "en-US",
                "email_opt_out": False, "sms_opt_out": False, "created_at": at, "updated_at": at, **values}

    with engine.begin() as conn:
        upsert(conn, table, [customer(i, NOW, email_opt_out=i % 2 == 0) for i in range(N)], ["id"],
               keep_on_update=["created_at"], only_set=["email_opt_out", "sms_opt_out"])
    batch = [customer(i, later, name=f"renamed {i}", sms_opt_out=i == 3) for i in range(N // 2, N + N // 2)]
    batch.append(customer(N + 1, later, name="last wins"))  # a key twice: its last row, any row's opt-out
    batch.append(customer(N // 2 + 1, later, name="again", sms_opt_out=False, email_opt_out=False))
    batch[1]["sms_opt_out"] = True  # C(N//2 + 1) opted out in its first row
    with engine.begin() as conn:
        upsert(conn, table, batch, ["id"], keep_on_update=["created_at"], only_set=["email_opt_out", "sms_opt_out"])
    with engine.connect() as conn:
        stored = {r.id: r for r in conn.execute(select(Customer))}
    assert len(stored) == N + N // 2
    for i in range(N + N // 2):
        row = stored[f"C{i:04d}"]
        assert row.created_at == (NOW if i < N else later)  # created_at is kept on update
        assert row.email_opt_out == (i < N and i % 2 == 0)  # switched on once, never off by the later file
        if i >= N // 2:
            assert row.updated_at == later
    assert stored[f"C{N + 1:04d}"].name == "last wins"
    again = stored[f"C{N // 2 + 1:04d}"]
    assert again.name == "again" and again.sms_opt_out
    assert stored[f"C{N // 2 - 1:04d}"].name == f"name {N // 2 - 1}"  # not in the batch: untouched
    # a column the rows leave out: its model default on insert, kept on update
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == "C0000").values(sms_consent=True))
        upsert(conn, table, [customer(i, later) for i in range(N)], ["id"], keep_on_update=["created_at"])
    with engine.connect() as conn:
        consent = dict(conn.execute(select(Customer.id, Customer.sms_consent)).all())
    assert consent["C0000"] is True and consent[f"C{N + 1:04d}"] is False


def test_statistics_are_fresh_after_a_bulk_load(engine, accounts):
    """A run that logs a million rows leaves PostgreSQL's planner statistics that know them (autovacuum would wait
    for a tenth of the table to change); on SQLite there is nothing to refresh."""
    from sqlalchemy import text

    from campaigns.db.engine import refresh_statistics

    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW)
    with engine.begin() as conn:
        copy_rows(conn, ContactAttempt.__table__, [{"id": 1 + i, **row} for i, row in enumerate(_rows(run_id, accounts))])
    refresh_statistics(engine, ["contact_attempts"])
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        columns = conn.execute(text("SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() "
                                    "AND tablename = 'contact_attempts'")).scalar_one()
    assert columns > 20  # every column of the table has its statistics
