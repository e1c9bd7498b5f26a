"""Personal data sealed at rest (issue 13): values, keys, blind indexes, rotation, the migration, the demo's file.

The checks read the database's raw text (no ``Sealed`` type in between), so a value stored plain shows.
"""

from __future__ import annotations

import base64
import os
import stat
from datetime import timedelta

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from campaigns.channels import OutboxGateway
from campaigns.db.engine import make_engine
from campaigns.schema_upgrade import upgrade_database
from campaigns.db.models import Customer, OutboxMessage, RenderedMessage, Stage
from campaigns.sealing.keys import (
    KeyProblem,
    KeyRing,
    MissingKeys,
    create_key_file,
    ensure_keys,
    load_keys,
    new_key,
    read_key_file,
)
from campaigns.privacy.rotation import anything_to_seal, key_census, reseal, retire_key, rotate_keys
from campaigns.sealing.seal import PREFIX, SealBroken, UnknownKey, open_sealed, ring_for, seal, use_keys
from campaigns.settings import Settings
from tests.conftest import NOW, create_postgres_schema, drop_postgres_schema, postgres_schema_url
from tests.factories import add_account, add_customer, keyed_engine
from tests.contact.test_pipeline import run_stage

RING = KeyRing({"a": new_key()}, "a", new_key())


def raw_customers(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text("SELECT id, name, email, phone, email_index, phone_index FROM customers "
                                 "ORDER BY id")).all()


@pytest.fixture
def keyed(engine):
    """The test's engine (it has the session's keys, from bootstrap); its keys put back as they were afterwards."""
    before = ring_for(engine.dialect)
    yield engine
    use_keys(engine, before)


# --- one value ---------------------------------------------------------------------------------------------

@hypothesis_settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_text_seals_and_opens_and_the_sealed_form_never_holds_it(plain):
    sealed = seal(RING, plain, "customers.name")
    assert sealed.startswith(PREFIX + "a$")
    assert open_sealed(RING, sealed, "customers.name") == plain
    if len(plain) >= 4:
        assert plain not in sealed
    assert seal(RING, plain, "customers.name") != sealed  # a fresh nonce every time


def test_a_value_moved_altered_or_opened_with_the_wrong_key_fails_loudly_without_showing_it():
    sealed = seal(RING, "Grace Garcia", "customers.name")
    with pytest.raises(SealBroken) as moved:  # the column is authenticated with the value
        open_sealed(RING, sealed, "customers.email")
    body = sealed[len(PREFIX) + 2:]
    flipped = sealed[:len(PREFIX) + 2] + ("A" if body[5] != "A" else "B") + body[:5] + body[6:]
    with pytest.raises(SealBroken):
        open_sealed(RING, sealed[:len(PREFIX) + 2] + body[:20] + ("A" if body[20] != "A" else "B") + body[21:],
                    "customers.name")
    with pytest.raises(SealBroken):
        open_sealed(RING, flipped, "customers.name")
    with pytest.raises(SealBroken):
        open_sealed(RING, sealed[:-6], "customers.name")  # cut short
    other = KeyRing({"a": new_key()}, "a", new_key())  # same id, other bytes: the wrong key
    with pytest.raises(SealBroken) as wrong:
        open_sealed(other, sealed, "customers.name")
    with pytest.raises(UnknownKey) as unknown:
        open_sealed(KeyRing({"b": new_key()}, "b", new_key()), sealed, "customers.name")
    for exc in (moved, wrong, unknown):
        assert "Grace" not in str(exc.value) and sealed not in str(exc.value)
    assert "'a'" in str(unknown.value) and "customers.name" in str(unknown.value)


def test_a_plain_value_from_before_sealing_reads_as_it_is():
    assert open_sealed(RING, "grace@example.com", "customers.email") == "grace@example.com"


def test_keys_never_show_in_a_repr():
    assert base64.b64encode(RING.data_keys["a"]).decode() not in repr(RING)
    assert "KeyRing(primary='a'" in repr(RING)


# --- where the keys come from ---------------------------------------------------------------------------

