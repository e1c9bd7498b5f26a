"""`campaigns ops`: what goes wrong before any server is involved is one line a person can act on."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.settings import Settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_real_server(monkeypatch, tmp_path):
    # Nothing here may reach (or start) a Prefect server; port 9 refuses at once.
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("ALERT_WEBHOOK_URL", "ALERT_BLOCK", "PREFECT_DATABASE_URL", "PREFECT_HOME"):
        monkeypatch.delenv(f"CAMPAIGNS_{name}", raising=False)
    yield


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_ops_lists_its_commands():
    result = invoke("ops", "--help")
    for command in ("server", "worker", "deploy", "alerts", "status"):
        assert command in result.output


def test_alerts_without_a_destination_say_which_setting_to_set():
    result = invoke("ops", "alerts")
    assert result.exit_code == 1
    assert "set CAMPAIGNS_ALERT_WEBHOOK_URL (or CAMPAIGNS_ALERT_BLOCK)" in result.output
    assert "Traceback" not in result.output


def test_an_alert_block_must_name_its_type(monkeypatch):
    monkeypatch.setenv("CAMPAIGNS_ALERT_BLOCK", "ops-email")
    result = invoke("ops", "alerts")
    assert result.exit_code == 1 and "must be type-slug/name, e.g. slack-webhook/ops" in result.output


def test_deploy_needs_the_project_home(monkeypatch, tmp_path):
    monkeypatch.setenv("CAMPAIGNS_HOME", str(tmp_path))
    result = invoke("ops", "deploy")
    assert result.exit_code == 1
    assert f"no prefect.yaml in {tmp_path.resolve()}: set CAMPAIGNS_HOME" in result.output


def test_the_server_database_needs_asyncpg_and_a_reachable_postgresql(monkeypatch):
    from operations.server import ensure_server_database

    with pytest.raises(ValueError, match="must use the asyncpg driver"):
        ensure_server_database("postgresql+psycopg://postgres@127.0.0.1:5432/prefect")
    with pytest.raises(ValueError, match="cannot reach the Prefect server's PostgreSQL at "
                                         "postgresql\\+asyncpg://postgres:\\*\\*\\*@127.0.0.1:9/prefect"):
        ensure_server_database("postgresql+asyncpg://postgres:hunter2@127.0.0.1:9/prefect")
    assert ensure_server_database("sqlite+aiosqlite:////tmp/prefect.db") == "sqlite+aiosqlite:////tmp/prefect.db"

    monkeypatch.setenv("CAMPAIGNS_PREFECT_DATABASE_URL", "postgresql+asyncpg://postgres:hunter2@127.0.0.1:9/prefect")
    result = invoke("ops", "server")
    assert result.exit_code == 1 and "cannot reach the Prefect server's PostgreSQL" in result.output
    assert "hunter2" not in result.output


def test_the_server_database_is_created_once():
    """On the local PostgreSQL (the server's database is always PostgreSQL): created if missing, then left alone."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    from operations.server import ensure_server_database
    from tests.conftest import POSTGRES_URL as database_url

    name = f"prefect_ops_{uuid.uuid4().hex[:8]}"
    url = make_url(database_url).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
    admin = make_url(database_url).set(drivername="postgresql", database="postgres").render_as_string(False)
    try:
        ensure_server_database(url)
        ensure_server_database(url)
        with psycopg.connect(admin) as conn:
            assert conn.execute("select count(*) from pg_database where datname = %s", (name,)).fetchone() == (1,)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}"')


def test_the_server_gets_its_database_home_and_links_and_forgets_any_client_url(tmp_path):
    from operations.server import server_environment

    settings = Settings(prefect_home=tmp_path / "home", prefect_database_url="postgresql+asyncpg://p@h/db")
    env = server_environment(settings, {"PREFECT_API_URL": "http://elsewhere/api", "KEEP": "1",
                                        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"},
                             host="127.0.0.1", port=4300)
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == "postgresql+asyncpg://p@h/db"
    assert env["PREFECT_HOME"] == str(tmp_path / "home") and (tmp_path / "home").is_dir()
    assert env["PREFECT_UI_URL"] == "http://127.0.0.1:4300" and env["PREFECT_UI_API_URL"].endswith(":4300/api")
    assert "PREFECT_API_URL" not in env and env["KEEP"] == "1"
    assert env["PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS"] == "5"


@pytest.mark.parametrize("command", ["status", "alerts", "worker"])
def test_a_server_that_is_down_is_one_line_saying_how_to_start_it(tmp_path, command):
    """In a process of its own: in this one, a test harness's server may be what Prefect's settings point at
    (and `ops worker`, finding a server, would replace the test process with a worker)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGNS_", "PREFECT_"))}
    env.update({"PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_HOME": str(tmp_path / "prefect"),
                "CAMPAIGNS_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
    done = subprocess.run([str(Path(sys.executable).with_name("campaigns")), "ops", command], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "cannot reach the Prefect server at http://127.0.0.1:9/api (ConnectError): start it with `make server`" \
        in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_every_scheduled_deployment_is_in_the_failure_alert():
    """Issue 24 item 17: the review, retention and risk training were not alerted."""
    import yaml

    from campaigns.settings import PROJECT_ROOT
    from operations.alerts import ALERTED_DEPLOYMENTS

    deployments = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]
    scheduled = {d["name"] for d in deployments if d.get("schedules")}
    assert scheduled and set(ALERTED_DEPLOYMENTS) == scheduled
