"""Bulk writes on the hot path: COPY on PostgreSQL, the driver's executemany on SQLite.

A stage logs one attempt and usually one message per account. As one multi-row
``INSERT ... VALUES`` of thousands of placeholders, PostgreSQL spent a quarter of
the stage's CPU in psycopg re-parsing that SQL text on every chunk (issue 12's
profile). COPY streams the rows instead; where a conflict must be skipped
(idempotency keys), the rows are copied into a temporary table first and moved
with one short ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, so a re-run still
writes nothing twice. On SQLite, SQLAlchemy's executemany (with RETURNING, batched
into multi-row VALUES) built every row's parameters in Python: 30% of a stage's
time there. The rows go through the columns' own bind processing and then
straight to sqlite3's ``executemany``, whose loop is C.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import psycopg

from sqlalchemy import (JSON, Column, MetaData, Table, Text, any_, bindparam, case, cast, func, insert, literal, or_,
                        select, text, type_coerce, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from campaigns.db.types import UTCDateTime

COPY_FROM = 20  # fewer rows than this: a plain INSERT is as quick and needs no temporary table


def _uses_copy(conn: Connection, rows: Sequence[dict[str, Any]]) -> bool:
    return conn.dialect.name == "postgresql" and len(rows) >= COPY_FROM


def _uses_driver_batch(conn: Connection, rows: Sequence[dict[str, Any]]) -> bool:
    return conn.dialect.name == "sqlite" and len(rows) >= COPY_FROM


def _sqlite_executemany(conn: Connection, sql: str, values) -> int:
    """sqlite3's ``executemany`` in the connection's transaction: the number of rows changed. Its errors
    are SQLAlchemy's (``IntegrityError``, ...), as from ``conn.execute``, with no parameter in them."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, values)
        return cursor.rowcount
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, None, exc, sqlite3.Error, hide_parameters=True) from exc
    finally:
        cursor.close()


def _placeholders(columns: list[str]) -> str:
    return ", ".join("?" for _ in columns)


