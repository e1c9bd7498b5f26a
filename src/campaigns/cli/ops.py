"""Commands for running the ladder on a long-lived Prefect server: ``ops server|worker|deploy|alerts|status``.

``server`` and ``worker`` block (their own terminal, or a service manager that
stops them with SIGTERM); ``deploy`` and ``alerts`` talk to the server at
``PREFECT_API_URL`` (default the one ``ops server`` starts). Without that
variable a bare ``prefect`` command would quietly start a temporary server of its
own, so these commands always set it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from campaigns.cli.app import CliError, app, friendly_errors, out, say

ops_app = typer.Typer(help="Operations on a long-lived Prefect server: server, worker, deploy, alerts, status.",
                      no_args_is_help=True)
app.add_typer(ops_app, name="ops")

DEFAULT_API_URL = "http://127.0.0.1:4200/api"
POOL = "collections"

HostOpt = Annotated[str, typer.Option(help="Address to listen on.")]
PortOpt = Annotated[int, typer.Option(help="Port to listen on.")]
PoolOpt = Annotated[str, typer.Option("--pool", help="Work pool (a process pool, created if missing).")]


def prefect_command() -> str:
    """The ``prefect`` executable of this environment (``.venv/bin/prefect``), whatever PATH says."""
    return str(Path(sys.executable).with_name("prefect"))


def point_at_server() -> str:
    """PREFECT_API_URL, defaulting to the server ``ops server`` starts. Set before Prefect is imported."""
    if "prefect" in sys.modules and "PREFECT_API_URL" not in os.environ:  # pragma: no cover - a wiring bug
        raise RuntimeError("PREFECT_API_URL must be set before Prefect is imported")
    return os.environ.setdefault("PREFECT_API_URL", DEFAULT_API_URL)


@contextmanager
def server_reachable(api: str):
    """A server that is down or not where PREFECT_API_URL says is one line, not a traceback."""
    import httpx

    try:
        yield
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the Prefect server at {api} ({type(exc).__name__}): start it with "
                       "`make server`, or set PREFECT_API_URL") from None


def campaigns_home() -> Path:
    """The project directory a worker's runs start in (prefect.yaml's pull step): CAMPAIGNS_HOME or this checkout."""
    from campaigns.settings import PROJECT_ROOT

    home = Path(os.environ.get("CAMPAIGNS_HOME") or PROJECT_ROOT).resolve()
    if not (home / "prefect.yaml").is_file():
        raise CliError(f"no prefect.yaml in {home}: set CAMPAIGNS_HOME to the project directory")
    return home


def _exec(argv: list[str], env: dict[str, str]) -> None:
    """Become ``argv`` (no wrapper process): a service manager's SIGTERM reaches Prefect itself.

    Prefect's worker turns SIGTERM into a SIGINT to itself. A process started in
    the background by a shell (`cmd &`, nohup, some service wrappers) inherits
    SIGINT *ignored*, and Python keeps it ignored, so that SIGINT, and with it
    SIGTERM, did nothing: the worker needed a SIGKILL. Restore the default first.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)


@ops_app.command("server")
@friendly_errors
def server_command(host: HostOpt = "127.0.0.1", port: PortOpt = 4200) -> None:
    """Start the long-lived Prefect server (API, UI, scheduler, automations) on its own PostgreSQL database.

    It blocks: run it in a terminal of its own or as a service (SIGTERM stops it).
    The database (CAMPAIGNS_PREFECT_DATABASE_URL) is created if missing.
    """
    from operations.server import ensure_server_database, server_environment
    from campaigns.settings import get_settings

    settings = get_settings()
    try:
        where = ensure_server_database(settings.prefect_database_url)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    env = server_environment(settings, dict(os.environ), host=host, port=port)
    say(f"Prefect server: UI and API at http://{host}:{port} (database {where}, PREFECT_HOME {env['PREFECT_HOME']}). "
        f"Point the CLI at it: export PREFECT_API_URL=http://{host}:{port}/api")
    _exec([prefect_command(), "server", "start", "--host", host, "--port", str(port)], env)


@ops_app.command("worker")
@friendly_errors
def worker_command(pool: PoolOpt = POOL) -> None:
    """Start a process worker for the pool (created if missing). It blocks; SIGTERM stops it cleanly."""
    api = point_at_server()
    from operations.deploy import ensure_work_pool

    with server_reachable(api):
        ensure_work_pool(pool)
    say(f"worker for pool {pool!r} on {api}")
    _exec([prefect_command(), "worker", "start", "--pool", pool, "--type", "process"], dict(os.environ))


@ops_app.command("deploy")
@friendly_errors
def deploy_command() -> None:
    """Create or update every deployment of prefect.yaml (`prefect deploy --all`), name their concurrency
    limits, and install the failure alerts when CAMPAIGNS_ALERT_WEBHOOK_URL or CAMPAIGNS_ALERT_BLOCK is set."""
    api = point_at_server()
    from operations.deploy import deployed, ensure_work_pool, name_concurrency_limits
    from campaigns.settings import get_settings

    home = campaigns_home()
    with server_reachable(api):
        ensure_work_pool(POOL)
    done = subprocess.run([prefect_command(), "--no-prompt", "deploy", "--all"], cwd=home,
                          env={**os.environ, "CAMPAIGNS_HOME": str(home)})
    if done.returncode:
        raise CliError(f"`prefect deploy --all` failed (exit {done.returncode}); its output is above")
    with server_reachable(api):
        name_concurrency_limits()
        _print_deployed(deployed())
    settings = get_settings()
    if settings.alert_webhook_url or settings.alert_block:
        _install_alerts(settings, api)
    else:
        say("no alerts: set CAMPAIGNS_ALERT_WEBHOOK_URL (or CAMPAIGNS_ALERT_BLOCK) and run `campaigns ops alerts`")
    say(f"deployed to {api}")


@ops_app.command("alerts")
@friendly_errors
def alerts_command() -> None:
    """Create or replace the automation that tells a person when a daily, dispatch or deadline run fails."""
    api = point_at_server()
    from campaigns.settings import get_settings

    _install_alerts(get_settings(), api)


def _install_alerts(settings, api: str) -> None:
    from operations.alerts import AlertsNotConfigured, install_failure_alerts

    try:
        with server_reachable(api):
            automation = install_failure_alerts(settings)
    except AlertsNotConfigured as exc:
        raise CliError(str(exc)) from None
    say(f"alerts: automation {automation.name!r} notifies through block {automation.actions[0].block_document_id}")


@ops_app.command("status")
@friendly_errors
def status_command() -> None:
    """The deployments on the server, their schedules (with time zone) and next scheduled runs."""
    api = point_at_server()
    from operations.deploy import deployed

    with server_reachable(api):
        rows = deployed()
    if not rows:
        raise CliError("no deployments on the server: run `campaigns ops deploy`")
    _print_deployed(rows)


def _print_deployed(rows: list[dict]) -> None:
    for row in rows:
        out.print(f"{row['deployment']:<34} {row['schedule']:<40} next: {row['next_run']}", highlight=False)