def _settings(tmp_path, **values) -> Settings:
    return Settings(data_dir=tmp_path, data_keys=values.get("data_keys", ""),
                    blind_index_key=values.get("blind_index_key", ""), key_file=values.get("key_file"))


def test_no_keys_is_one_clear_error_that_says_what_to_do(tmp_path):
    with pytest.raises(MissingKeys, match="campaigns keys init"):
        load_keys(_settings(tmp_path))
    with pytest.raises(MissingKeys, match="CAMPAIGNS_BLIND_INDEX_KEY is empty"):
        load_keys(_settings(tmp_path, data_keys=f"k1:{base64.b64encode(new_key()).decode()}"))


@pytest.mark.parametrize("data_keys, message", [
    ("k1", "item 1 is not id:base64"),
    ("k1:!!!", "not base64"),
    (f"k1:{base64.b64encode(b'short').decode()}", "is 5 bytes, not 32"),
    (f"k1:{base64.b64encode(bytes(32)).decode()},k1:{base64.b64encode(bytes(32)).decode()}", "given twice"),
    (f"bad id:{base64.b64encode(bytes(32)).decode()}", "letters, digits"),
])
def test_malformed_keys_name_the_setting_never_the_key(tmp_path, data_keys, message):
    with pytest.raises(KeyProblem, match=message) as caught:
        load_keys(_settings(tmp_path, data_keys=data_keys, blind_index_key=base64.b64encode(new_key()).decode()))
    assert "CAMPAIGNS_DATA_KEYS" in str(caught.value)


def test_the_key_file_is_private_made_once_and_read_back(tmp_path):
    settings = _settings(tmp_path / "var")
    path, made = ensure_keys(settings)
    assert made and path == tmp_path / "var" / "data-keys.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    ring = load_keys(settings)
    assert ring.primary == "k1" and ring.source == str(path)
    again, made_again = ensure_keys(settings)
    assert again == path and not made_again and load_keys(settings).data_keys == ring.data_keys
    assert create_key_file(path)[0].data_keys == ring.data_keys  # a second maker gets the same keys
    path.write_text("{not json")
    with pytest.raises(KeyProblem, match="cannot be read"):
        read_key_file(path)


# --- stored sealed ------------------------------------------------------------------------------------------

def test_customers_are_stored_sealed_and_read_back_plain(keyed):
    add_customer(keyed, "C1", name="Grace Garcia", email="grace@example.com", phone="+12125550177")
    (row,) = raw_customers(keyed)
    for value in row[1:4]:
        assert value.startswith(PREFIX)
    assert not {"Grace Garcia", "grace@example.com", "+12125550177"} & {v for v in row}
    assert len(row.email_index) == 64 and len(row.phone_index) == 64
    with keyed.connect() as conn:
        assert conn.execute(select(Customer.name, Customer.email, Customer.phone)).one() == (
            "Grace Garcia", "grace@example.com", "+12125550177")


def test_a_stop_by_phone_and_an_unsubscribe_by_email_find_the_customer_through_the_blind_index(keyed):
    from campaigns.customers.preferences import receive_sms
    from campaigns.delivery.provider_events import _customers_by_email

    add_customer(keyed, "C1", email="grace@example.com", phone="+12125550177")
    add_customer(keyed, "C2", email="other@example.com", phone="+12125550188")
    assert receive_sms(keyed, "+12125550177", "STOP", NOW).matched_customers == 1
    with keyed.connect() as conn:
        opted = dict(conn.execute(select(Customer.id, Customer.sms_opt_out)).all())
        assert _customers_by_email(conn, "Grace@Example.com") == ["C1"]
    assert opted == {"C1": True, "C2": False}


