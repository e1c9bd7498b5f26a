"""Out to a cluster (issue 12): a stage on prefect-dask's DaskTaskRunner (a LocalCluster of two worker
processes) logs exactly what the default runner logs, sends nothing twice, and leaves no member waiting."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import delete, func, select

from campaigns.db.models import Base, CampaignRun, ContactAttempt, OutboxMessage
from campaigns.settings import Settings
from tests.conftest import AS_OF, NOW
from tests.factories import add_account

pytestmark = pytest.mark.slow


def logged(engine) -> Counter:
    with engine.connect() as conn:
        return Counter(conn.execute(select(ContactAttempt.account_id, ContactAttempt.channel, ContactAttempt.status,
                                           ContactAttempt.reason, ContactAttempt.template)).all())


def empty(engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in ("accounts", "customers", "disputes", "alembic_version"):
                conn.execute(delete(table))


def test_a_stage_on_a_dask_local_cluster_logs_what_the_default_runner_logs(prefect_harness, engine, monkeypatch):
    from prefect_dask import DaskTaskRunner

    from flows.runners import chunk_task_runner
    from flows.stages import soft_nudge

    for n in range(40):
        add_account(engine, f"A{n:02d}", days_past_due=5 + n % 3 * 3,
                    customer={"sms_consent": n % 2 == 0, "email_opt_out": n % 7 == 0})
    monkeypatch.setenv("CAMPAIGNS_CHUNK_SIZE", "7")  # six chunks over two workers
    monkeypatch.setenv("CAMPAIGNS_CHUNK_WORKERS", "2")

    runner = chunk_task_runner(Settings(task_runner="dask"))
    assert isinstance(runner, DaskTaskRunner)
    on_dask = soft_nudge.with_options(task_runner=runner)(as_of=AS_OF, now=NOW)
    from_dask = logged(engine)
    with engine.connect() as conn:
        outbox = conn.execute(select(OutboxMessage.attempt_id)).scalars().all()
        [run] = conn.execute(select(CampaignRun.status, CampaignRun.cohort_size)).all()

    assert run == ("completed", 40) and on_dask["cohort"] == 40
    assert {account for account, *_ in from_dask} == {f"A{n:02d}" for n in range(40)}
    assert max(from_dask.values()) == 1 and len({(a, c) for a, c, *_ in from_dask}) == len(from_dask)
    assert {status for _, _, status, _, _ in from_dask} <= {"sent", "suppressed"}  # every member terminal
    assert len(outbox) == len(set(outbox)) == on_dask["sent"] > 0

    empty(engine)
    by_default = soft_nudge(as_of=AS_OF, now=NOW)
    assert logged(engine) == from_dask
    assert {k: v for k, v in by_default.items() if k != "run_id"} == {k: v for k, v in on_dask.items() if k != "run_id"}


def test_the_runner_follows_the_settings():
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.runners import chunk_task_runner

    assert isinstance(chunk_task_runner(Settings()), ThreadPoolTaskRunner)
    assert isinstance(chunk_task_runner(Settings(task_runner="processes", chunk_workers=3)), ProcessPoolTaskRunner)
    joined = chunk_task_runner(Settings(task_runner="dask", dask_address="tcp://10.0.0.5:8786"))
    assert isinstance(joined, DaskTaskRunner) and joined.address == "tcp://10.0.0.5:8786"
    local = chunk_task_runner(Settings(task_runner="dask", chunk_workers=2))
    assert local.address is None and local.cluster_kwargs["n_workers"] == 2


def test_a_stage_flow_takes_its_runner_from_the_settings_when_a_run_starts_not_when_it_is_imported(monkeypatch):
    """Prefect runs each flow run with ``flow.task_runner.duplicate()``: that is where the settings are read."""
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    from flows.adhoc import adhoc_campaign
    from flows.stages import soft_nudge

    monkeypatch.setenv("CAMPAIGNS_TASK_RUNNER", "threads")
    assert isinstance(soft_nudge.task_runner.duplicate(), ThreadPoolTaskRunner)
    monkeypatch.setenv("CAMPAIGNS_TASK_RUNNER", "processes")
    monkeypatch.setenv("CAMPAIGNS_CHUNK_WORKERS", "3")
    for flow in (soft_nudge, adhoc_campaign):
        runner = flow.task_runner.duplicate()
        assert isinstance(runner, ProcessPoolTaskRunner) and runner._max_workers == 3


RUN_STAGE = """
import json, os, sys, time
from datetime import date, datetime
from campaigns import bootstrap
from campaigns.channels import OutboxGateway
from flows.stages import soft_nudge