def _column_list(table: Table, rows: Sequence[dict[str, Any]], defaults: bool = True) -> list[str]:
    """The rows' columns and, with ``defaults`` (an insert), those they leave out that have a default in
    the model (an INSERT through SQLAlchemy would write it: the driver's own paths must too)."""
    columns = list(rows[0])
    unknown = [c for c in columns if c not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {', '.join(unknown)}")
    if not defaults:
        return columns
    return columns + [c.name for c in table.c if c.name not in rows[0] and c.default is not None
                      and (c.default.is_scalar or c.default.is_callable)]


def _default_of(column: Column) -> Any:
    default = column.default
    # A callable default is wrapped by SQLAlchemy to take an execution context; ours (dict, list) need none.
    return default.arg(None) if default.is_callable else default.arg


def _column_sql(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _bind_processor(conn: Connection, column: Column):
    """What SQLAlchemy applies to a value bound to ``column`` on this connection's dialect (the dialect's own
    type: SQLite's DATETIME writes its text form, pandas' Timestamps included)."""
    return column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)


def _copy_values(conn: Connection, table: Table, columns: list[str], rows: Sequence[dict[str, Any]]):
    """Each row's values in ``columns`` order, through the columns' own bind processing (so COPY stores
    what an INSERT would: JSON serialised, None as JSON null, naive datetimes refused, money as Decimal)."""
    if not rows:
        return
    processors = []
    for i, c in enumerate(columns):
        process = _bind_processor(conn, table.c[c])
        if process is not None:
            # A chunk's rows share their timestamps (the run's now): each converted once, not once a row.
            processors.append((i, _last_value_kept(process) if isinstance(table.c[c].type, UTCDateTime) else process))
    defaulted = [(i, table.c[c]) for i, c in enumerate(columns) if c not in rows[0]]
    # The rows' own keys first, then the model's defaults (``_column_list``): the first read at once, in C.
    own = [c for c in columns if c in rows[0]]
    read = itemgetter(*own) if len(own) > 1 and own == columns[:len(own)] else None
    rest = columns[len(own):]
    for row in rows:
        if read is None:
            values = [row.get(c) for c in columns]
        else:
            try:
                values = list(read(row))
            except KeyError:  # a row without some of the first row's keys: None there, as an INSERT would bind
                values = [row.get(c) for c in own]
            if rest:
                values.extend([row.get(c) for c in rest])
        for i, column in defaulted:
            if column.name not in row:
                values[i] = _default_of(column)
        for i, process in processors:
            values[i] = process(values[i])
        yield values


def _last_value_kept(process):
    """``process``, answering at once for the same value object as the call before."""
    last: list[Any] = [_NOTHING, None]

    def processed(value):
        if value is not last[0]:
            last[0], last[1] = value, process(value)
        return last[1]
    return processed


_NOTHING = object()


def _copy(conn: Connection, target: str, columns: list[str], values) -> None:
    """COPY ``values`` into ``target`` inside the connection's current transaction."""
    sql = f"COPY {target} ({_column_sql(columns)}) FROM STDIN"
    cursor = conn.connection.driver_connection.cursor()
    try:
        with cursor.copy(sql) as copy:
            for row in values:
                copy.write_row(row)
    except psycopg.Error as exc:  # SQLAlchemy's error, as from conn.execute (callers catch IntegrityError)
        raise DBAPIError.instance(sql, None, exc, psycopg.Error, hide_parameters=True) from exc


def copy_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (all with the same keys): COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    if _uses_driver_batch(conn, rows):
        columns = _column_list(table, rows)
        _sqlite_executemany(conn, f'INSERT INTO "{table.name}" ({_column_sql(columns)}) '
                                  f'VALUES ({_placeholders(columns)})', _copy_values(conn, table, columns, rows))
        return
    if not _uses_copy(conn, rows):
        conn.execute(insert(table), list(rows))
        return
    columns = _column_list(table, rows)
    _copy(conn, f'"{table.name}"', columns, _copy_values(conn, table, columns, rows))


def _staging_table(conn: Connection, table: Table, columns: list[str]) -> str:
    """A session-local empty table with ``columns`` of ``table`` (created once per connection, emptied at commit)."""
    digest = hashlib.sha1(",".join(columns).encode()).hexdigest()[:8]
    name = f"_copy_{table.name}_{digest}"
    quoted = _column_sql(columns)
    driver = conn.connection.driver_connection
    # No constraints are copied (CREATE ... AS ... WITH NO DATA), so the rows land as given and the
    # real table's keys decide; ON COMMIT DELETE ROWS keeps it empty between transactions.
    driver.execute(f'CREATE TEMPORARY TABLE IF NOT EXISTS "{name}" ON COMMIT DELETE ROWS AS '
                   f'SELECT {quoted} FROM "{table.name}" WITH NO DATA')
    driver.execute(f'TRUNCATE "{name}"')  # a second call in the same transaction starts empty
    return name


def insert_ignoring_conflicts(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], key: str):
    """INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id, key: the rows that were new.

    On PostgreSQL a batch is copied straight into the table when none of its keys is
    taken by a concurrent writer meanwhile, else through COPY into a staging table and
    one ``INSERT ... SELECT ... ON CONFLICT``; a key repeated inside the batch is
    written once.
    """
    if not rows:
        return []
    if _uses_driver_batch(conn, rows) and _has_row_id(table) and "id" not in rows[0]:
        return _sqlite_insert_new(conn, table, _column_list(table, rows), rows, key)
    if not _uses_copy(conn, rows):
        insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert_(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c.id, table.c[key])
        # executemany with RETURNING is supported on both backends ("insertmanyvalues").
        return conn.execute(stmt, list(rows)).all()
    columns = _column_list(table, rows)
    copied = _copy_new_keys(conn, table, columns, rows, key)
    if copied is not None:
        return copied
    staging = _staging_table(conn, table, columns)
    _copy(conn, f'"{staging}"', columns, _copy_values(conn, table, columns, rows))
    quoted = _column_sql(columns)
    return _pg_execute(conn, f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{staging}" '
                             f'ON CONFLICT ("{key}") DO NOTHING RETURNING id, "{key}"', fetch=True)


