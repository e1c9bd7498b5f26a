"""Fixtures: every database test runs on SQLite and on PostgreSQL, migrated from empty.

PostgreSQL must be reachable (see .ci/run); an unreachable server is an error, not a skip.
``--db sqlite`` or ``--db postgresql`` runs one backend only.
"""

from __future__ import annotations

import base64
import os
import random
import secrets
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, text

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Personal data is sealed at rest (campaigns.privacy): the session's own keys, new every session, in the
# environment so that the CLI, the demo and the workers the tests start seal and open with the same ones.
os.environ.setdefault("CAMPAIGNS_DATA_KEYS", f"t1:{base64.b64encode(secrets.token_bytes(32)).decode()}")
os.environ.setdefault("CAMPAIGNS_BLIND_INDEX_KEY", base64.b64encode(secrets.token_bytes(32)).decode())

from campaigns import bootstrap  # noqa: E402
from campaigns.db.engine import make_engine  # noqa: E402
from campaigns.db.models import Base  # noqa: E402
from campaigns.schema_upgrade import upgrade_database  # noqa: E402
from campaigns.settings import PROJECT_ROOT  # noqa: E402

POSTGRES_URL = os.environ.get("CAMPAIGNS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AS_OF = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 14, 0, tzinfo=timezone.utc)
BACKENDS = ("sqlite", "postgresql")
# The crash test kills its runs at points drawn from this seed: a new one every session, shown in the
# report header and in every failure, so a failure can be replayed with CAMPAIGNS_KILL_SEED=<seed>.
KILL_SEED = int(os.environ.get("CAMPAIGNS_KILL_SEED") or random.SystemRandom().randrange(2**32))
os.environ["CAMPAIGNS_KILL_SEED"] = str(KILL_SEED)  # parallel workers (pytest -n) start from here: one seed for all


def pytest_report_header(config):
    return f"crash-test kill seed: {KILL_SEED} (replay: CAMPAIGNS_KILL_SEED={KILL_SEED})"


def pytest_terminal_summary(terminalreporter):  # also under -q, where the header is not shown
    terminalreporter.write_line(f"crash-test kill seed: {KILL_SEED} (replay: CAMPAIGNS_KILL_SEED={KILL_SEED})")


def pytest_addoption(parser):
    parser.addoption("--db", choices=(*BACKENDS, "all"), default="all", help="database backend(s) to test")


# What kind of test each is, from what it needs (tests/ is in rooms by wing; the kind is a marker):
# flows: Prefect's test server; e2e: a browser, a long-lived server, or real processes (marked slow);
# database: a database; unit: none of these. `make test-fast` runs unit and database on SQLite, without `long`.
KINDS = ("unit", "database", "flows", "e2e")


def kind_of(item) -> str:
    if "prefect_harness" in item.fixturenames:
        return "flows"
    if item.get_closest_marker("slow"):
        return "e2e"
    if "database_url" in item.fixturenames:
        return "database"
    return "unit"


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(getattr(pytest.mark, kind_of(item)))
    wanted = config.getoption("--db")
    if wanted == "all":
        return
    other = [b for b in BACKENDS if b != wanted]
    keep, drop = [], []
    for item in items:
        (drop if any(f"[{b}" in item.nodeid or f"-{b}]" in item.nodeid or f"-{b}-" in item.nodeid
                     for b in other) else keep).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


def postgres_schema_url(schema: str) -> str:
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def create_postgres_schema() -> str:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # make the cause obvious: this must never pass silently
        raise RuntimeError(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}") from exc
    finally:
        admin.dispose()
    return schema


def drop_postgres_schema(schema: str) -> None:
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory):
    """A migrated-from-empty database for the session, one per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'campaigns.db'}"
        schema = None
    else:
        schema = create_postgres_schema()
        url = postgres_schema_url(schema)
    migrating = make_engine(url)
    upgrade_database(migrating)
    migrating.dispose()
    yield url
    bootstrap.PROCESS.dispose()
    if schema:
        drop_postgres_schema(schema)


@pytest.fixture
def ladder_file(tmp_path) -> Path:
    """The default ladder without holdout, dated experiments or segment tones, so tests can count exactly."""
    import yaml

    data = yaml.safe_load((PROJECT_ROOT / "config" / "ladder.yaml").read_text())
    data["experiment"]["holdout_share"] = 0.0
    data["experiments"] = []
    data["segments"] = {k: v for k, v in data["segments"].items() if k not in ("tone", "channels")}
    path = tmp_path / "ladder.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None))
    return path


@pytest.fixture
def ladder(ladder_file):
    """That ladder, loaded."""
    from campaigns.ladder.config import load_ladder

    return load_ladder(ladder_file)


@pytest.fixture
def engine(database_url, monkeypatch, ladder_file):
    """The session's database, emptied, and the settings pointing at it."""
    monkeypatch.setenv("CAMPAIGNS_DATABASE_URL", database_url)
    monkeypatch.setenv("CAMPAIGNS_LADDER_CONFIG", str(ladder_file))
    eng = bootstrap.services().engine  # the process's engine for it, with the session's keys
    with eng.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))
    yield eng


