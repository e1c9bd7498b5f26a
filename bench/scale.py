"""One stage over N accounts through the real Prefect flow, beside its floor and the naive design (issues 12, 26).

    .venv/bin/python bench/scale.py --accounts 100000 [--database-url postgresql+psycopg://postgres@127.0.0.1/test]
        [--chunk-size 2000] [--task-runner threads|processes|dask] [--workers 2] [--naive-sample 2000]

On PostgreSQL the benchmark works in databases of its own on the given server
(``campaigns_scale`` and ``campaigns_scale_naive``, dropped and created afresh);
on SQLite in files under a temporary directory. Then:

1. N accounts (and their customers), all due yesterday, so all of them are in
   soft_nudge's cohort, written with COPY (not through the importer), then ANALYZE;
2. the ``soft_nudge`` flow, in a child process: cohort, policy, strategy, render,
   attempts written final with their outbox rows, run record, artifact. It reports to a Prefect server
   of the benchmark's own on PostgreSQL (as ops run it; the given server, else
   ``--prefect-server-on``, the local one by default). The peak RSS of the flow's process tree
   and the server's is sampled (PostgreSQL's own processes are not counted), and
   the CPU seconds of each, PostgreSQL's included; then the same flow again for the same
   day (it must add nothing);
3. the floor: the stage's durable work done the fastest honest way (``_floor_worker``): on
   every core, a process with its own connection reads its own id ranges of the cohort with the
   project's SQL, renders the channel each account gets with the project's templates, seals the
   message with the project's ``seal`` and COPYs one attempt row and one message row per account
   into tables with the project's real schema (a ``floor`` schema: same indexes and constraints);
   no policy, no framework;
4. the naive design: one Prefect task per account, on a sample in its own database.

The last line is JSON. Run by hand; numbers go in the issue note, never in test asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import create_engine, make_url, text

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # flows/ and tasks/ live at the project's root

AS_OF = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 15, tzinfo=timezone.utc)  # 10:00 in New York: inside every US contact window
ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
# Area codes of each zone: every customer gets a phone of their own, one in five of another zone than the one
# they gave (a mobile kept after a move), as in a real portfolio.
AREAS = {"America/New_York": ("212", "617", "305", "404"), "America/Chicago": ("312", "214", "713", "612"),
         "America/Denver": ("303", "801", "505", "406"), "America/Los_Angeles": ("213", "206", "415", "503")}


# --- the portfolio --------------------------------------------------------------------------------


def fresh_database(url: str | None, name: str, workdir: Path) -> str:
    """A new empty database for this benchmark: a file under ``workdir``, or ``name`` on the given server."""
    if not url or url.startswith("sqlite"):
        (workdir / (name + ".db")).unlink(missing_ok=True)
        return f"sqlite:///{workdir / (name + '.db')}"
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


# --daily: accounts spread over the ladder's days past due, so that every stage has its cohort (pre_due, soft_nudge,
# plan_offer, escalation); None: all due yesterday (soft_nudge's cohort).
LADDER_DAYS = (-3, -1, 1, 2, 5, 9, 16, 23, 30, 40, 50, 60)


def generate(url: str, accounts: int, piece: int = 50_000, spread: bool = False) -> float:
    """``accounts`` accounts due yesterday (``spread``: over ``LADDER_DAYS``), each with its own customer, written in
    pieces with COPY."""
    from campaigns.db.bulk import copy_rows
    from campaigns.db.engine import make_engine
    from campaigns.sealing.keys import load_keys
    from campaigns.settings import get_settings
    from campaigns.schema_upgrade import upgrade_database
    from campaigns.db.models import Account, Customer
    from campaigns.policy.zones import phone_zones, stored_zones
    from campaigns.privacy.lookup import with_blind_indexes

    engine = make_engine(url, keys=load_keys(get_settings()))
    upgrade_database(engine)
    # What the importer stores beside each phone; NANP zones go by area code, so one parse per area code.
    zones_of_area = {area: stored_zones(phone_zones(f"+1{area}5550123")) for areas in AREAS.values() for area in areas}
    started = time.perf_counter()
    for start in range(0, accounts, piece):
        customers, rows = [], []
        for n in range(start, min(start + piece, accounts)):
            zh = n % 10 == 0
            zone = ZONES[n % len(ZONES)]
            area = AREAS[ZONES[(n + (n % 5 == 0)) % len(ZONES)]][(n // 4) % 4]
            customers.append({
                "id": f"C{n:08d}", "name": f"Customer {n}", "email": f"c{n}@example.com",
                "phone": f"+1{area}{200 + (n // 10_000) % 800}{n % 10_000:04d}", "phone_zones": zones_of_area[area],
                "locale": "zh-CN" if zh else "en-US", "timezone": zone, "country": "US", "email_opt_out": False,
                "sms_opt_out": False, "sms_consent": n % 3 == 0, "created_at": NOW, "updated_at": NOW})
            balance = Decimal(200 + (n * 7919) % 4800)
            rows.append({
                "id": f"A{n:08d}", "customer_id": f"C{n:08d}", "currency": "CNY" if zh else "USD",
                "balance": balance, "amount_due": (balance / 8).quantize(Decimal("0.01")),
                "due_date": AS_OF - timedelta(days=LADDER_DAYS[n % len(LADDER_DAYS)] if spread else 1), "status": "open", "product": "card", "cease_contact": False,
                "created_at": NOW, "updated_at": NOW})
        with engine.begin() as conn:
            with_blind_indexes(conn, customers)
            copy_rows(conn, Customer.__table__, customers)
            copy_rows(conn, Account.__table__, rows)
    engine.dispose()
    return time.perf_counter() - started


# --- the measured runs, each in a child process -----------------------------------------------------


def start_prefect_server(url: str, workdir: Path, port: int = 4299) -> subprocess.Popen:
    """A long-lived Prefect server on PostgreSQL (its own database), as ops run it (README, Scaling out).

    Prefect's temporary server keeps its state in SQLite; under a stage's stream of
    task runs it answered "database is locked" and once left a run waiting on it.
    """
    import httpx

    from operations.server import ensure_server_database

    parsed = make_url(url)
    prefect_url = parsed.set(drivername="postgresql+asyncpg", database="campaigns_scale_prefect")
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "campaigns_scale_prefect" WITH (FORCE)'))
    admin.dispose()
    ensure_server_database(prefect_url.render_as_string(hide_password=False))
    (workdir / "server").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(workdir / "server"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_API_DATABASE_CONNECTION_URL": prefect_url.render_as_string(hide_password=False),
                "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
                "PREFECT_LOGGING_LEVEL": "WARNING"})
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.kill()
    raise SystemExit("the benchmark's Prefect server did not start")


def child_env(url: str, workdir: Path, args, api_url: str | None = None) -> dict[str, str]:
    for folder in ("data", "prefect"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    # The keys that seal personal data pass through (bench_keys); every other setting is the benchmark's.
    keys = ("CAMPAIGNS_KEY_FILE", "CAMPAIGNS_DATA_KEYS", "CAMPAIGNS_BLIND_INDEX_KEY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGNS_", "PREFECT_")) or k in keys}
    env.update({
        "CAMPAIGNS_DATABASE_URL": url, "CAMPAIGNS_DATA_DIR": str(workdir / "data"),
        "CAMPAIGNS_CHUNK_SIZE": str(args.chunk_size), "CAMPAIGNS_TASK_RUNNER": args.task_runner,
        "CAMPAIGNS_CHUNK_WORKERS": str(args.workers), "CAMPAIGNS_LENDER_TIMEZONE": "America/New_York",
        "PREFECT_HOME": str(workdir / "prefect"), "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(PROJECT),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    })
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def bench_keys(workdir: Path) -> None:
    """Keys for this run's sealed data (a key file of its own) unless the environment gives them."""
    from campaigns.sealing.keys import create_key_file

    if not os.environ.get("CAMPAIGNS_DATA_KEYS"):  # settings are read from the environment at each call
        os.environ["CAMPAIGNS_KEY_FILE"] = str(create_key_file(workdir / "data-keys.json")[0].file)


