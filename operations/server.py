"""The long-lived Prefect server's database and environment."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from campaigns.files import ensure_private_directory


def ensure_server_database(url: str) -> str:
    """Create the server's PostgreSQL database if it is missing; return where it is (no password).

    Prefect's server creates its tables itself, but not the database. A SQLite
    URL (``sqlite+aiosqlite:///...``) is passed through: Prefect creates the file.
    """
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() != "postgresql":
        return shown
    if not parsed.drivername.endswith("+asyncpg"):
        raise ValueError(f"CAMPAIGNS_PREFECT_DATABASE_URL must use the asyncpg driver Prefect's server needs "
                         f"(postgresql+asyncpg://...), not {parsed.drivername!r}")
    import psycopg
    from psycopg import sql

    name = parsed.database or "prefect"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ValueError(f"cannot reach the Prefect server's PostgreSQL at {shown}: {first}") from None
    return shown


def server_environment(settings, base: dict[str, str], *, host: str, port: int) -> dict[str, str]:
    """The environment ``prefect server start`` runs with: its database, its home, its address.

    Values already in ``base`` for the server's own tuning (e.g. the scheduler's
    loop) are kept; the database and home come from the settings.
    """
    home = Path(settings.prefect_home)
    ensure_private_directory(home)
    env = dict(base)
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": settings.prefect_database_url,
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        # The UI calls the API at the address the browser used to reach the server.
        "PREFECT_UI_API_URL": env.get("PREFECT_UI_API_URL") or f"http://{host}:{port}/api",
        # Links in alerts ("Run: http://.../runs/flow-run/<id>"); set it to the address ops use, behind a proxy.
        "PREFECT_UI_URL": env.get("PREFECT_UI_URL") or f"http://{host}:{port}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    })
    # The server must not think it is its own client of some other server.
    env.pop("PREFECT_API_URL", None)
    return env
