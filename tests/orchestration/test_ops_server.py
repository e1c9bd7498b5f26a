"""The ops path as ops run it: a long-lived Prefect server, `deploy --all`, a worker, the scheduler, the UI.

Everything runs in real processes started the way the README says (``campaigns ops
server|deploy|worker``, ``prefect deployment run``): the server on a free loopback
port with a fresh PREFECT_HOME and its own PostgreSQL database, a process worker
whose flow runs take their settings from the project's ``.env`` (not from the
worker's shell), a webhook receiver on 127.0.0.1 for the failure alert, and
Debian's Chromium for the pages ops look at. The test talks to the server through
its REST API only, so nothing here leans on the in-process test harness. Every
process it started is stopped by PID, even when it fails. Screenshots are kept in
``test-output/screenshots``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time as clock_time, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from campaigns.schema_upgrade import upgrade_database
from campaigns.db.models import ContactAttempt
from campaigns.portfolio import import_portfolio
from campaigns.portfolio.demo import DemoSpec, generate_portfolio, write_demo_file
from campaigns.settings import PROJECT_ROOT
from tests.conftest import CHROMIUM, POSTGRES_URL, debian_chromium, free_port
from tests.factories import keyed_engine

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"
POSTGRES_ADMIN = make_url(POSTGRES_URL).set(drivername="postgresql", database="postgres").render_as_string(False)
SERVER_DATABASE = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg")
AS_OF = date(2026, 11, 23)
NOW = "2026-11-23T14:00:00Z"  # 09:00 in New York, the daily's scheduled moment
LENDER_ZONE = ZoneInfo("America/New_York")
PERSONAL = re.compile(r"@example\.|\+1\d{10}")  # the demo's emails and phones


class Processes:
    """Every process the test starts, stopped by PID (SIGTERM, then SIGKILL) whatever happens."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        # Its own session, as a service manager would start it; stdin closed.
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.started[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def terminate(self, name: str, timeout: float = 30) -> int | None:
        process = self.started[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        return process.returncode

    def stop_all(self) -> None:
        for name, process in reversed(list(self.started.items())):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
            # Whatever the worker or server left running in their sessions (flow-run processes).
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class AlertReceiver:
    """A webhook endpoint on 127.0.0.1 that keeps what it is sent."""

    def __init__(self):
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"path": self.path, "body": json.loads(body or b"{}")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def wait_for(predicate, timeout: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Api:
    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=30)

    def post(self, path: str, body: dict | None = None):
        response = self.http.post(path, json=body or {})
        response.raise_for_status()
        return response.json()

    def get(self, path: str):
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()

    def deployments(self) -> dict[str, dict]:
        return {d["name"]: d for d in self.post("/deployments/filter")}

    def flow_runs(self, deployment_id: str, state: str | None = None, limit: int = 200) -> list[dict]:
        body = {"deployments": {"id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_ASC", "limit": limit}
        if state:
            body["flow_runs"] = {"state": {"type": {"any_": [state]}}}
        return self.post("/flow_runs/filter", body)

    def finished(self, flow_run_id: str, timeout: float = 300) -> dict:
        def done():
            run = self.get(f"/flow_runs/{flow_run_id}")
            return run if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None
        return wait_for(done, timeout, f"flow run {flow_run_id} to finish")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict]:
    """Server, deployments, alerts and a worker, set up the README's way, on a project home of their own."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (`.ci/run` installs it: apt-get install chromium)")
    root = tmp_path_factory.mktemp("ops")
    home, logs = root / "home", root / "logs"
    home.mkdir()
    logs.mkdir()
    # The project as a worker's host has it: code and config, prefect.yaml, and a git-ignored .env.
    for name in ("flows", "tasks", "config", "templates"):
        (home / name).symlink_to(PROJECT_ROOT / name)
    shutil.copy(PROJECT_ROOT / "prefect.yaml", home / "prefect.yaml")
    database_url = f"sqlite:///{home / 'campaigns.db'}"
    (home / ".env").write_text(f"CAMPAIGNS_DATABASE_URL={database_url}\nCAMPAIGNS_CHUNK_SIZE=250\n")
    engine = keyed_engine(database_url)
    upgrade_database(engine)
    frame = generate_portfolio(AS_OF, DemoSpec(accounts=400, seed=9))
    report = import_portfolio(engine, write_demo_file(frame, home / "portfolio.csv"),
                              now=datetime(2026, 11, 23, 13, 0, tzinfo=timezone.utc))
    assert report.ok, report.errors[:3]
    engine.dispose()
    shutil.copy(home / "campaigns.db", root / "cli.db")  # the same data, for `campaigns daily` to run on

    server_db = f"prefect_e2e_{uuid.uuid4().hex[:10]}"
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    receiver = AlertReceiver()
    processes = Processes(logs)
    # A clean environment: nothing of the developer's shell (no CAMPAIGNS_*, no PREFECT_API_URL) leaks in.
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGNS_", "PREFECT_"))}
    base_env.update({"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_HOME": str(root / "client-home"),
                     "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "COLUMNS": "200"})
    # Except the keys that seal personal data, which ops give every process (the portfolio was sealed with them).
    base_env.update({k: os.environ[k] for k in ("CAMPAIGNS_DATA_KEYS", "CAMPAIGNS_BLIND_INDEX_KEY")})
    client_env = {**base_env, "PREFECT_API_URL": api_url}
    try:
        server = processes.start("server", [str(BIN / "campaigns"), "ops", "server", "--port", str(port)], {
            **base_env,
            "CAMPAIGNS_PREFECT_DATABASE_URL": SERVER_DATABASE.set(database=server_db).render_as_string(False),
            "CAMPAIGNS_PREFECT_HOME": str(root / "server-home"),
            # The scheduler looks for work every 5 s instead of every minute, so the test need not wait.
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        }, cwd=root)
        api = Api(api_url)

        def healthy():
            if server.poll() is not None:
                raise AssertionError(f"the server exited: {processes.log('server')[-3000:]}")
            try:
                return api.http.get("/health").status_code == 200
            except httpx.HTTPError:
                return False
        started = time.monotonic()
        wait_for(healthy, 180, "the Prefect server to answer /api/health")
        server_start_seconds = time.monotonic() - started

        deployed = subprocess.run([str(BIN / "campaigns"), "ops", "deploy"], cwd=home, capture_output=True, text=True,
                                  env={**client_env, "CAMPAIGNS_HOME": str(home),
                                       "CAMPAIGNS_ALERT_WEBHOOK_URL": receiver.url}, timeout=300)
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        yield {"api": api, "home": home, "base_env": base_env, "engine": engine, "processes": processes, "receiver": receiver,
               "client_env": client_env, "root": root, "deploy_output": deployed.stdout + deployed.stderr,
               "server_start_seconds": server_start_seconds, "server_db": server_db}
    finally:
        processes.stop_all()
        receiver.close()
        engine.dispose()
        _drop_database(server_db)


def _drop_database(name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
    except psycopg.Error:
        pass


def prefect(stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "prefect"), *args], cwd=stack["root"], env=stack["client_env"],
                          capture_output=True, text=True, timeout=timeout)


def run_deployment(stack, name: str, **params: str) -> str:
    args = ["deployment", "run", name]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    done = prefect(stack, *args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)


def test_deploy_all_creates_every_deployment_with_its_schedule_and_named_limit(stack):
    api = stack["api"]
    spec = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    on_server = api.deployments()
    assert set(on_server) == {d["name"] for d in spec["deployments"]}, stack["deploy_output"][-2000:]
    for wanted in spec["deployments"]:
        got = on_server[wanted["name"]]
        assert got["work_pool_name"] == "collections"
        assert [(s["schedule"].get("cron"), s["schedule"].get("timezone")) for s in got["schedules"]] == [
            (s.get("cron"), s.get("timezone")) for s in wanted.get("schedules", [])]
        # The UI's concurrency page names the deployment, not deployment:<uuid>.
        assert got["global_concurrency_limit"]["name"] == f"deployment:{wanted['name']}"
        assert got["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(
            stack["home"])
    # `prefect deployment ls` works against this server (fastapi >= 0.151 answered 422 here).
    listed = prefect(stack, "deployment", "ls")
    assert listed.returncode == 0 and "daily_campaign/daily" in listed.stdout, listed.stderr[-2000:]
    status = subprocess.run([str(BIN / "campaigns"), "ops", "status"], cwd=stack["root"], env=stack["client_env"],
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr[-2000:]
    assert re.search(r"daily_campaign/daily +cron 0 9 \* \* \* \(America/New_York\) +next: 20", status.stdout)
    assert re.search(r"daily_deadline/daily-deadline +cron 0 12 \* \* \* \(America/New_York\)", status.stdout)
    automations = api.post("/automations/filter")
    assert [a["name"] for a in automations] == ["campaigns: an unattended run failed"]


def test_the_scheduler_creates_daily_runs_at_nine_in_new_york(stack):
    api = stack["api"]
    deployments = api.deployments()
    daily = deployments["daily"]

    scheduled = wait_for(lambda: api.flow_runs(daily["id"], "SCHEDULED"), 60, "the scheduler to create daily runs")
    now = datetime.now(timezone.utc)
    starts = [datetime.fromisoformat(r["expected_start_time"]) for r in scheduled]
    assert all("auto-scheduled" in r["tags"] for r in scheduled)
    assert len(starts) >= 3 and starts == sorted(starts)
    # Every one at 09:00 New York (14:00Z in winter, 13:00Z in summer), one a day, the first the next 09:00.
    assert {s.astimezone(LENDER_ZONE).time() for s in starts} == {clock_time(9, 0)}
    assert all((b - a) in (timedelta(hours=23), timedelta(hours=24), timedelta(hours=25))
               for a, b in zip(starts, starts[1:]))
    local_now = now.astimezone(LENDER_ZONE)
    next_nine = datetime.combine(local_now.date(), clock_time(9, 0), tzinfo=LENDER_ZONE)
    if next_nine <= local_now:
        next_nine = datetime.combine(local_now.date() + timedelta(days=1), clock_time(9, 0), tzinfo=LENDER_ZONE)
    assert abs(starts[0] - next_nine) < timedelta(minutes=1) or starts[0] <= now + timedelta(minutes=1)

    dispatch = wait_for(lambda: api.flow_runs(deployments["dispatch"]["id"], "SCHEDULED"), 60, "dispatch runs")
    minutes = {datetime.fromisoformat(r["expected_start_time"]).minute for r in dispatch}
    assert minutes <= {0, 15, 30, 45}
    deadline = wait_for(lambda: api.flow_runs(deployments["daily-deadline"]["id"], "SCHEDULED"), 60, "deadline runs")
    assert {datetime.fromisoformat(r["expected_start_time"]).astimezone(LENDER_ZONE).time()
            for r in deadline} == {clock_time(12, 0)}


@pytest.fixture(scope="module")
def worker(stack):
    """A worker started after the schedules are checked and paused, so only the test's own runs execute."""
    api = stack["api"]
    for deployment in api.deployments().values():
        api.http.patch(f"/deployments/{deployment['id']}", json={"paused": True}).raise_for_status()
        for run in api.flow_runs(deployment["id"], "SCHEDULED"):
            api.http.delete(f"/flow_runs/{run['id']}")
    elsewhere = stack["root"] / "worker-cwd"  # not the project: the deployment's pull step must get there
    elsewhere.mkdir()
    process = stack["processes"].start("worker", [str(BIN / "campaigns"), "ops", "worker"], {
        **stack["client_env"], "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    }, cwd=elsewhere)
    wait_for(lambda: "started!" in stack["processes"].log("worker"), 90, "the worker to start")
    assert process.poll() is None
    return process


@pytest.fixture(scope="module")
def completed_daily(stack, worker):
    api = stack["api"]
    started = time.monotonic()
    flow_run_id = run_deployment(stack, "daily_campaign/daily", as_of=AS_OF.isoformat(), now=NOW)
    run = api.finished(flow_run_id)
    wall = time.monotonic() - started
    print(f"\ndaily through the worker: {wall:.1f} s from `prefect deployment run` to Completed "
          f"({run.get('total_run_time', 0):.1f} s in the flow); server start {stack['server_start_seconds']:.1f} s")
    return run, wall


def test_a_daily_run_through_the_worker_completes_with_its_artifact_and_contact_log(stack, completed_daily):
    api, engine = stack["api"], stack["engine"]
    run, _ = completed_daily
    worker_log = stack["processes"].log("worker")
    assert run["state"]["type"] == "COMPLETED", (run["state"], worker_log[-4000:])
    assert run["parameters"]["as_of"] == AS_OF.isoformat()

    [artifact] = [a for a in api.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
                  if a["key"] == "daily-campaign-summary"]
    rows = json.loads(artifact["data"]) if isinstance(artifact["data"], str) else artifact["data"]
    assert [r["Stage"] for r in rows] == ["pre_due", "soft_nudge", "plan_offer", "escalation", "thank_you"]
    assert all(isinstance(v, (int, str)) and not isinstance(v, dict) for r in rows for v in r.values())
    assert "Decided at 2026-11-23 09:00 EST (14:00 UTC)" in artifact["description"]
    assert "email, sms, push → outbox" in artifact["description"]
    assert not PERSONAL.search(json.dumps(rows) + artifact["description"])

    with engine.connect() as conn:
        attempts = conn.scalar(select(func.count()).select_from(ContactAttempt).where(ContactAttempt.as_of == AS_OF))
    assert attempts > 100
    logged = ("Sent", "Deferred (wait for window)", "Suppressed", "Failed", "Unknown", "Held out",
              "Queued (not yet sent)")
    assert sum(r.get(column, 0) for r in rows for column in logged) == attempts
    # The worker's runs read the project's .env: the database above, not a new empty one where the worker runs.
    assert not list((stack["root"] / "worker-cwd").glob("**/*.db"))
    assert not PERSONAL.search(worker_log)


def test_a_failed_daily_reaches_a_person_through_the_automation(stack, completed_daily):
    api, receiver = stack["api"], stack["receiver"]
    flow_run_id = run_deployment(stack, "daily_campaign/daily", as_of=AS_OF.isoformat(), now="2026-11-23T09:00:00")
    run = api.finished(flow_run_id)
    assert run["state"]["type"] == "FAILED"
    assert "UTC offset" in (run["state"]["message"] or "") or "now" in (run["state"]["message"] or "")
    alert = wait_for(lambda: [m for m in receiver.received if run["name"] in m["body"].get("text", "")], 120,
                     "the failure alert at the webhook receiver")[0]
    text = alert["body"]["text"]
    assert alert["path"] == "/alerts"
    assert "daily" in text and "Failed" in text and f"/runs/flow-run/{flow_run_id}" in text
    assert not PERSONAL.search(text)


def test_the_deadline_check_fails_and_alerts_when_the_day_did_not_complete(stack, completed_daily):
    api, receiver = stack["api"], stack["receiver"]
    done = api.finished(run_deployment(stack, "daily_deadline/daily-deadline", as_of=AS_OF.isoformat()))
    assert done["state"]["type"] == "COMPLETED"  # the day above completed every stage
    missed = api.finished(run_deployment(stack, "daily_deadline/daily-deadline", as_of="2026-11-20"))
    assert missed["state"]["type"] == "FAILED"
    assert "has not completed" in missed["state"]["message"]
    wait_for(lambda: [m for m in receiver.received if missed["name"] in m["body"].get("text", "")], 120,
             "the deadline alert")


def test_the_deadline_after_a_failed_daily_says_it_is_the_same_problem(stack, completed_daily):
    """Issue 24 item 17: a failed daily and the noon deadline alerted twice for one day, as two problems."""
    api = stack["api"]
    failed = api.finished(run_deployment(stack, "daily_campaign/daily", as_of="2026-11-21",
                                         now="2026-11-21T09:00:00"))  # no offset: refused, the run fails
    assert failed["state"]["type"] == "FAILED"
    deadline = api.finished(run_deployment(stack, "daily_deadline/daily-deadline", as_of="2026-11-21"))
    assert deadline["state"]["type"] == "FAILED"
    assert (f"This is the problem the failed daily run {failed['name']} already alerted about, not a new one"
            in deadline["state"]["message"])


def test_a_missing_database_fails_once_with_what_to_do(stack, worker):
    """A schema error is not a database hiccup: no retries, one message, no empty database created."""
    api, home = stack["api"], stack["home"]
    env_file = home / ".env"
    good = env_file.read_text()
    missing = home / "nowhere.db"
    env_file.write_text(f"CAMPAIGNS_DATABASE_URL=sqlite:///{missing}\n")
    try:
        run = api.finished(run_deployment(stack, "pre_due_reminder/pre-due-reminder", as_of=AS_OF.isoformat(),
                                          now=NOW))
    finally:
        env_file.write_text(good)
    assert run["state"]["type"] == "FAILED"
    assert "run `campaigns db upgrade`" in run["state"]["message"]
    assert not missing.exists()
    tasks = api.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}})
    assert all(t["run_count"] <= 1 for t in tasks)
    assert (datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"])) < timedelta(seconds=20)
    # What Prefect persisted of its runs (a failure's exception) is JSON in the project's shared var/,
    # not a pickle in the worker's home.
    persisted = list((home / "var" / "prefect-results").iterdir())
    assert persisted and all(isinstance(json.loads(p.read_text()), dict) for p in persisted)
    assert not (stack["root"] / "client-home" / "storage").exists()


def is_favicon(url: str) -> bool:
    """The tab icon: Prefect's UI asks for /favicon.ico, and sets the icon to the run's state, which is
    `/ico/undefined.svg` until the run has loaded (a 404 of the UI's own, not of ours)."""
    return url.endswith("/favicon.ico") or "/ico/" in url


def test_the_ui_shows_the_deployments_schedule_zone_and_the_runs_artifact(stack, completed_daily):
    """What ops see, in a real browser: Debian's Chromium, driven through Playwright's client only."""
    run, _ = completed_daily
    base = stack["api"].http.base_url.copy_with(path="/")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with debian_chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900}, timezone_id="America/New_York")
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", lambda m: problems.append(f"console: {m.text} {m.location.get('url')}")
                if m.type == "error" and not is_favicon(m.location.get("url", "")) else None)
        page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}")
                if r.status >= 400 and not is_favicon(r.url) else None)

        page.goto(f"{base}deployments", wait_until="networkidle")
        page.get_by_text("daily-deadline").first.wait_for(timeout=30_000)
        text = page.inner_text("body")
        for name in ("daily", "dispatch", "daily-deadline", "pre-due-reminder", "soft-nudge", "plan-offer",
                     "escalation"):
            assert name in text
        assert "At 09:00 AM every day" in text and "Every 15 minutes" in text
        page.get_by_text("At 09:00 AM every day").first.hover()
        page.get_by_text("(America/New_York)").first.wait_for(timeout=10_000)
        page.screenshot(path=SCREENSHOTS / "deployments.png", full_page=True)

        # The "Run" form ops fill in by hand: typed fields (a date picker, a date-time with its zone)
        # and what each parameter means.
        daily_id = stack["api"].deployments()["daily"]["id"]
        page.goto(f"{base}deployments/deployment/{daily_id}/run", wait_until="networkidle")
        page.get_by_text("The campaign day, YYYY-MM-DD").first.wait_for(timeout=30_000)
        form = page.inner_text("body")
        assert "Select date" in form and "Select date and time" in form
        assert "with a UTC offset" in form and "Preview only" in form
        assert "Property is type" not in form
        page.screenshot(path=SCREENSHOTS / "daily-run-form.png", full_page=True)

        page.goto(f"{base}runs/flow-run/{run['id']}", wait_until="networkidle")
        page.get_by_text("Completed").first.wait_for(timeout=30_000)
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text("daily-campaign-summary").first.wait_for(timeout=30_000)
        page.screenshot(path=SCREENSHOTS / "daily-run-artifacts.png", full_page=True)
        page.get_by_text("daily-campaign-summary").first.click()
        page.get_by_text("soft_nudge").first.wait_for(timeout=30_000)
        artifact_text = page.inner_text("body")
        assert "Decided at" in artifact_text and "Deferred (wait for window)" in artifact_text
        assert not PERSONAL.search(artifact_text)
        page.screenshot(path=SCREENSHOTS / "daily-summary-artifact.png", full_page=True)
    assert problems == [], problems