meeting, sends = sys.argv[1], sys.argv[4]


class MeetingOutbox(OutboxGateway):
    # The outbox, but each process, with its first released group in hand and before it takes any of it, waits
    # (up to a minute) for the other to have one too: the two runs are delivering at the same moment, whichever
    # started first. Every message stored is logged with its time (for the rate limit) in a shared file.
    met = False

    def message_id(self, attempt_id):
        if not MeetingOutbox.met:
            open(os.path.join(meeting, str(os.getpid())), "w").close()
            deadline = time.monotonic() + 60
            while len(os.listdir(meeting)) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            MeetingOutbox.met = len(os.listdir(meeting)) >= 2
            if not MeetingOutbox.met:
                raise SystemExit("the other run never had a group to deliver")
        return super().message_id(attempt_id)

    def store(self, conn, attempt_ids, now):
        super().store(conn, attempt_ids, now)
        log(attempt_ids)

    def send(self, message, now):
        sent = super().send(message, now)
        log([message.attempt_id])
        return sent


def log(attempt_ids):
    fd = os.open(sends, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, "".join(f"{time.time()} {os.getpid()} {a}\\n" for a in attempt_ids).encode())
    os.close(fd)


outbox = MeetingOutbox(bootstrap.services().engine)
bootstrap.PROCESS.override_gateway("email", outbox)
bootstrap.PROCESS.override_gateway("sms", outbox)
summary = soft_nudge(as_of=date.fromisoformat(sys.argv[2]), now=datetime.fromisoformat(sys.argv[3]))
print(json.dumps({k: v for k, v in summary.items() if isinstance(v, (int, str))}))
"""
RATE = 20  # messages per second, for both runs together (a Prefect global rate limit)


def test_two_runs_of_the_same_day_in_two_processes_send_nothing_twice(prefect_harness, engine, tmp_path, monkeypatch):
    """Idempotency and the provider's rate limit live outside the process: two workers delivering the same
    stage for the same day at the same moment leave every member terminal, each message sent once, and
    together they stay within the provider's rate."""
    import json
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    from campaigns.settings import PROJECT_ROOT

    for n in range(120):
        add_account(engine, f"A{n:03d}", days_past_due=5, customer={"sms_consent": n % 2 == 0})
    env = {**os.environ, "CAMPAIGNS_CHUNK_SIZE": "10", "PREFECT_API_URL": PREFECT_API_URL.value(),
           "CAMPAIGNS_PROVIDER_RATE_LIMITS": json.dumps({"outbox": RATE}), "PYTHONPATH": str(PROJECT_ROOT)}
    meeting, sends = tmp_path / "meeting", tmp_path / "sends.log"
    meeting.mkdir()
    workers = [subprocess.Popen([sys.executable, "-c", RUN_STAGE, str(meeting), AS_OF.isoformat(), NOW.isoformat(),
                                 str(sends)], env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    summaries = [json.loads(w.communicate(timeout=300)[0].strip().splitlines()[-1]) for w in workers]
    assert [w.returncode for w in workers] == [0, 0]

    attempts = logged(engine)
    assert {a for a, *_ in attempts} == {f"A{n:03d}" for n in range(120)}
    assert max(attempts.values()) == 1  # one row per account and channel, whoever wrote it
    assert {status for _, _, status, _, _ in attempts} <= {"sent", "suppressed"}
    with engine.connect() as conn:
        outbox = conn.execute(select(OutboxMessage.attempt_id)).scalars().all()
        sent = conn.execute(select(func.count()).where(ContactAttempt.status == "sent")).scalar_one()
    assert len(outbox) == len(set(outbox)) == sent == sum(s["sent"] for s in summaries)
    assert all(s["cohort"] == 120 for s in summaries)
    assert len(list(meeting.iterdir())) == 2  # both were delivering at once (else a run exits non-zero)

    stored = sorted((float(t), int(a)) for t, _, a in (line.split() for line in sends.read_text().splitlines()))
    assert sorted(a for _, a in stored) == sorted(outbox)  # a message stored twice would show here
    # The limit's bucket holds 50 slots (claim_size) and refills RATE a second: by any moment t after the first
    # store, at most 50 + RATE * t messages have gone, whichever process sent them (a margin of one second).
    first = stored[0][0]
    for k, (moment, _) in enumerate(stored, start=1):
        assert k <= 50 + RATE * (moment - first + 1), (k, moment - first)


GROWS_WITH_THE_PORTFOLIO = {"accounts", "customers", "contact_attempts", "rendered_messages", "outbox_messages",
                            "payments", "holds", "disputes", "provider_events", "repayment_plans",
                            "payment_promises", "agent_worklist", "plan_instalments"}


def test_every_query_of_a_stage_chunk_is_served_by_an_index(engine):
    """EXPLAIN each statement a chunk issues (cohort, segments, policy, log, delivery) with sequential scans
    priced out: PostgreSQL still picks one only where no index can serve the query, so none may remain on a
    table that grows with the portfolio (README, Scaling out)."""
    import re

    from sqlalchemy import event

    from campaigns.channels import OutboxGateway
    from campaigns.ladder.config import load_ladder
    from campaigns.contact.pipeline import StageRun, enqueue_chunk, plan_stage_chunks
    from campaigns.db.models import Stage
    from campaigns.delivery.deliver import deliver_queued
    from campaigns.runs.records import start_run
    from campaigns.settings import get_settings
    from tests.contact.test_pipeline import BRAND, POLICY, TEMPLATES

    for n in range(30):
        add_account(engine, f"A{n:02d}", days_past_due=1 + n % 14)
    ladder = load_ladder(get_settings().ladder_config)
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT INTO")) and not executemany:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        for stage in (Stage.soft_nudge, Stage.plan_offer):
            run = StageRun(start_run(engine, stage, AS_OF, NOW, started_at=NOW), stage, AS_OF, NOW)
            for bounds in plan_stage_chunks(engine, ladder, stage, AS_OF, 10):
                enqueue_chunk(engine, ladder, TEMPLATES, BRAND, run, bounds, POLICY)
                deliver_queued(engine, {"email": OutboxGateway(engine), "sms": OutboxGateway(engine)},
                               stage=stage.value, as_of=AS_OF, now=NOW, policy=POLICY, run_id=run.run_id, bounds=bounds)
    finally:
        event.remove(engine, "before_cursor_execute", capture)

    assert len(statements) > 20
    scans = set()
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            cursor.execute("SET enable_seqscan = off")
        for statement, parameters in statements:
            if postgres:
                cursor.execute("EXPLAIN " + statement, parameters or None)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                scanned = re.findall(r"Seq Scan on (\w+)", plan)
            else:  # SQLite says SCAN for a full pass over a table, SEARCH where an index narrows it
                cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters or ())
                plan = "\n".join(row[-1] for row in cursor.fetchall())
                scanned = re.findall(r"\bSCAN (\w+)(?! USING (?:COVERING )?INDEX (?:pk|uq|ix)_\w+ \()", plan)
            scans.update((table, " ".join(statement.split())[:160]) for table in scanned
                         if table in GROWS_WITH_THE_PORTFOLIO)
        conn.rollback()
    assert scans == set()