def _role(command: str) -> str:
    if "uvicorn" in command or "prefect.server" in command or "server start" in command:
        return "prefect_server"
    if "--child" in command:
        return "flow"
    return "workers"  # process pool or Dask workers, and their helpers


class ProcSampler:
    """CPU seconds and resident memory of process trees, and PostgreSQL's CPU, read straight from ``/proc``.

    Cheap enough for ten samples a second: psutil's ``process_iter`` and a ``cmdline`` per process at each sample
    took a third of a core, from the very run it measured. CPU spent before the sampler started (PostgreSQL's,
    a server's start) is not counted.
    """

    TICK = os.sysconf("SC_CLK_TCK")
    PAGE = os.sysconf("SC_PAGE_SIZE")

    def __init__(self, roots: list[int], role=lambda command: "tree") -> None:
        self.roots, self.role = roots, role
        self.postmaster = next((pid for pid in _pids() if _name(pid) == "postgres"
                                and _name(_parent(pid)) != "postgres"), None)
        self.before: dict[int, float] = {}
        for pid in self._postgres() + self._trees():
            try:
                self.before[pid] = _cpu_s(pid)
            except (OSError, ValueError, IndexError):  # it ended meanwhile
                pass
        self.roles: dict[int, str] = {}
        self.cpu: dict[int, tuple[str, float]] = {}
        self.peak = 0
        self.peak_by_role: dict[str, int] = {}  # each role's own peak (their sum may peak at another moment)

    def _postgres(self) -> list[int]:
        return [] if self.postmaster is None else [self.postmaster, *_children(self.postmaster)]

    def _trees(self) -> list[int]:
        return [pid for root in self.roots for pid in (root, *_descendants(root))]

    def sample(self) -> None:
        rss = 0
        by_role: dict[str, int] = {}
        for pid in self._trees():
            try:
                if pid not in self.roles:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        self.roles[pid] = self.role(f.read().replace(b"\0", b" ").decode(errors="replace"))
                with open(f"/proc/{pid}/statm") as f:
                    resident = int(f.read().split()[1]) * self.PAGE
                rss += resident
                by_role[self.roles[pid]] = by_role.get(self.roles[pid], 0) + resident
                self.cpu[pid] = (self.roles[pid], _cpu_s(pid) - self.before.get(pid, 0.0))
            except (OSError, ValueError, IndexError):  # it ended meanwhile
                pass
        self.peak = max(self.peak, rss)
        for role, resident in by_role.items():
            self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), resident)
        for pid in self._postgres():
            try:
                self.cpu[pid] = ("postgres", _cpu_s(pid) - self.before.get(pid, 0.0))
            except (OSError, ValueError, IndexError):
                pass

    def by_role(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for role, seconds in self.cpu.values():
            totals[role] = round(totals.get(role, 0.0) + seconds, 1)
        return totals


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()  # after the command's name, which may hold spaces


def _name(pid: int | None) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _parent(pid: int) -> int | None:
    try:
        return int(_stat(pid)[1])
    except OSError:
        return None


def _cpu_s(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / ProcSampler.TICK  # utime, stime


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):  # a child forked by any of its threads
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += _children(child)
    return found


def communicate_sampling(proc: subprocess.Popen, sample, interval: float) -> tuple[str, str]:
    """``proc.communicate()``, calling ``sample()`` every ``interval`` seconds meanwhile, in a thread (a
    process that ends while it is read is skipped: psutil's errors are ignored)."""
    import psutil

    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                sample()
            except psutil.Error:
                pass
            stop.wait(interval)

    sampler = threading.Thread(target=loop, daemon=True)
    sampler.start()
    try:
        return proc.communicate()
    finally:
        stop.set()
        sampler.join()


def run_child(mode: str, env: dict[str, str], *extra: str, server: subprocess.Popen | None = None
              ) -> tuple[dict, float, dict[str, float]]:
    """Run ``bench/scale.py --child MODE`` and sample its whole process tree: (its JSON, peak RSS in MB, CPU
    seconds by role, PostgreSQL's own processes included as ``postgres``)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, *extra], env=env, stdout=subprocess.PIPE,
                            text=True, cwd=PROJECT)
    sampler = ProcSampler([proc.pid] + ([server.pid] if server else []), role=_role)
    out, _ = communicate_sampling(proc, sampler.sample, 0.1)
    if proc.returncode:
        raise SystemExit(f"{mode} run failed (exit {proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb_by_role"] = {role: round(peak / 2**20) for role, peak in sampler.peak_by_role.items()}
    return result, sampler.peak / 2**20, sampler.by_role()


def child_stage() -> dict:
    """The soft_nudge flow for AS_OF, timed around the flow call (imports and Prefect's start excluded)."""
    from prefect.client.orchestration import get_client

    from flows.stages import soft_nudge

    with get_client(sync_client=True) as client:  # Prefect's own start (its server, its database) is not timed
        client.hello()
    started = time.perf_counter()
    summary = soft_nudge(as_of=AS_OF, now=NOW)
    return {"wall_s": time.perf_counter() - started, "summary": {k: v for k, v in summary.items()
                                                                 if isinstance(v, (int, float, str))}}


FLOOR_TABLES = ("contact_attempts", "outbox_messages")


def _floor_schema(engine) -> None:
    """Empty copies of the tables the stage writes, with the project's real schema (same columns, indexes and
    constraints, made from the models the migrations are checked against): a ``floor`` schema on PostgreSQL, an
    attached ``floor`` file on SQLite."""
    from campaigns.db.models import Base

    tables = [Base.metadata.tables[name] for name in FLOOR_TABLES]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS floor CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA floor")
        Base.metadata.create_all(engine.execution_options(schema_translate_map={None: "floor"}), tables=tables)
    else:
        floor_file = Path(engine.url.database).with_name("floor.db")
        floor_file.unlink(missing_ok=True)
        floor = create_engine(f"sqlite:///{floor_file}")
        Base.metadata.create_all(floor, tables=tables)
        floor.dispose()


def _floor_worker(part: list[tuple[str | None, str]]) -> dict:
    """One core's share of the floor, sharing nothing: its own connection reads its own id ranges of the cohort
    (the project's SQL, sealed columns opened), renders the channel each account would get with the project's
    templates and context, seals the message with the project's ``seal``, and COPYs one attempt row (final
    status) and one message row per account into tables with the real schema, one transaction per range."""
    import resource

    from campaigns.bootstrap import services
    from campaigns.contact.cohorts import ChunkBounds, _bounded, cohort_statement
    from campaigns.contact.pipeline import StageRun, message_context
    from campaigns.db.models import Stage
    from campaigns.sealing.seal import ring_for, seal

    s = services()
    engine = s.engine
    rule = s.ladder.rule(Stage.soft_nudge)
    run = StageRun("floor", Stage.soft_nudge, AS_OF, NOW)
    ring = ring_for(engine.dialect)
    postgres = engine.dialect.name == "postgresql"
    started = resource.getrusage(resource.RUSAGE_SELF)
    # A decision trace as long as the stage's (strategy and enqueue entries), written as text like any JSON.
    trace = json.dumps([{"at": NOW.isoformat(), "check": "strategy", "segment": "standard", "why": None,
                         "experiment": "ladder", "arm": "control", "tone": None, "channels": ["email", "sms"]},
                        {"at": NOW.isoformat(), "check": "enqueue", "decision": "release",
                         "local_time": "10:00", "zone": "America/New_York", "window": "08:00-21:00"}])
    names = {}
    columns = ("id", "run_id", "account_id", "customer_id", "stage", "cycle", "as_of", "channel", "template",
               "template_version", "variant", "segment", "experiment", "tone", "amount_due", "days_past_due",
               "status", "idempotency_key", "created_at", "updated_at", "sent_at", "provider_message_id",
               "delivered_by_run_id", "policy_trace")
    message_columns = ("attempt_id", "channel", "recipient", "subject", "body_text", "body_html", "accepted_at")
    written = 0
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        if not postgres:
            driver.execute(f"ATTACH DATABASE '{Path(engine.url.database).with_name('floor.db')}' AS floor")
            driver.execute("PRAGMA floor.journal_mode=WAL")
            driver.execute("PRAGMA floor.synchronous=NORMAL")
            driver.execute("PRAGMA busy_timeout=600000")
        for after, upto in part:
            bounds = ChunkBounds(after, upto)
            rows = conn.execute(_bounded(cohort_statement(rule, AS_OF, bounds), bounds)).all()
            conn.rollback()  # the read is its own; each range is written in one transaction below
            attempts, messages = [], []
            if postgres:
                ids = [r[0] for r in driver.execute(
                    "SELECT nextval('floor.contact_attempts_id_seq') FROM generate_series(1, %s)", (len(rows),))]
            else:
                driver.execute("BEGIN IMMEDIATE")
                first = driver.execute("SELECT COALESCE(MAX(id), 0) FROM floor.contact_attempts").fetchone()[0]
                ids = range(first + 1, first + 1 + len(rows))
            for attempt_id, row in zip(ids, rows):
                account = SimpleNamespace(**row._mapping, days_past_due=(AS_OF - row.due_date).days)
                channel = "email" if account.email else "sms"
                name = names.get((channel, account.locale))
                if name is None:
                    name = names[(channel, account.locale)] = s.templates.resolve("soft_nudge", channel,
                                                                                 account.locale, None)
                context, _ = message_context(account, channel, rule, run, s.brand)
                content = s.templates.render(name, channel, context)
                recipient = account.email if channel == "email" else account.phone
                key = f"{account.account_id}|soft_nudge|{AS_OF.isoformat()}|{channel}"
                attempts.append((attempt_id, "floor", account.account_id, account.customer_id, "soft_nudge",
                                 AS_OF.isoformat(), AS_OF, channel, content.template, content.template_version,
                                 "control", "standard", "ladder", None, account.amount_due,
                                 account.days_past_due, "sent", key, NOW, NOW, NOW, f"outbox-{attempt_id}", "floor",
                                 trace))
                messages.append((attempt_id, channel, seal(ring, recipient, "message.recipient"),
                                 content.subject and seal(ring, content.subject, "message.subject"),
                                 seal(ring, content.text, "message.body_text"),
                                 content.html and seal(ring, content.html, "message.body_html"), NOW))
            if postgres:
                with driver.transaction():
                    for table, names_, values in (("contact_attempts", columns, attempts),
                                                  ("outbox_messages", message_columns, messages)):
                        with driver.cursor().copy(f"COPY floor.{table} ({', '.join(names_)}) FROM STDIN") as copy:
                            for value in values:
                                copy.write_row(value)
            else:
                stamp = NOW.strftime("%Y-%m-%d %H:%M:%S.%f")  # as the UTC DateTime columns store it
                driver.executemany(
                    f"INSERT INTO floor.contact_attempts ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    [(*a[:6], a[6].isoformat(), *a[7:14], str(a[14]), *a[15:18], stamp, stamp, stamp, *a[21:])
                     for a in attempts])
                driver.executemany(
                    f"INSERT INTO floor.outbox_messages ({', '.join(message_columns)}) "
                    f"VALUES ({', '.join('?' * len(message_columns))})", [(*m[:-1], stamp) for m in messages])
                driver.execute("COMMIT")
            written += len(rows)
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {"written": written, "cpu_s": used.ru_utime + used.ru_stime - started.ru_utime - started.ru_stime}


def child_floor() -> dict:
    """The floor: the stage's durable work, done the fastest honest way, on every core (``_floor_worker``)."""
    import multiprocessing

    from campaigns.bootstrap import services
    from campaigns.contact.pipeline import plan_stage_chunks
    from campaigns.db.models import Stage

    s = services()
    _floor_schema(s.engine)
    started = time.perf_counter()
    chunks = [(b.after, b.upto) for b in plan_stage_chunks(s.engine, s.ladder, Stage.soft_nudge, AS_OF,
                                                           s.settings.chunk_size)]
    workers = s.settings.chunk_workers or os.cpu_count() or 1
    parts = [chunks[i::workers] for i in range(workers)]  # interleaved: each core gets ranges all along the ids
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        done = pool.map(_floor_worker, parts)
    return {"wall_s": time.perf_counter() - started, "rendered": sum(d["written"] for d in done),
            "worker_cpu_s": round(sum(d["cpu_s"] for d in done), 1)}


def child_daily() -> dict:
    """The whole day through Prefect (every stage, then the dispatcher once the quiet hours end in every US zone):
    each stage's wall time from its run record, the dispatcher's around its flow call."""
    from prefect.client.orchestration import get_client
    from sqlalchemy import select

    from campaigns.bootstrap import services
    from campaigns.db.models import CampaignRun
    from flows.daily import daily_campaign
    from flows.dispatch import dispatch

    with get_client(sync_client=True) as client:
        client.hello()
    started = time.perf_counter()
    summaries = daily_campaign(as_of=AS_OF, now=NOW)
    daily_s = time.perf_counter() - started
    with services().engine.connect() as conn:
        runs = conn.execute(select(CampaignRun.stage, CampaignRun.started_at, CampaignRun.finished_at,
                                   CampaignRun.cohort_size)).all()
    started = time.perf_counter()
    released = dispatch(now=NOW + timedelta(hours=2))  # 09:00 in Los Angeles: every deferral is due
    return {"daily_s": round(daily_s, 1), "dispatch_s": round(time.perf_counter() - started, 1),
            "stages": {r.stage: {"cohort": r.cohort_size, "wall_s": round((r.finished_at - r.started_at)
                                                                          .total_seconds(), 1)} for r in runs},
            "sent": {row["stage"]: row.get("sent", 0) for row in summaries},
            "dispatched": {k: v for k, v in (released or {}).items() if isinstance(v, (int, float))}
            if isinstance(released, dict) else str(released)[:200]}


def child_naive() -> dict:
    """One Prefect task per account (decide, render, log, deliver), as a design that maps accounts to tasks would."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from campaigns.bootstrap import services
    from campaigns.contact.cohorts import ChunkBounds
    from campaigns.contact.pipeline import StageRun, enqueue_chunk, plan_stage_chunks
    from campaigns.db.models import Stage
    from campaigns.delivery.deliver import deliver_queued
    from campaigns.runs.records import start_run

    s = services()

    @task(cache_policy=NO_CACHE)
    def one_account(run: StageRun, bounds: ChunkBounds) -> int:
        result = enqueue_chunk(s.engine, s.ladder, s.templates, s.brand, run, bounds, s.policy)
        deliver_queued(s.engine, s.gateways, stage=run.stage.value, as_of=AS_OF, now=NOW, policy=s.policy,
                       run_id=run.run_id, bounds=bounds)
        return result.cohort_size

    @flow
    def naive_stage() -> int:
        run = StageRun(start_run(s.engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW), Stage.soft_nudge, AS_OF, NOW)
        single = plan_stage_chunks(s.engine, s.ladder, Stage.soft_nudge, AS_OF, 1)
        return sum(one_account(run, bounds) for bounds in single)  # one task run after another

    started = time.perf_counter()
    accounts = naive_stage()
    return {"wall_s": time.perf_counter() - started, "accounts": accounts}


# --- the whole benchmark ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--database-url", help="a PostgreSQL server (its own databases are made); default SQLite")
    parser.add_argument("--chunk-size", type=int, default=int(os.environ.get("CAMPAIGNS_CHUNK_SIZE", 5000)))
    parser.add_argument("--task-runner", default="threads", choices=("threads", "processes", "dask"))
    parser.add_argument("--workers", type=int, default=0, help="chunk tasks at once; 0 = one per core")
    parser.add_argument("--naive-sample", type=int, default=2_000, help="0: no naive run")
    parser.add_argument("--prefect-server-on", metavar="URL",
                        default=os.environ.get("SCALE_PREFECT_SERVER_ON", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                        help="a PostgreSQL server for the benchmark's own Prefect server (default: the local one); "
                             "'none': Prefect's temporary server")
    parser.add_argument("--stage-only", action="store_true", help="skip the floor and the naive sample")
    parser.add_argument("--daily", action="store_true",
                        help="instead: accounts spread over the ladder's days, the whole daily flow and the dispatcher")
    parser.add_argument("--child", choices=("stage", "floor", "naive", "daily"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"stage": child_stage, "floor": child_floor, "naive": child_naive,
                          "daily": child_daily}[args.child]()))
        return
    if args.daily:
        run_daily(args)
        return

    workdir = Path(tempfile.mkdtemp(prefix="scale-"))
    bench_keys(workdir)
    url = fresh_database(args.database_url, "campaigns_scale", workdir)
    database = make_url(url).get_backend_name()
    generated_s = generate(url, args.accounts)
    print(f"generated {args.accounts:,} accounts in {generated_s:.1f}s ({database})", file=sys.stderr)
    analyze(url)  # as the import does after a bulk load: the planner knows the portfolio's size

    prefect_on = args.database_url if database == "postgresql" else args.prefect_server_on
    server = start_prefect_server(prefect_on, workdir) if prefect_on and prefect_on != "none" else None
    api_url = "http://127.0.0.1:4299/api" if server else None
    try:
        wal = wal_position(url)
        stage, peak_mb, stage_cpu = run_child("stage", child_env(url, workdir / "stage", args, api_url), server=server)
        stage_wal = wal_position(url) - wal if wal is not None else None
        print(f"stage: {stage['summary']} in {stage['wall_s']:.1f}s, peak RSS {peak_mb:.0f} MB "
              f"(each role's own peak: {stage['peak_rss_mb_by_role']}), CPU s {stage_cpu}", file=sys.stderr)
        again, _, again_cpu = run_child("stage", child_env(url, workdir / "again", args, api_url), server=server)
        print(f"the same day again: {again['summary']} in {again['wall_s']:.1f}s", file=sys.stderr)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
    stage_cpu_s = sum(stage_cpu.values())
    result = {
        "accounts": args.accounts, "database": database, "wall_s": round(stage["wall_s"], 2),
        "accounts_per_s": round(args.accounts / stage["wall_s"]), "peak_rss_mb": round(peak_mb),
        "peak_rss_mb_by_role": stage["peak_rss_mb_by_role"], "cpu_s": stage_cpu, "stage_cpu_us_per_account": round(stage_cpu_s / args.accounts * 1e6, 1),
        # The whole server's WAL while the stage ran (its Prefect server's database included, on the same server).
        "wal_bytes_per_account": round(stage_wal / args.accounts) if stage_wal is not None else None,
        "second_run_s": round(again["wall_s"], 2), "second_run_counts": {
            k: v for k, v in again["summary"].items() if k not in ("run_id", "as_of", "stage", "dry_run")},
        "second_run_cpu_s": again_cpu,
        "chunk_size": args.chunk_size, "task_runner": args.task_runner,
        "workers": args.workers or os.cpu_count(), "cores": os.cpu_count(), "generate_s": round(generated_s, 1),
    }
    if not args.stage_only:
        wal = wal_position(url)
        floor, floor_peak_mb, floor_cpu = run_child("floor", child_env(url, workdir / "floor", args))
        floor_wal = wal_position(url) - wal if wal is not None else None
        print(f"floor: {floor['rendered']:,} written in {floor['wall_s']:.1f}s, CPU s {floor_cpu}", file=sys.stderr)
        result.update({
            "floor_s": round(floor["wall_s"], 2), "ratio_to_floor": round(stage["wall_s"] / floor["wall_s"], 2),
            "floor_cpu_us_per_account": round(sum(floor_cpu.values()) / args.accounts * 1e6, 1),
            "floor_cpu_s": floor_cpu, "floor_wal_bytes_per_account": round(floor_wal / args.accounts)
            if floor_wal is not None else None, "floor_peak_rss_mb": round(floor_peak_mb),
        })
    if args.naive_sample and not args.stage_only:
        naive_url = fresh_database(args.database_url, "campaigns_scale_naive", workdir)
        generate(naive_url, args.naive_sample)
        naive, _, _ = run_child("naive", child_env(naive_url, workdir / "naive", args))
        naive_rate = naive["accounts"] / naive["wall_s"]
        result.update({"naive_accounts_per_s": round(naive_rate),
                       "ratio_to_naive": round(args.accounts / stage["wall_s"] / naive_rate, 1)})
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


def run_daily(args) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="scale-daily-"))
    bench_keys(workdir)
    url = fresh_database(args.database_url, "campaigns_scale", workdir)
    generated_s = generate(url, args.accounts, spread=True)
    analyze(url)
    prefect_on = args.database_url if make_url(url).get_backend_name() == "postgresql" else args.prefect_server_on
    server = start_prefect_server(prefect_on, workdir) if prefect_on and prefect_on != "none" else None
    try:
        day, peak_mb, cpu = run_child("daily", child_env(url, workdir / "daily", args,
                                                         "http://127.0.0.1:4299/api" if server else None),
                                      server=server)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
    print(json.dumps({"accounts": args.accounts, "database": make_url(url).get_backend_name(), **day,
                      "peak_rss_mb": round(peak_mb), "cpu_s": cpu, "task_runner": args.task_runner,
                      "generate_s": round(generated_s, 1), "load_average": [round(x, 2) for x in os.getloadavg()]}))


def analyze(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def wal_position(url: str) -> int | None:
    """PostgreSQL's WAL insert position in bytes (None on SQLite)."""
    if not url.startswith("postgresql"):
        return None
    engine = create_engine(url)
    with engine.connect() as conn:
        position = conn.exec_driver_sql("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").scalar_one()
    engine.dispose()
    return int(position)


if __name__ == "__main__":
    main()