@pytest.fixture
def services(engine):
    """This process's services for the test's database and settings: what a flow's tasks get (bootstrap.PROCESS)."""
    return bootstrap.services()


@pytest.fixture
def gateways():
    """``gateways(email=fake, sms=fake)`` puts gateways in place of the configured ones for every flow and task this
    test runs in this process (``gateways(email=None)``: the configured one again); all are back afterwards."""
    put: list[str] = []

    def put_in(**by_channel) -> None:
        for channel, gateway in by_channel.items():
            bootstrap.PROCESS.override_gateway(channel, gateway)
            put.append(channel)

    yield put_in
    for channel in put:
        bootstrap.PROCESS.override_gateway(channel, None)


@pytest.fixture
def fresh_process():
    """Forget this process's services and engines before and after (a test that points the settings at another
    database, or at none)."""
    bootstrap.PROCESS.dispose()
    yield
    bootstrap.PROCESS.dispose()


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect server for the flow tests (started once per session), as Prefect's own
    ``prefect_test_harness`` starts one, but with its database on the local PostgreSQL.

    On the harness's SQLite, the server's task-run recorder and its API wait on each other's write lock:
    a state change then waited up to 60 s ("database is locked" in the server's log), and a daily run of
    five accounts took 71 s instead of 8, at random, enough to take the suite past its half hour.
    """
    import inspect

    import prefect.context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.server.database.dependencies import temporary_database_interface
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings
    from prefect.utilities.asyncutils import run_coro_as_sync
    from sqlalchemy.engine import make_url

    from operations.server import ensure_server_database

    name = f"prefect_test_{uuid.uuid4().hex[:12]}"
    url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
    ensure_server_database(url)

    async def drain() -> None:  # what the flows logged and emitted reaches the server before it stops
        for worker in (lambda: APILogWorker.instance().drain(), EventsWorker.drain_all):
            try:
                result = worker()
                if inspect.isawaitable(result):
                    await result
            except RuntimeError:  # a worker that never started
                pass

    try:
        with temporary_database_interface(), temporary_settings(
                updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: url}):
            server = SubprocessASGIServer(port=free_port())
            # Code that asks for the ephemeral server during a flow gets this one, not a second (as Prefect's does).
            prior = SubprocessASGIServer._instances.get(None)
            SubprocessASGIServer._instances[None] = server
            server.start(timeout=120)
            try:
                with temporary_settings(updates={PREFECT_API_URL: server.api_url}), \
                        prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()):
                    yield
                    run_coro_as_sync(drain())
            finally:
                server.stop()
                if prior is not None:
                    SubprocessASGIServer._instances[None] = prior
                else:
                    SubprocessASGIServer._instances.pop(None, None)
    finally:
        admin = create_engine(make_url(POSTGRES_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# Debian's Chromium, driven by Playwright's client: no test tool downloads a browser (.ci/run installs it).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def debian_chromium():
    """A headless Debian Chromium for the length of the block (the pages people look at are tested in it)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (`.ci/run` installs it: apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_by_uvicorn(make_app):
    """``make_app(base_url)``'s ASGI app served by uvicorn in a thread (as `campaigns serve-webhooks` serves it) for
    the length of the block: yields its base URL."""
    import threading
    import time

    import uvicorn

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(make_app(base), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