def test_a_stage_stores_its_messages_sealed_and_the_outbox_opens_them(keyed, ladder):  # noqa: F811
    add_account(keyed, "A1", days_past_due=3, customer={"name": "Grace Garcia", "email": "grace@example.com"})
    outbox = OutboxGateway(keyed)
    run_stage(keyed, ladder, Stage.soft_nudge, {"email": outbox, "sms": outbox})
    with keyed.connect() as conn:
        raw = conn.execute(text("SELECT recipient, subject, body_text, body_html FROM outbox_messages")).all()
        raw += conn.execute(text("SELECT recipient, subject, body_text, body_html FROM rendered_messages")).all()
        message = conn.execute(select(OutboxMessage.recipient, OutboxMessage.body_text)).one()
    assert raw and all(v.startswith(PREFIX) for row in raw for v in row if v is not None)
    assert not any("Grace" in v or "grace@" in v for row in raw for v in row if v is not None)
    assert message.recipient == "grace@example.com" and "Grace" in message.body_text


def test_the_wrong_key_stops_a_run_with_one_clear_error_and_sends_nothing(keyed, ladder):  # noqa: F811
    add_account(keyed, "A1", days_past_due=3)
    key_id = ring_for(keyed.dialect).primary
    use_keys(keyed, KeyRing({key_id: new_key()}, key_id, ring_for(keyed.dialect).index_key))
    outbox = OutboxGateway(keyed)
    with pytest.raises(SealBroken, match="does not open"):
        run_stage(keyed, ladder, Stage.soft_nudge, {"email": outbox, "sms": outbox})
    with keyed.connect() as conn:
        assert conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one() == 0


def test_a_tampered_value_fails_the_read_that_needs_it(keyed):
    add_customer(keyed, "C1", name="Grace Garcia")
    with keyed.begin() as conn:
        stored = conn.execute(text("SELECT name FROM customers")).scalar_one()
        conn.execute(text("UPDATE customers SET name = :v"), {"v": stored[:-8] + "AAAAAAAA"})
    with keyed.connect() as conn, pytest.raises(SealBroken, match="customers.name"):
        conn.execute(select(Customer.name)).all()


# --- rotation --------------------------------------------------------------------------------------------

def _key_file_settings(tmp_path, engine) -> Settings:
    """Settings with the keys in a key file (the engine's current keys as its first key)."""
    from campaigns.sealing.keys import write_key_file

    ring = ring_for(engine.dialect)
    path = write_key_file(tmp_path / "data-keys.json", KeyRing(dict(ring.data_keys), ring.primary, ring.index_key))
    return Settings(database_url=str(engine.url.render_as_string(hide_password=False)), data_dir=tmp_path,
                    key_file=path, data_keys="", blind_index_key="")


def test_rotation_reseals_everything_under_a_new_key_and_the_old_one_can_then_be_retired(keyed, tmp_path, ladder):  # noqa: F811,E501
    for n in range(7):
        add_account(keyed, f"A{n}", days_past_due=3, customer={"name": f"Name {n}"})
    outbox = OutboxGateway(keyed)
    run_stage(keyed, ladder, Stage.soft_nudge, {"email": outbox, "sms": outbox})
    old = ring_for(keyed.dialect).primary
    settings = _key_file_settings(tmp_path, keyed)
    with pytest.raises(KeyProblem, match="seals new values"):
        retire_key(keyed, settings, old)
    result = rotate_keys(keyed, settings, chunk_size=3)
    assert result.new_key and result.primary != old and not result.left
    assert result.resealed.by_table["customers"] == 7
    with keyed.connect() as conn:
        census = key_census(conn, load_keys(settings))
        names = sorted(conn.execute(select(Customer.name)).scalars())
        bodies = conn.execute(select(OutboxMessage.body_text)).scalars().all()
    # Each message is held once: the outbox row (rendered_messages holds those waiting for a provider)
    assert {t for t, counts in census.items() if counts} == {"customers", "outbox_messages"}
    assert all(set(counts) <= {result.primary} for counts in census.values())
    assert names == [f"Name {n}" for n in range(7)] and len(bodies) == 7
    retire_key(keyed, settings, old)
    assert set(load_keys(settings).data_keys) == {result.primary}
    with keyed.connect() as conn:  # everything still opens with the new key alone
        assert sorted(conn.execute(select(Customer.name)).scalars()) == names