def _has_row_id(table: Table) -> bool:
    return "id" in table.c and table.c.id.primary_key and table.c.id.autoincrement is True


def _sqlite_insert_new(conn: Connection, table: Table, columns: list[str], rows: Sequence[dict[str, Any]],
                       key: str) -> list[Any]:
    """SQLite's ``insert_ignoring_conflicts``: one executemany of ``ON CONFLICT DO NOTHING``, then the
    new rows read back. They are the ``n`` highest ids among the batch's keys: an INTEGER PRIMARY KEY is
    the rowid, given as one more than the largest, and from its first insert the transaction holds
    SQLite's only write lock, so no other writer's row lands among or after them until it commits."""
    n = _sqlite_executemany(conn, f'INSERT INTO "{table.name}" ({_column_sql(columns)}) '
                                  f'VALUES ({_placeholders(columns)}) ON CONFLICT ("{key}") DO NOTHING',
                            _copy_values(conn, table, columns, rows))
    if n <= 0:
        return []
    process = _bind_processor(conn, table.c[key]) or (lambda value: value)
    keys = json.dumps(list(dict.fromkeys(process(r[key]) for r in rows)))
    found = conn.exec_driver_sql(
        f'SELECT id, "{key}" FROM "{table.name}" WHERE "{key}" IN (SELECT value FROM json_each(?)) '
        f'ORDER BY id DESC LIMIT ?', (keys, n)).all()
    return [tuple(r) for r in reversed(found)]


def taken_keys(conn: Connection, table: Table, key: str, keys: Sequence[Any]) -> set[Any]:
    """Which of ``keys`` are in ``table`` already (one parameter: an array on PostgreSQL, JSON on SQLite)."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return set()
    if conn.dialect.name == "sqlite":
        return {r[0] for r in conn.exec_driver_sql(
            f'SELECT "{key}" FROM "{table.name}" WHERE "{key}" IN (SELECT value FROM json_each(?))',
            (json.dumps(wanted),))}
    return set(conn.execute(select(table.c[key]).where(
        table.c[key] == any_(bindparam("keys", wanted, type_=postgresql.ARRAY(table.c[key].type))))).scalars())


def hold_write_lock(conn: Connection, table: Table) -> None:
    """SQLite: take the database's one write lock now, for the rest of the transaction (an UPDATE that matches
    no row: ids start at 1), so that what this transaction reads before it writes (which keys are taken, the
    largest id) stays true until it commits. PostgreSQL: nothing (its writers meet at the unique keys)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f'UPDATE "{table.name}" SET id = id WHERE id = 0')


def allocate_ids(conn: Connection, table: Table, n: int) -> list[int]:
    """``n`` new ids of ``table`` for rows this transaction will write, known before they are written (so rows
    that point at them can be built in the same pass). PostgreSQL takes them from the table's sequence; SQLite
    holds its one write lock first (``hold_write_lock``), so the ids after the largest stay this transaction's
    until it ends."""
    if n <= 0:
        return []
    if conn.dialect.name == "sqlite":
        hold_write_lock(conn, table)
        start = conn.exec_driver_sql(f'SELECT COALESCE(MAX(id), 0) FROM "{table.name}"').scalar_one()
        return list(range(start + 1, start + n + 1))
    return list(conn.execute(text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
                             {"table": f'"{table.name}"', "n": n}).scalars())