def test_the_worker_stops_cleanly_on_sigterm(stack, worker, completed_daily):
    """Service managers stop a worker with SIGTERM; it must exit on its own, not wait for a SIGKILL."""
    code = stack["processes"].terminate("worker", timeout=30)
    assert code == 0, stack["processes"].log("worker")[-2000:]
    assert "stopped!" in stack["processes"].log("worker")


def test_what_the_cli_ran_is_what_make_demo_ui_shows(stack, completed_daily):
    """`make demo` runs the ladder through the CLI on a temporary server whose history stays in PREFECT_HOME;
    `make demo-ui` serves that history. Same data as the worker's run, so the two wall times compare."""
    root, processes = stack["root"], stack["processes"]
    history = root / "demo-history"
    env = {**stack["base_env"], "PREFECT_HOME": str(history), "CAMPAIGNS_DATABASE_URL": f"sqlite:///{root / 'cli.db'}"}
    started = time.monotonic()
    done = subprocess.run([str(BIN / "campaigns"), "daily", "--as-of", AS_OF.isoformat(), "--now", NOW], env=env,
                          cwd=root, capture_output=True, text=True, timeout=300)
    cli_wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"\n`campaigns daily` on the same data: {cli_wall:.1f} s (temporary server included); through the worker: "
          f"{completed_daily[1]:.1f} s")

    port = free_port()
    ui = processes.start("demo-ui", ["make", "--no-print-directory", "-C", str(PROJECT_ROOT), "demo-ui",
                                     f"DEMO_PREFECT_HOME={history}", f"DEMO_UI_PORT={port}"], stack["base_env"], root)
    api = Api(f"http://127.0.0.1:{port}/api")

    def up():
        assert ui.poll() is None, processes.log("demo-ui")[-2000:]
        try:
            return api.http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False
    wait_for(up, 120, "make demo-ui to serve the history")
    runs = api.post("/flow_runs/filter")
    by_flow = {api.get(f"/flows/{r['flow_id']}")["name"]: r for r in runs}
    assert {"daily_campaign", "pre_due_reminder", "soft_nudge", "plan_offer", "escalation"} <= set(by_flow)
    assert by_flow["daily_campaign"]["state"]["type"] == "COMPLETED"
    keys = {a["key"] for a in api.post("/artifacts/filter")}
    assert "daily-campaign-summary" in keys

    # Issue 24 item 19: the page a person opens, not only its API. Without PREFECT_UI_API_URL the UI asked
    # port 4200 ("Can't connect to Server API") and listed no run.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with debian_chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900}, timezone_id="America/New_York")
        page.goto(f"http://127.0.0.1:{port}/runs", wait_until="networkidle")
        page.get_by_text("daily_campaign").first.wait_for(timeout=30_000)
        listed = page.inner_text("body")
        assert "Can't connect" not in listed and "Something went wrong" not in listed
        for flow_name in ("daily_campaign", "soft_nudge", "plan_offer"):
            assert flow_name in listed
        page.screenshot(path=SCREENSHOTS / "demo-ui-runs.png", full_page=True)
        page.goto(f"http://127.0.0.1:{port}/runs/flow-run/{by_flow['daily_campaign']['id']}",
                  wait_until="networkidle")
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text("daily-campaign-summary").first.wait_for(timeout=30_000)
        page.screenshot(path=SCREENSHOTS / "demo-ui-daily-artifacts.png", full_page=True)
    processes.terminate("demo-ui")
