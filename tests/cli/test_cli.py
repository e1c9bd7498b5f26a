"""The `campaigns` command: clear one-line errors, and the demo end to end."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from campaigns.cli import app
from campaigns.db.models import ContactAttempt, Customer, OutboxMessage
from tests.factories import add_account
from tests.portfolio.test_import import row, write_csv

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("db", "import", "demo", "run", "daily", "dispatch", "outbox", "runs", "worklist", "optout",
                    "hold", "dispute", "sms", "templates", "preview", "adhoc", "review"):
        assert command in result.output


def test_import_reports_bad_rows_and_exits_non_zero(engine, tmp_path):
    path = write_csv(tmp_path / "p.csv", [row(), row(account_id="A2", due_date="2026-02-30")])
    result = invoke("import", path)
    assert result.exit_code == 1
    assert f"{path}: row 3, field due_date: '2026-02-30' is not a date (YYYY-MM-DD)" in result.output
    assert "2 rows read, 1 accounts and 1 customers loaded, 0 disputes opened, 1 rows rejected" in result.output
    assert invoke("import", write_csv(tmp_path / "ok.csv", [row()])).exit_code == 0


def test_file_level_problems_are_one_line(engine, tmp_path):
    result = invoke("import", tmp_path / "missing.csv")
    assert result.exit_code == 1 and result.output.strip().startswith("error: ")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_naive_now_is_refused_with_a_hint(engine):
    result = runner.invoke(app, ["run", "soft_nudge", "--now", "2026-11-22T09:00:00"])
    assert result.exit_code == 2 and "has no UTC offset" in result.output


def test_an_unmigrated_database_says_what_to_do(tmp_path, monkeypatch):

    monkeypatch.setenv("CAMPAIGNS_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = invoke("runs")
    assert result.exit_code == 1 and "run `campaigns db upgrade`" in result.output
    assert invoke("db", "upgrade").exit_code == 0
    assert invoke("runs").exit_code == 0


def test_bad_settings_are_one_line(engine, monkeypatch):

    monkeypatch.setenv("CAMPAIGNS_LENDER_TIMEZONE", "Mars/Olympus")
    result = invoke("runs")
    assert result.exit_code == 1 and "CAMPAIGNS_LENDER_TIMEZONE" in result.output and "Mars/Olympus" in result.output


@pytest.mark.slow
def test_run_dry_run_then_live_then_outbox_runs_and_worklist(prefect_harness, engine, tmp_path):
    add_account(engine, "A1", days_past_due=20)
    add_account(engine, "A2", days_past_due=50)
    dry = invoke("run", "plan_offer", "--as-of", "2026-11-22", "--now", "2026-11-22T14:00:00Z", "--dry-run")
    assert dry.exit_code == 0 and "1 (dry run)" in dry.output and "monthly payments" in dry.output
    live = invoke("daily", "--as-of", "2026-11-22", "--now", "2026-11-22T14:00:00Z")
    assert live.exit_code == 0 and "plan_offer" in live.output and "escalation" in live.output
    outbox = invoke("outbox", "--account", "A1", "--full")
    assert outbox.exit_code == 0 and "1 message(s) in the outbox" in outbox.output
    assert "monthly payments" in outbox.output
    runs = invoke("runs")
    assert runs.exit_code == 0 and "completed" in runs.output and "plan_offer" in runs.output
    worklist = invoke("worklist", "--csv", tmp_path / "w.csv")
    assert worklist.exit_code == 0 and "1 open worklist item(s)" in worklist.output
    assert "A2" in (tmp_path / "w.csv").read_text()


@pytest.mark.slow
def test_demo_end_to_end(prefect_harness, engine, tmp_path, monkeypatch):

    monkeypatch.setenv("CAMPAIGNS_DATA_DIR", str(tmp_path))
    args = ("demo", "--accounts", 400, "--as-of", "2026-11-22", "--now", "2026-11-22T14:00:00Z")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    for expected in ("demo portfolio: 400 accounts", "pre_due", "soft_nudge", "plan_offer", "escalation",
                     "opted_out", "messages in the outbox", "campaigns outbox"):
        assert expected in result.output
    assert (tmp_path / "demo" / "portfolio.csv").is_file()
    # It ends by pointing at the review of its day (the report and its Parquet files).
    assert "what works (simulated payments," in result.output and "campaigns review --since 2026-11-22" in result.output
    assert (tmp_path / "review" / "demo" / "report.html").is_file()
    assert (tmp_path / "review" / "demo" / "arms.parquet").is_file()
    with engine.connect() as conn:
        attempts = conn.execute(select(func.count()).select_from(ContactAttempt)).scalar_one()
        outbox = conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
        deferred = conn.execute(select(func.count()).where(ContactAttempt.status == "deferred")).scalar_one()
    # 14:00 UTC is 06:00 in Los Angeles: western customers wait for their window.
    assert attempts > 300 and outbox > 20 and deferred > 20
    assert "waiting for their customer's contact window" in result.output
    # The demo is deterministic and a second run logs, sends and records nothing more (issue 24 item 7: carried
    # opt-outs reached their fixed point only on the second import, and the second demo then logged attempts).
    from campaigns.db.models import Base

    def everything() -> dict[str, int]:
        with engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in Base.metadata.sorted_tables if t.name not in ("campaign_runs", "personal_data_access")}

    before = everything()
    assert before["opt_out_events"] > 0
    again = invoke(*args)
    assert again.exit_code == 0
    assert everything() == before
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one() == outbox
        assert conn.execute(select(func.count()).select_from(ContactAttempt)).scalar_one() == attempts
    # At 20:00 UTC (12:00 in Los Angeles, 10:00 in Honolulu) the dispatcher releases the Americas;
    # China (04:00 there) waits for 08:00 Shanghai, 00:00 UTC.
    released = invoke("dispatch", "--now", "2026-11-22T20:00:00Z")
    assert released.exit_code == 0 and "released" in released.output
    with engine.connect() as conn:
        waiting = conn.execute(
            select(Customer.timezone).join(ContactAttempt, ContactAttempt.customer_id == Customer.id)
            .where(ContactAttempt.status == "deferred")).scalars().all()
    assert waiting and set(waiting) <= {"Asia/Shanghai", None}
    assert invoke("dispatch", "--now", "2026-11-23T01:00:00Z").exit_code == 0
    with engine.connect() as conn:
        still = conn.execute(select(func.count()).where(ContactAttempt.status == "deferred")).scalar_one()
        outbox_after = conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
        sent = conn.execute(select(func.count()).where(ContactAttempt.status == "sent",
                                                       ContactAttempt.channel != "agent")).scalar_one()
    assert still == 0 and outbox_after > outbox and outbox_after == sent


def test_preference_commands(engine, tmp_path):
    add_account(engine, "A1", days_past_due=5, customer={"phone": "+12125550177"})
    assert "opted out of email" in invoke("optout", "C-A1", "--channel", "email").output
    link = invoke("customer", "link", "A1").output.strip()
    assert link.startswith("https://pay.example.com/c/A1~") and "Grace" not in link
    assert runner.invoke(app, ["customer", "link", "NOPE"]).output.startswith("error: no account 'NOPE'")
    result = invoke("hold", "set", "C-A1", "--kind", "breathing_space", "--until", "2027-01-31")
    assert result.exit_code == 0 and "hold breathing_space set" in result.output
    assert "already open" in invoke("hold", "set", "C-A1", "--kind", "breathing_space", "--until", "2027-01-31").output
    assert "1 open breathing_space hold(s) cleared" in invoke("hold", "clear", "C-A1", "--kind", "breathing_space").output
    bad = runner.invoke(app, ["hold", "set", "C-A1", "--kind", "holiday"])
    assert bad.exit_code == 1 and bad.output.startswith("error: unknown hold 'holiday'")
    assert "dispute opened" in invoke("dispute", "open", "A1").output
    assert "1 open dispute(s) resolved" in invoke("dispute", "resolve", "A1").output
    assert "1 customer(s) opted out of SMS" in invoke("sms", "inbound", "--from", "+12125550177", "--body", "STOP").output
    # Not a stop: a person reads it (a worklist item `replied`).
    assert "reply (text) from 1 customer(s): 1 worklist item(s)" in invoke("sms", "inbound", "--from", "+12125550177",
                                                                          "--body", "ok").output
    batch = tmp_path / "inbound.csv"
    batch.write_text("from,body,received_at\n+12125550177,unsubscribe,2026-11-22T10:00:00Z\n"
                     "+12125550177,Stop!,yesterday\n", encoding="utf-8")
    result = runner.invoke(app, ["sms", "ingest", str(batch)])
    assert result.exit_code == 1
    assert f"{batch}: row 3, field received_at" in result.output
    assert "1 opt-out request(s), 1 customer(s) opted out of SMS, 0 already applied, 1 bad row(s)" in result.output
    again = runner.invoke(app, ["sms", "ingest", str(batch)])  # the same back-fill again records nothing
    assert "0 opt-out request(s), 0 customer(s) opted out of SMS, 1 already applied, 1 bad row(s)" in again.output
    sid = ("sms", "inbound", "--from", "+12125550177", "--body", "STOP", "--message-id", "SM77")
    assert "1 customer(s) opted out of SMS" in invoke(*sid).output
    assert "message SM77 was already applied; nothing changed" in invoke(*sid).output
    from campaigns.db.models import OptOutEvent

    with engine.connect() as conn:
        sources = conn.execute(select(OptOutEvent.source, func.count()).group_by(OptOutEvent.source)).all()
    assert dict(sources) == {"cli": 1, "inbound_sms": 3}


def test_templates_check_command(tmp_path, monkeypatch):
    from tests.contact.test_render import copy_templates

    assert invoke("templates", "check").output.strip().endswith("40 template(s) checked, 0 problem(s)")
    root = copy_templates(tmp_path)
    (root / "pre_due" / "sms.en-US.j2").write_text("{% block text %}{{ amount }}{% endblock %}")
    monkeypatch.setenv("CAMPAIGNS_TEMPLATES_DIR", str(root))
    result = runner.invoke(app, ["templates", "check"])
    assert result.exit_code == 1 and "pre_due/sms.en-US.j2: never states the due date" in result.output


def test_call_commands(engine):
    add_account(engine, "A1", days_past_due=50)
    ok = runner.invoke(app, ["call", "check", "A1", "--now", "2026-11-23T15:00:00Z"])
    assert ok.exit_code == 0 and ok.output.startswith("yes: you may call account A1 now (Mon 10:00)")
    late = runner.invoke(app, ["call", "check", "A1", "--now", "2026-11-24T03:00:00Z"])
    assert late.exit_code == 3 and ("no: outside_contact_window; next allowed Tue 2026-11-24 08:00 America/New_York "
                                    "for the customer, 2026-11-24 13:00 UTC") in late.output
    logged = runner.invoke(app, ["call", "log", "A1", "--outcome", "connected", "--now", "2026-11-23T15:00:00Z"])
    assert logged.exit_code == 0 and "call logged for account A1: connected" in logged.output
    again = runner.invoke(app, ["call", "log", "A1", "--outcome", "no_answer", "--now", "2026-11-23T16:00:00Z"])
    assert again.exit_code == 0 and "warning: this call was not allowed (frequency_cap)" in again.output


def test_call_check_gives_the_next_allowed_time_in_each_of_the_customers_zones(engine):
    """A Pacific address with a New York landline: both zones must be in the window (issue 8: 18)."""
    add_account(engine, "A2", days_past_due=50, customer={"timezone": "America/Los_Angeles"})
    late = runner.invoke(app, ["call", "check", "A2", "--now", "2026-11-24T03:00:00Z"])
    assert late.exit_code == 3
    assert ("next allowed Tue 2026-11-24 08:00 America/Los_Angeles, Tue 2026-11-24 11:00 America/New_York "
            "for the customer, 2026-11-24 16:00 UTC") in late.output


def test_call_check_says_no_for_an_erased_customer_or_one_without_a_phone(engine):
    """Issue 24 item 4: `call check` said "yes: you may call" for an erased customer with no phone."""
    add_account(engine, "A1", days_past_due=50)
    add_account(engine, "A2", days_past_due=50, customer={"phone": None})
    erased = runner.invoke(app, ["customer", "erase", "A1", "--reason", "GDPR-1", "--yes",
                                 "--now", "2026-11-23T15:00:00Z"])
    assert erased.exit_code == 0, erased.output
    for account, reason in (("A1", "customer_erased"), ("A2", "no_phone")):
        result = runner.invoke(app, ["call", "check", account, "--now", "2026-11-23T15:00:00Z"])
        assert result.exit_code == 3 and result.output.strip() == f"no: {reason}", result.output


def test_unknown_channels_are_refused_and_help_lists_them(engine):
    """``outbox --channel fax`` used to answer "0 message(s)" (issue 8: 15)."""
    for args in (["outbox", "--channel", "fax"], ["optout", "C1", "--channel", "fax"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "fax" in result.output and "is not one of" in result.output
    assert "<email|sms|push>" in runner.invoke(app, ["outbox", "--help"]).output
    assert "<email|sms|push|all>" in runner.invoke(app, ["optout", "--help"]).output
    add_account(engine, "A1", days_past_due=3)
    assert invoke("optout", "C-A1", "--channel", "push").exit_code == 0
    assert invoke("outbox", "--channel", "push").output.startswith("0 message(s) in the outbox")


def test_a_provider_switched_on_without_credentials_is_a_one_line_error(engine, monkeypatch):

    monkeypatch.setenv("CAMPAIGNS_CHANNEL_SMS", "twilio")
    result = invoke("recover")
    assert result.exit_code == 1
    assert "TWILIO_ACCOUNT_SID" in result.output and "Traceback" not in result.output


# --- One line, never a traceback (issue 8: 11, 14) ------------------------------------------------------

def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CAMPAIGNS_PROVIDER_RATE_LIMITS", "sendgrid=100", 'CAMPAIGNS_PROVIDER_RATE_LIMITS: cannot be parsed: it takes JSON, e.g. {"sendgrid": 100'),
        ("CAMPAIGNS_DATABASE_URL", "mysql://user:secret@db/collections", "CAMPAIGNS_DATABASE_URL: 'mysql' is not supported"),
        ("CAMPAIGNS_DATABASE_URL", "not a url", "CAMPAIGNS_DATABASE_URL: is not a database URL"),
        ("CAMPAIGNS_CHUNK_SIZE", "0", "CAMPAIGNS_CHUNK_SIZE: Input should be greater than or equal to 1"),
    ],
)
def test_bad_settings_name_the_variable_in_one_line(monkeypatch, variable, value, expected):

    monkeypatch.setenv(variable, value)
    line = one_line_error(invoke("runs"))
    assert expected in line and "secret" not in line


def test_a_postgres_url_without_a_driver_uses_psycopg(monkeypatch):
    from campaigns.settings import Settings

    assert Settings(database_url="postgresql://u@h/db").database_url == "postgresql+psycopg://u@h/db"


def test_a_timestamp_that_is_not_iso_gives_an_example(engine):
    result = runner.invoke(app, ["run", "soft_nudge", "--now", "tomorrow"])
    shown = " ".join(result.output.replace("│", " ").split())  # rich draws the message in a box
    assert result.exit_code == 2
    assert "'tomorrow' is not an ISO 8601 timestamp; write e.g. 2026-11-22T09:00:00-05:00" in shown


def test_a_sqlite_database_in_a_missing_directory_is_not_silently_created(tmp_path, monkeypatch):

    url_path = tmp_path / "typo" / "campaigns.db"
    monkeypatch.setenv("CAMPAIGNS_DATABASE_URL", f"sqlite:///{url_path}")
    assert "no database at" in one_line_error(invoke("runs"))
    assert "directory" in one_line_error(invoke("db", "upgrade")) and "does not exist" in one_line_error(invoke("db", "upgrade"))
    assert not url_path.parent.exists()
    url_path.parent.mkdir()
    assert invoke("db", "upgrade").exit_code == 0 and url_path.is_file()


def test_a_database_error_is_one_line_without_its_parameters():
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError

    from campaigns.cli.app import friendly_errors

    eng = create_engine("sqlite://", hide_parameters=True)
    with eng.begin() as conn:
        conn.execute(text("create table t (email text unique)"))
        conn.execute(text("insert into t values ('secret@example.com')"))

    @friendly_errors
    def failing():
        with eng.begin() as conn:
            conn.execute(text("insert into t values (:email)"), {"email": "secret@example.com"})

    import typer

    with pytest.raises(typer.Exit):
        failing()
    with pytest.raises(IntegrityError) as raw:
        failing.__wrapped__()
    assert "secret@example.com" not in str(raw.value)


def test_the_friendly_error_for_a_refused_write_names_only_the_error_class(capsys):
    import typer
    from sqlalchemy.exc import DataError

    from campaigns.cli.app import friendly_errors

    class StringDataRightTruncation(Exception):
        sqlstate = "22001"

    @friendly_errors
    def failing():
        raise DataError("INSERT INTO customers ...", {"name": "Secret Person"}, StringDataRightTruncation("value too long"))

    with pytest.raises(typer.Exit):
        failing()
    line = capsys.readouterr().err.strip()
    assert line == ("error: the database refused a write (StringDataRightTruncation, SQLSTATE 22001); "
                    "what that step wrote was rolled back")


def test_a_slow_temporary_prefect_server_is_one_line_that_says_what_to_do(engine, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from campaigns.settings import PROJECT_ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="0")
    campaigns = str(Path(sys.executable).with_name("campaigns"))
    result = subprocess.run([campaigns, "runs"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr  # `runs` needs no Prefect at all
    result = subprocess.run([campaigns, "run", "soft_nudge", "--dry-run"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith("error: Prefect's temporary server did not start within 0 s")
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in lines[-1] and "PREFECT_API_URL" in lines[-1]


def test_the_worklist_says_what_was_tried_and_writes_amounts_in_the_currency(engine, ladder_file, tmp_path):
    """It used to print ``tried {}`` for every item and write ``25.0000`` (issue 8: 16)."""
    from datetime import timedelta

    import pandas as pd

    from campaigns.channels import OutboxGateway
    from campaigns.channels.agent import AgentWorklistGateway
    from campaigns.ladder.config import load_ladder
    from campaigns.db.models import Stage
    from tests.conftest import AS_OF
    from tests.contact.test_pipeline import run_stage

    ladder = load_ladder(ladder_file)
    add_account(engine, "OLD", days_past_due=46)
    add_account(engine, "NEW", days_past_due=80, currency="JPY", amount_due=2500, balance=9000)
    outbox = OutboxGateway(engine)
    gateways = {"email": outbox, "sms": outbox, "agent": AgentWorklistGateway(engine)}
    run_stage(engine, ladder, Stage.plan_offer, gateways, as_of=AS_OF - timedelta(days=20))
    run_stage(engine, ladder, Stage.escalation, gateways)
    shown = " ".join(invoke("worklist").output.replace("│", " ").split())
    assert "2026-11-02 plan_offer email sent" in shown and "nothing: no earlier contact" in shown
    assert invoke("worklist", "--csv", tmp_path / "w.csv").exit_code == 0
    written = pd.read_csv(tmp_path / "w.csv", dtype=str).set_index("account_id")
    assert written.loc["OLD", "amount_due"] == "120.50" and written.loc["NEW", "amount_due"] == "2500"
    assert written.loc["OLD", "tried"].startswith("2026-11-02 plan_offer email sent")


def test_preview_and_review_commands(engine, tmp_path):
    from datetime import timedelta
    from decimal import Decimal

    from sqlalchemy import insert

    from campaigns.db.models import Payment, Stage
    from campaigns.runs.records import start_run
    from tests.conftest import AS_OF, NOW
    from tests.review.test_review import _assign

    add_account(engine, "A1", days_past_due=20, customer={"name": "Wilma Hidden"})
    add_account(engine, "A2", days_past_due=20, customer={"email_opt_out": True, "sms_consent": False})
    ids = tmp_path / "ids.csv"
    ids.write_text("account_id\nA1\nA2\n")
    result = invoke("preview", "plan_offer", "--cohort", ids, "--as-of", AS_OF, "--now", "2026-11-22T15:00:00Z")
    assert result.exit_code == 0, result.output
    assert "2 account(s), 2 in the stage's guards" in result.output and "Nothing is written" in result.output
    assert "Subject:" in result.output and "account A2 · email · suppressed · opted_out" in result.output
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContactAttempt)).scalar_one() == 0
    bad = runner.invoke(app, ["preview", "thank_you", "--cohort", str(ids)])
    assert bad.exit_code == 1 and "an ad-hoc cohort runs pre_due, soft_nudge" in bad.output
    bad = runner.invoke(app, ["preview", "soft_nudge", "--cohort", "segment=late"])
    assert bad.exit_code == 1 and bad.output.startswith("error: --cohort: unknown segment late")

    run_id = start_run(engine, Stage.soft_nudge, AS_OF, NOW, started_at=NOW, name="daily")
    _assign(engine, run_id, "A1", "control")
    _assign(engine, run_id, "A2", "holdout", status="holdout")
    with engine.begin() as conn:
        conn.execute(insert(Payment.__table__), {"payment_id": "p1", "account_id": "A1", "amount": Decimal("100"),
                                                 "currency": "USD", "paid_at": NOW + timedelta(days=1)})
    out_dir = tmp_path / "review"
    result = invoke("review", "--since", AS_OF, "--until", AS_OF, "--out", out_dir)
    assert result.exit_code == 0, result.output
    assert "`control` cures 100.0 points more than the holdout" in result.output
    assert (out_dir / "report.html").is_file() and (out_dir / "uplift.parquet").is_file()
    assert "Wilma" not in result.output + (out_dir / "report.html").read_text()
    wrong = runner.invoke(app, ["review", "--since", "2026-11-30", "--until", "2026-11-01"])
    assert wrong.exit_code == 1 and "is before since" in wrong.output
    wrong = runner.invoke(app, ["review", "--since", "yesterday"])
    assert wrong.exit_code == 1 and "--since 'yesterday' is not a day" in wrong.output


# --- Issue 24 (13, 14): paths the system refuses, and arguments that were accepted though wrong ---------

@pytest.mark.parametrize(("args", "expected"), [
    (("review", "--out", "/etc/hostname"), "error: /etc/hostname: a file is there, where a directory is needed"),
    (("review", "--out", "/proc/rev"), "error: /proc/rev: "),
    (("worklist", "export", "--out", "/nonexistent/dir/x.csv"),
     "error: /nonexistent/dir/x.csv: the directory /nonexistent/dir does not exist"),
])
def test_an_output_path_the_system_refuses_is_one_line(engine, args, expected):
    assert one_line_error(invoke(*args)).startswith(expected)


def test_review_of_an_unknown_stage_is_refused(engine):
    line = one_line_error(invoke("review", "--stage", "lunch", "--out", "/tmp/unused-review"))
    assert line.startswith("error: unknown stage(s) lunch; the ladder's stages are pre_due, soft_nudge")


def test_the_readme_shows_what_the_demo_prints(prefect_harness, engine, tmp_path, monkeypatch):
    """Issue 24 item 16: the README's demo output was stale. It is written from a real run
    (scripts/readme_demo.py); here the demo runs again, on each database, and must print the same."""
    import re

    from campaigns.settings import PROJECT_ROOT
    from scripts.readme_demo import readme_block, shown_part

    day, block = readme_block((PROJECT_ROOT / "README.md").read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CAMPAIGNS_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CAMPAIGNS_LADDER_CONFIG")  # the shipped ladder, holdout and experiments included
    result = invoke("demo", "--as-of", day)
    assert result.exit_code == 0, result.output
    where = re.compile(r"(is in contact_attempts: ).*")  # this test's database, not the demo's SQLite file
    signed = re.compile(r"(/c/[A-Z0-9]+~\d{8}~)[a-z2-7]{20}")  # each installation signs page links with its key
    shown = signed.sub(r"\1…", where.sub(r"\1…", shown_part(result.output)))
    assert shown == signed.sub(r"\1…", where.sub(r"\1…", block))