def test_a_rotation_stopped_half_way_resumes_and_never_overwrites_a_concurrent_write(keyed, tmp_path):
    for n in range(6):
        add_customer(keyed, f"C{n}", name=f"Name {n}")
    settings = _key_file_settings(tmp_path, keyed)
    old_ring = ring_for(keyed.dialect)

    class Stop(Exception):
        pass

    def stop_after_first_chunk(table, n):
        # A stage run that still holds the old keys updates a row the pass has not reached yet, and one it has
        # passed: neither write may be lost, and the second pass seals the one under the old key.
        with keyed.begin() as conn:
            conn.execute(text("UPDATE customers SET name = :v WHERE id IN ('C0', 'C5')"),
                         {"v": seal(old_ring, "Renamed", "customers.name")})
        raise Stop

    new_ring = old_ring.with_primary("k9", new_key())
    with pytest.raises(Stop):
        reseal(keyed, new_ring, chunk_size=2, on_chunk=stop_after_first_chunk)
    with keyed.connect() as conn:  # the first chunk (C0, C1: 6 values) went, then C0's and C5's names changed
        assert key_census(conn, new_ring)["customers"] == {"k9": 5, old_ring.primary: 13}
    from campaigns.sealing.keys import write_key_file

    write_key_file(settings.key_file, new_ring)
    result = rotate_keys(keyed, settings, chunk_size=2)
    assert not result.new_key and result.primary == "k9" and not result.left  # it went on with k9
    with keyed.connect() as conn:
        names = dict(conn.execute(select(Customer.id, Customer.name)).all())
    assert names == {"C0": "Renamed", "C1": "Name 1", "C2": "Name 2", "C3": "Name 3", "C4": "Name 4",
                     "C5": "Renamed"}


def test_a_reader_holding_the_old_keys_reads_the_key_file_again_after_a_rotation(keyed, tmp_path, monkeypatch):

    add_customer(keyed, "C1", name="Grace Garcia")
    settings = _key_file_settings(tmp_path, keyed)
    monkeypatch.delenv("CAMPAIGNS_DATA_KEYS")
    monkeypatch.delenv("CAMPAIGNS_BLIND_INDEX_KEY")
    monkeypatch.setenv("CAMPAIGNS_KEY_FILE", str(settings.key_file))
    before = ring_for(keyed.dialect)
    rotate_keys(keyed, settings)
    use_keys(keyed, before)  # a worker that loaded its keys before the rotation
    with keyed.connect() as conn:
        assert conn.execute(select(Customer.name)).scalar_one() == "Grace Garcia"
    assert ring_for(keyed.dialect).primary != before.primary  # and now seals with the new key


# --- the migration that brought sealing ------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_a_plain_database_seals_it_in_place_and_a_downgrade_opens_it_again(backend, tmp_path):
    from campaigns.db.engine import downgrade_database

    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        schema = create_postgres_schema()
        url = postgres_schema_url(schema)
    engine = keyed_engine(url)
    try:
        upgrade_database(engine, "0009")
        with engine.begin() as conn:
            for n in range(5):
                conn.execute(text(
                    "INSERT INTO customers (id, name, email, phone, locale, email_opt_out, sms_opt_out, sms_consent,"
                    " email_is_employer, email_employer_consent, vulnerable, push_enabled, push_opt_out,"
                    " email_invalid, created_at, updated_at) VALUES (:id, :name, :email, '+12125550123', 'en-US',"
                    " false, false, true, false, false, false, false, false, false, :now, :now)"),
                    {"id": f"C{n}", "name": f"Old Name {n}", "email": f"old{n}@example.com", "now": NOW})
        assert anything_to_seal_before(engine)
        upgrade_database(engine)
        rows = raw_customers(engine)
        assert all(v.startswith(PREFIX) for row in rows for v in row[1:4])
        with engine.connect() as conn:
            assert not anything_to_seal(conn)
            found = conn.execute(select(Customer.id).where(
                Customer.email_index == ring_for(engine.dialect).blind_index("email", "old3@example.com"))).all()
            assert conn.execute(select(Customer.name).order_by(Customer.id)).scalars().all() == [
                f"Old Name {n}" for n in range(5)]
        assert found == [("C3",)]
        downgrade_database(engine, "0009")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM customers ORDER BY id")).scalars().all() == [
                f"Old Name {n}" for n in range(5)]
    finally:
        engine.dispose()
        if schema:
            drop_postgres_schema(schema)


