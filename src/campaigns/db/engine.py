"""Engines, migrations, the upsert and insert the writers need per dialect, and IN-list batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Table, and_, any_, bindparam, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

from campaigns.db.bulk import upsert_rows
from campaigns.files import create_private_file, ensure_private_directory, make_private
from campaigns.sealing.keys import KeyRing
from campaigns.sealing.seal import use_keys

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class DatabaseMissing(Exception):
    """The SQLite file (or its directory) named by the settings does not exist."""


def make_engine(url: str, *, keys: KeyRing | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url``, sealing personal data with ``keys`` (without them, reading or writing a sealed column
    fails with ``MissingKeys``; ``campaigns.bootstrap.build`` gives the settings' keys); SQLite gets WAL, a busy
    timeout and foreign keys.

    Bound parameters are never shown in errors or logs (``hide_parameters``): a
    failed statement would otherwise print the customers' names, emails and
    phones it carried.
    """
    engine = _engine_for(url, **kwargs)
    use_keys(engine, keys)
    return engine


def _engine_for(url: str, **kwargs: Any) -> Engine:
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    engine = create_engine(url, pool_pre_ping=True, **kwargs)

    @event.listens_for(engine, "connect")
    def _binary_arrays(dbapi_connection, _record):
        # A list bound as one parameter (``among``: ``= ANY(:ids)``, thousands of ids a chunk) goes in binary:
        # psycopg's text form quotes and escapes each element in Python (1.1 µs an id, 0.3 in binary).
        from psycopg.types.array import ListBinaryDumper

        dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)

    return engine


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and for ``:memory:``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def prepare_sqlite_file(url: str, *, create: bool, data_dir: Path | None = None) -> None:
    """Make sure a SQLite database file is where the URL says, readable by its owner only.

    SQLite would silently create a missing file (and the settings may have a
    typo), so: without ``create`` a missing file is an error; with it, the file is
    created 0600, but its directory only if it is ``data_dir`` (our own ``var/``).
    Other databases pass through.
    """
    path = sqlite_file(url)
    if path is None:
        return
    if path.exists():
        make_private(path)
        return
    if not create:
        raise DatabaseMissing(f"no database at {path}: run `campaigns db upgrade` to create it, "
                              "or check CAMPAIGNS_DATABASE_URL")
    if not path.parent.is_dir():
        if data_dir is None or path.parent.resolve() != Path(data_dir).resolve():
            raise DatabaseMissing(f"directory {path.parent} does not exist: create it, or check "
                                  "CAMPAIGNS_DATABASE_URL")
        ensure_private_directory(path.parent)
    create_private_file(path)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser treats % as interpolation: URL-encoded passwords and options need escaping.
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["engine"] = engine
    return config


def downgrade_database(engine: Engine, revision: str = "base") -> None:
    command.downgrade(alembic_config(engine), revision)


def schema_revision(engine: Engine) -> tuple[str | None, str | None]:
    """(current revision in the database, head revision in the code)."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


class SchemaNotReady(Exception):
    """The database is missing, or its schema is not the one this code expects."""


def require_current_schema(engine: Engine) -> None:
    """Fail at once, with what to do, unless the database exists at the code's schema revision.

    Checked once where a run starts: without it a worker with no database would
    create an empty SQLite file and each task would retry ``no such table`` first.
    """
    try:
        prepare_sqlite_file(engine.url.render_as_string(hide_password=False), create=False)
    except DatabaseMissing as exc:
        raise SchemaNotReady(str(exc)) from None
    current, head = schema_revision(engine)
    if current != head:
        raise SchemaNotReady(f"database schema is at {current or 'nothing'}, code expects {head}: "
                             "run `campaigns db upgrade`")


def refresh_statistics(engine: Engine, tables: Sequence[str]) -> None:
    """Fresh planner statistics for ``tables`` after a bulk load (PostgreSQL's ANALYZE samples 30,000 rows: a
    fraction of a second). Autovacuum gets there too, but only after a tenth of a table has changed: a million rows
    logged in one run would meet queries planned for a table that had none. SQLite: nothing (its planner needs
    no statistics for this schema's lookups, and ANALYZE there reads whole tables)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.exec_driver_sql(f'ANALYZE "{table}"')


IN_BATCH = 1000  # ids per IN (...) list: far below every backend's limit on bound parameters


def among(conn: Connection, column: Any, values: Sequence[Any]) -> Any:
    """``column IN (values)`` for a batch of ids; on PostgreSQL ``column = ANY(:array)``, one parameter.

    An expanded IN list is new SQL text for every batch size, which psycopg parses
    and converts in Python each time (a quarter of a stage's CPU in issue 12's
    profile); the array form is one short statement, whatever the count.
    """
    values = list(values)
    if conn.dialect.name == "postgresql":
        condition = column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
        kinds = {type(v) for v in values}
        if len(kinds) == 1 and kinds <= {str, int}:
            # Also the batch's own range: an index range scan whatever the statistics say. Without fresh
            # ones (a contact log that grew by a million rows within the run) the planner priced a
            # thousand-id ANY as most of the table and scanned all of it: 1 s a query instead of 8 ms.
            condition = and_(column.between(min(values), max(values)), condition)
        return condition
    return column.in_(values)


def driver_rows(conn: Connection, stmt: Any) -> list[tuple]:
    """A SELECT's rows as psycopg gives them, on PostgreSQL: tuples, with no SQLAlchemy row or type processing.

    For hot reads of many small rows (a refresh reads the whole ledger of every account it touches), where
    building SQLAlchemy's rows and converting each timestamp cost more than the query. What that skips is the
    caller's to do: a timestamp comes in the session's time zone (``UTCDateTime`` would make it UTC). The
    parameters reach psycopg as they are, so they must be plain values (ids, lists of ids: ``among``).
    """
    compiled = stmt.compile(dialect=conn.dialect)
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(str(compiled), compiled.params)
        return cursor.fetchall()


def in_batches(values: Sequence[Any], size: int = IN_BATCH) -> Iterator[list[Any]]:
    """``values`` in consecutive lists of at most ``size``, for ``column.in_(...)`` over many ids."""
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Iterable[str],
    *,
    keep_on_update: Iterable[str] = (),
    only_set: Iterable[str] = (),
) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE, for SQLite and PostgreSQL.

    Columns in ``keep_on_update`` (e.g. ``created_at``) are written on insert only.
    Boolean columns in ``only_set`` can be switched on by an update, never off
    (an opt-out we recorded is not undone by a stale export).
    """
    if not rows:
        return
    key = list(key)
    keep = set(key) | set(keep_on_update)
    if upsert_rows(conn, table, rows, key, keep, set(only_set)):
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - guarded by settings
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    columns = [c for c in rows[0] if c not in keep]
    sticky = set(only_set)
    stmt = stmt.on_conflict_do_update(
        index_elements=key,
        set_={c: (table.c[c] | getattr(stmt.excluded, c)) if c in sticky else getattr(stmt.excluded, c)
              for c in columns},
    )
    conn.execute(stmt, list(rows))