def _copy_new_keys(conn: Connection, table: Table, columns: list[str], rows: Sequence[dict[str, Any]], key: str):
    """The usual case, quicker: the keys already taken are looked up, the other rows get ids from the
    table's sequence and are copied straight into the table (no staging table, no second pass). Returns
    (id, key) of the rows written, or None when a concurrent writer took one of the keys in the meantime
    (the copy is rolled back to its savepoint, and the caller's staging path lets the database decide)."""
    if "id" in columns or "id" not in table.c or not table.c.id.autoincrement:
        return None
    fresh, seen = [], taken_keys(conn, table, key, [r[key] for r in rows])
    for row in rows:  # a key repeated in the batch: its first row, as ON CONFLICT DO NOTHING would keep
        if row[key] not in seen:
            seen.add(row[key])
            fresh.append(row)
    if not fresh:
        return []
    ids = conn.execute(text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
                       {"table": f'"{table.name}"', "n": len(fresh)}).scalars().all()
    try:
        with conn.begin_nested():
            _copy(conn, f'"{table.name}"', ["id", *columns],
                  ([i, *values] for i, values in zip(ids, _copy_values(conn, table, columns, fresh))))
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.errors.UniqueViolation):
            return None
        raise
    return list(zip(ids, (row[key] for row in fresh)))


def upsert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str],
                keep: set[str], sticky: set[str]) -> bool:
    """``engine.upsert`` of a batch, quicker: COPY into a staging table and one ``INSERT ... SELECT ... ON
    CONFLICT DO UPDATE`` on PostgreSQL, sqlite3's executemany on SQLite. False: too few rows for it (the
    caller's plain statement is as quick).

    A key repeated in the batch is written once, with its last row's values and, for a ``sticky`` flag, any
    row's (what upserting the rows one after another leaves; PostgreSQL refuses to update a row twice
    in one statement).
    """
    if not (_uses_copy(conn, rows) or _uses_driver_batch(conn, rows)):
        return False
    columns = _column_list(table, rows)
    merged: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        if k in merged and sticky:
            before = merged[k]
            row = {**row, **{c: bool(row.get(c)) or bool(before.get(c)) for c in sticky if c in row}}
        merged[k] = row
    unique = list(merged.values())
    quoted = _column_sql(columns)
    update_sql = ", ".join(
        f'"{c}" = ("{table.name}"."{c}" OR excluded."{c}")' if c in sticky else f'"{c}" = excluded."{c}"'
        for c in rows[0] if c not in keep)  # a column the rows leave out keeps its stored value
    conflict = f'ON CONFLICT ({_column_sql(list(key))}) ' + (f"DO UPDATE SET {update_sql}" if update_sql
                                                            else "DO NOTHING")
    if conn.dialect.name == "sqlite":
        _sqlite_executemany(conn, f'INSERT INTO "{table.name}" ({quoted}) VALUES ({_placeholders(columns)}) '
                                  f'{conflict}', _copy_values(conn, table, columns, unique))
        return True
    staging = _staging_table(conn, table, columns)
    _copy(conn, f'"{staging}"', columns, _copy_values(conn, table, columns, unique))
    _pg_execute(conn, f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{staging}" {conflict}')
    return True


def _pg_execute(conn: Connection, sql: str, fetch: bool = False) -> list[tuple] | None:
    """One statement on psycopg's cursor (its rows, with ``fetch``), its errors SQLAlchemy's (as from
    ``conn.execute``)."""
    try:
        with conn.connection.driver_connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if fetch else None
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, None, exc, psycopg.Error, hide_parameters=True) from exc