def anything_to_seal_before(engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM customers WHERE name NOT LIKE '$cc1$%'")).scalar_one() == 5


# --- the command line --------------------------------------------------------------------------------------

def test_keys_commands_init_status_rotate_retire(engine, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from campaigns.cli import app

    runner = CliRunner()
    monkeypatch.delenv("CAMPAIGNS_DATA_KEYS")
    monkeypatch.delenv("CAMPAIGNS_BLIND_INDEX_KEY")
    monkeypatch.setenv("CAMPAIGNS_DATA_DIR", str(tmp_path))
    try:
        missing = runner.invoke(app, ["keys", "status"])
        assert missing.exit_code == 1 and "error: no keys to seal personal data" in missing.output
        assert "error: no keys" in runner.invoke(app, ["runs"]).output  # anything that reads the database
        checked = runner.invoke(app, ["templates", "check"])  # what never touches personal data needs no keys
        assert checked.exit_code == 0 and "problem(s)" in checked.output
        made = runner.invoke(app, ["keys", "init"])
        assert made.exit_code == 0 and f"key file made: {tmp_path / 'data-keys.json'}" in made.output
        assert "already there" in runner.invoke(app, ["keys", "init"]).output
        from campaigns.bootstrap import services

        assert services().engine is engine  # the process's engine, given the new key file's keys
        add_customer(engine, "C1", name="Grace Garcia")
        status = runner.invoke(app, ["keys", "status"])
        assert status.exit_code == 0 and "k1 (primary)" in status.output
        rotated = runner.invoke(app, ["keys", "rotate"])
        assert rotated.exit_code == 0, rotated.output
        assert "sealed with key k2 (a new key" in rotated.output and "customers 1" in rotated.output
        retired = runner.invoke(app, ["keys", "retire", "k1"])
        assert retired.exit_code == 0 and "key k1 retired" in retired.output
        assert "Grace" not in rotated.output + status.output
    finally:
        use_keys(engine, None)


# --- the demo, byte by byte ---------------------------------------------------------------------------------

def _database_bytes(engine) -> bytes:
    """Every byte a person with a copy of the database would have: the SQLite file with its WAL, or every
    table of the PostgreSQL schema as text (what a dump holds)."""
    from campaigns.db.engine import sqlite_file

    path = sqlite_file(engine.url.render_as_string(hide_password=False))
    if path is not None:
        return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    chunks = []
    with engine.connect() as conn:
        for (name,) in conn.execute(text("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_schema = current_schema()")):
            for row in conn.execute(text(f'SELECT t::text FROM "{name}" t')):
                chunks.append(row[0].encode())
    return b"\n".join(chunks)


@pytest.mark.slow
def test_after_the_demo_no_email_phone_or_name_is_stored_plain_anywhere(prefect_harness, engine, tmp_path,
                                                                         monkeypatch):
    """The demo runs the whole day (import, ladder, dispatch, simulated payments, review); then the raw bytes of
    the database, Prefect's database, the demo's outputs and what it printed hold no customer's email, phone or
    name. Nothing is decoded: a plain value anywhere shows."""
    import pandas as pd
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL
    from typer.testing import CliRunner

    from campaigns.cli import app

    monkeypatch.setenv("CAMPAIGNS_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["demo", "--accounts", "300", "--as-of", "2026-11-22",
                                      "--now", "2026-11-22T14:00:00Z"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    portfolio = pd.read_csv(tmp_path / "demo" / "portfolio.csv", dtype=str)  # the lender's input: plain by nature
    values = {v for column in ("name", "email", "phone") for v in portfolio[column].dropna() if len(v) >= 6}
    with engine.connect() as conn:  # the demo did store them, as the stage uses them (opened through the keys)
        stored = conn.execute(select(Customer.name, Customer.email, Customer.phone)).all()
        assert conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one() > 20
    values |= {v for row in stored for v in row if v and len(v) >= 6}
    assert len(stored) > 200 and len(values) > 500
    # What the demo's customers wrote back (replies, sealed like messages) must not show either.
    from campaigns.db.models import CustomerAction
    from campaigns.portfolio.demo import DEMO_REPLIES

    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(CustomerAction.action == "replied")).scalar_one() > 0
    values |= {v for texts in DEMO_REPLIES.values() for v in texts if len(v.encode()) >= 6}
    csv = (tmp_path / "demo" / "portfolio.csv").read_bytes()
    assert sum(v.encode() in csv for v in values) > 500  # the scan finds them where they are plain
    places = {"the database": _database_bytes(engine), "the output": result.output.encode()}
    prefect_url = make_url(PREFECT_API_DATABASE_CONNECTION_URL.value())  # the harness's: on PostgreSQL
    backend = prefect_url.get_backend_name()
    prefect_db = create_engine(prefect_url.set(drivername="postgresql+psycopg" if backend == "postgresql" else backend))
    try:
        places["Prefect's database"] = _database_bytes(prefect_db)
    finally:
        prefect_db.dispose()
    assert len(places["Prefect's database"]) > 10_000  # the demo's runs, tasks, logs and artifacts are in it
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "portfolio.csv":
            places[str(path.relative_to(tmp_path))] = path.read_bytes()
    assert "review/demo/report.html" in places and len(places["the database"]) > 100_000
    found = {(where, value) for where, data in places.items() for value in values if value.encode() in data}
    assert not found, f"{len(found)} plain personal values, in: {sorted({w for w, _ in found})}"


def test_a_rotation_while_a_stage_runs_loses_nothing_and_sends_nothing_twice(keyed, tmp_path, ladder):  # noqa: F811
    """PostgreSQL, two threads: a soft_nudge stage over 240 accounts in chunks of 20, and a key rotation in
    chunks of 15. Afterwards every value opens under the new key, every member is in a final state and each
    message was stored once."""
    import threading

    from campaigns.db.models import ContactAttempt

    if keyed.dialect.name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (SQLite has one writer at a time)")
    for n in range(240):
        add_account(keyed, f"A{n:03d}", days_past_due=3, customer={"name": f"Name {n}"})
    settings = _key_file_settings(tmp_path, keyed)
    outbox = OutboxGateway(keyed)
    failures: list[BaseException] = []

    def guarded(work):
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    stage = threading.Thread(target=guarded, args=(lambda: run_stage(
        keyed, ladder, Stage.soft_nudge, {"email": outbox, "sms": outbox}, chunk_size=20),))
    overlapped, results = [], []
    rotation = threading.Thread(target=guarded, args=(lambda: results.append(rotate_keys(
        keyed, settings, chunk_size=15, on_chunk=lambda table, n: overlapped.append(stage.is_alive()))),))
    stage.start(), rotation.start()
    stage.join(300), rotation.join(300)
    assert not failures, failures
    assert any(overlapped) and results[0].new_key  # chunks were re-sealed while the stage was writing
    result = results[0]
    if result.left:  # values the stage sealed under the old key after the passes: a second run resumes
        result = rotate_keys(keyed, settings)
        assert not result.new_key and not result.left
    with keyed.connect() as conn:
        census = key_census(conn, load_keys(settings))
        names = conn.execute(select(Customer.name)).scalars().all()
        statuses = conn.execute(select(ContactAttempt.status, func.count()).group_by(ContactAttempt.status)).all()
        stored = conn.execute(select(OutboxMessage.attempt_id)).scalars().all()
        bodies = conn.execute(select(OutboxMessage.body_text)).scalars().all()
    assert all(set(counts) <= {result.primary} for counts in census.values())
    assert sorted(names) == sorted(f"Name {n}" for n in range(240))
    assert dict(statuses).keys() <= {"sent", "suppressed", "holdout", "failed"} and sum(n for _, n in statuses) == 240
    assert len(stored) == len(set(stored)) == dict(statuses)["sent"] and all("pay.example.com" in b for b in bodies)
