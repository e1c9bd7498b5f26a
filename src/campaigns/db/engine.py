"""Engines, migrations and the one upsert the importer needs, per dialect."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser treats % as interpolation: URL-encoded passwords and options need escaping.
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["engine"] = engine
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema with Alembic."""
    command.upgrade(alembic_config(engine), revision)


def downgrade_database(engine: Engine, revision: str = "base") -> None:
    command.downgrade(alembic_config(engine), revision)


def schema_revision(engine: Engine) -> tuple[str | None, str | None]:
    """(current revision in the database, head revision in the code)."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


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


def insert_ignoring_conflicts(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], key: str):
    """INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id, key: the rows that were new."""
    if not rows:
        return []
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(table.c.id, table.c[key])
    )
    # executemany with RETURNING is supported on both backends ("insertmanyvalues").
    return conn.execute(stmt, list(rows)).all()