def update_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, key: str = "id",
                where: Sequence[Any] = (), values: dict[str, Any] | None = None, returning: bool = False,
                append: Sequence[str] = ()) -> list[Any]:
    """UPDATE ``table`` row by row from ``rows`` (each: ``key`` and the new column values, the same keys in
    every row), only where ``where`` still holds; ``values`` are set on every row alike. With ``returning``,
    the keys of the rows that were updated (where ``where`` held), else ``[]``. For a column in ``append``
    (a JSON array, like a decision trace) the row's value is one element added at its end, in the database:
    the array is never read back into Python to grow by one.

    The rows go into a staging table (COPY on PostgreSQL, executemany on SQLite) and are
    applied by one ``UPDATE ... FROM``; a few rows without ``returning`` are an executemany.
    """
    if not rows:
        return []
    columns = _column_list(table, rows, defaults=False)  # an update sets what it is given, nothing else
    changed = [c for c in columns if c != key]

    def new_value(column: str, staged: Any) -> Any:
        return appended(conn, table.c[column], staged) if column in append else staged

    if not returning and not _uses_copy(conn, rows):
        params = {c: type_coerce(bindparam(f"_new_{c}"), table.c[c].type) for c in changed}
        stmt = (update(table).where(table.c[key] == bindparam("_key"), *where)
                .values({**{c: new_value(c, params[c]) for c in changed}, **(values or {})}))
        conn.execute(stmt, [{"_key": r[key], **{f"_new_{c}": r[c] for c in changed}} for r in rows])
        return []
    staging = _filled_staging(conn, table, columns, rows)
    stmt = (update(table).where(table.c[key] == staging.c[key], *where)
            .values({**{c: new_value(c, staging.c[c]) for c in changed}, **(values or {})}))
    if not returning:
        conn.execute(stmt)
        return []
    return list(conn.execute(stmt.returning(table.c[key])).scalars())


def appended(conn: Connection, column: Any, element: Any) -> Any:
    """``column`` (a JSON array, or NULL) with the JSON ``element`` added at its end, as SQL.

    PostgreSQL keeps ``json`` as the text written, so the element's text is spliced in
    before the closing bracket: the entries already there keep their keys' order, as a
    reader of the trace expects (a ``jsonb`` round trip would sort them). SQLite has
    ``json_insert`` for it.
    """
    if conn.dialect.name == "postgresql":
        # Told apart by its text, not by json functions: each of those parses the whole array again.
        stored = func.rtrim(cast(column, Text))
        return case(
            (or_(column.is_(None), func.left(stored, 1) != "[", func.replace(stored, " ", "") == "[]"),
             func.json_build_array(element)),
            else_=cast(func.left(stored, -1).op("||")(literal(",")).op("||")(cast(element, Text))
                       .op("||")(literal("]")), JSON),
        )
    return func.json_insert(case((func.json_type(column) == "array", column), else_=literal("[]")), "$[#]",
                            func.json(element), type_=JSON)


def _filled_staging(conn: Connection, table: Table, columns: list[str], rows: Sequence[dict[str, Any]]) -> Table:
    """A session-local staging table holding ``rows`` (``columns`` of ``table``), for an ``UPDATE ... FROM``."""
    if conn.dialect.name == "postgresql":
        name = _staging_table(conn, table, columns)
        _copy(conn, f'"{name}"', columns, _copy_values(conn, table, columns, rows))
    else:
        # SQLite (3.33+ for UPDATE ... FROM, 3.35+ for RETURNING): a TEMP table of this connection
        name = f"_stage_{table.name}_{hashlib.sha1(','.join(columns).encode()).hexdigest()[:8]}"
        quoted = _column_sql(columns)
        # Columns without a declared type take values as bound (no affinity turns '12.30' into 12.3).
        conn.exec_driver_sql(f'CREATE TEMP TABLE IF NOT EXISTS "{name}" ({quoted})')
        conn.exec_driver_sql(f'DELETE FROM "{name}"')
    staging = Table(name, MetaData(), *(Column(c, table.c[c].type) for c in columns))
    if conn.dialect.name != "postgresql":
        _sqlite_executemany(conn, f'INSERT INTO "{name}" ({_column_sql(columns)}) VALUES ({_placeholders(columns)})',
                            _copy_values(conn, table, columns, rows))
    return staging
