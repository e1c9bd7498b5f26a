"""Commands that run the ladder: ``run``, ``daily``, ``dispatch``, ``recover``, ``demo``.

Flows are imported lazily, inside commands: the rest of ``campaigns`` never imports Prefect.
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.app import (
    AsOfOpt,
    CliError,
    NowOpt,
    StageName,
    app,
    clock_now,
    creating_services,
    friendly_errors,
    migrated_services,
    out,
    parse_now_option,
)


def _summary_table(summaries: list[dict], title: str) -> Table:
    """Per stage: cohort (accounts) and attempts by outcome; reasons on the lines below."""
    table = Table(title=title, title_justify="left")
    for column in ("stage", "cohort", "sent", "deferred", "suppressed", "holdout", "failed", "already logged"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in summaries:
        sent = f"{s['would_send']} (dry run)" if s.get("dry_run") else str(s["sent"])
        table.add_row(s["stage"], str(s["cohort"]), sent, str(s.get("deferred", 0)), str(s["suppressed"]),
                      str(s["holdout"]), str(s["failed"]), str(s["already_recorded"]), style="bold")
        for reason, n in s.get("deferred_by_reason", {}).items():
            table.add_row(f"  {reason}", "", "", str(n), "", "", "", "", style="dim")
        for reason, n in s["suppressed_by_reason"].items():
            table.add_row(f"  {reason}", "", "", "", str(n), "", "", "", style="dim")
        for reason, n in s["failed_by_reason"].items():
            table.add_row(f"  {reason}", "", "", "", "", "", str(n), "", style="dim")
        if s["unknown"]:
            table.add_row("  unknown outcome", "", "", "", "", "", str(s["unknown"]), "", style="dim")
        if s["queued"]:
            table.add_row("  queued, not yet delivered", "", str(s["queued"]), "", "", "", "", "", style="dim")
        if s.get("handled_by_other_run"):
            table.add_row("  delivered by an overlapping run", "", str(s["handled_by_other_run"]), "", "", "", "", "",
                          style="dim")
    return table


def _print_previews(summaries: list[dict]) -> None:
    for s in summaries:
        for p in s.get("previews", []):
            out.rule(f"{s['stage']} · {p['channel']} · {p['template']} · account {p['account_id']}")
            if p.get("subject"):
                out.print(f"Subject: {p['subject']}", markup=False, highlight=False)
            out.print(p["text"], markup=False, highlight=False)


def _refuse_a_day_to_come(as_of: datetime | None, now: str | None, dry_run: bool, what: str) -> None:
    """Before the flow starts (the flow refuses it too, for runs started from the UI): one line, no run."""
    if dry_run or as_of is None:
        return
    from campaigns.clock import refuse_a_future_day, resolve_clock

    zone = migrated_services().settings.lender_zone
    day, moment = resolve_clock(as_of.date(), parse_now_option(now), zone)
    refuse_a_future_day(day, moment, zone, what)


@app.command("run")
@friendly_errors
def run_command(
    stage: Annotated[StageName, typer.Argument(help="The stage to run.")],
    as_of: AsOfOpt = None,
    now: NowOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and render, show a preview, log and send nothing.")] = False,
) -> None:
    """Run one stage of the ladder for a day through Prefect."""
    migrated_services()  # a one-line error if the schema is behind
    from campaigns.db.models import Stage
    from flows.stages import STAGE_FLOWS

    _refuse_a_day_to_come(as_of, now, dry_run, f"a live {stage.value} run")
    summary = STAGE_FLOWS[Stage(stage.value)](as_of=as_of.date() if as_of else None, now=parse_now_option(now), dry_run=dry_run)
    out.print(_summary_table([summary], f"{stage.value} as of {summary['as_of']}"))
    if dry_run:
        _print_previews([summary])


@app.command("daily")
@friendly_errors
def daily_command(
    as_of: AsOfOpt = None,
    now: NowOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and render, log and send nothing.")] = False,
) -> None:
    """Run the whole ladder for one day (the daily_campaign flow). Safe to re-run: nothing is sent twice."""
    migrated_services()  # a one-line error if the schema is behind
    from flows.daily import daily_campaign

    _refuse_a_day_to_come(as_of, now, dry_run, "the daily campaign")
    summaries = daily_campaign(as_of=as_of.date() if as_of else None, now=parse_now_option(now), dry_run=dry_run)
    out.print(_summary_table(summaries, f"daily campaign as of {summaries[0]['as_of'] if summaries else as_of}"))
    if dry_run:
        _print_previews(summaries)


@app.command("dispatch")
@friendly_errors
def dispatch_command(now: NowOpt = None) -> None:
    """Release deferred messages whose customers' contact window has opened (the 15-minute dispatch flow)."""
    migrated_services()  # a one-line error if the schema is behind
    from flows.dispatch import dispatch

    summary = dispatch(now=parse_now_option(now))
    out.print(f"released {summary['sent']}, deferred again {summary['deferred']}, stopped {summary['suppressed']}"
              + (f" ({', '.join(f'{r} {n}' for r, n in summary['suppressed_by_reason'].items())})"
                 if summary["suppressed"] else ""), highlight=False)


@app.command("recover")
@friendly_errors
def recover_command(
    lease_seconds: Annotated[int | None, typer.Option(
        min=0, help="Treat claims older than this as a dead deliverer's (default CAMPAIGNS_CLAIM_LEASE_SECONDS). "
                    "0 once you know no run is in progress.")] = None,
    now: NowOpt = None,
) -> None:
    """Settle what a crashed run left half-sent (the dispatch flow does this every 15 minutes)."""
    from datetime import timedelta

    from campaigns.delivery.recovery import recover

    s = migrated_services()
    lease = s.settings.claim_lease_seconds if lease_seconds is None else lease_seconds
    hours = s.settings.resend_unconfirmed_after_hours
    tally = recover(s.engine, s.gateways, now=clock_now(now), wall_now=datetime.now(timezone.utc),
                    lease=timedelta(seconds=lease), unconfirmed_after=timedelta(hours=hours) if hours else None)
    counts = tally.as_dict()
    out.print("recovered: " + (", ".join(f"{k} {v}" for k, v in counts.items()) if counts else "nothing to do")
              + ("; `campaigns dispatch` sends what was queued again" if tally.total("deferred") else ""),
              highlight=False)


def quiet_prefect_console() -> None:
    """Prefect's INFO lines off the terminal (warnings and errors stay): the demo prints its own summary. The
    runs still send every line to their server. Set before Prefect configures its logging; after, on the
    handler itself."""
    import logging

    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    if "prefect.logging.handlers" in sys.modules:
        from prefect.logging.handlers import PrefectConsoleHandler

        for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", ""):
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, PrefectConsoleHandler):
                    handler.setLevel(os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"])


@app.command("demo")
@friendly_errors
def demo_command(
    accounts: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many synthetic accounts.")] = 3000,
    as_of: AsOfOpt = None,
    now: NowOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic portfolio.")] = 20261122,
    verbose: Annotated[bool, typer.Option("--verbose", help="Also print Prefect's log lines (the runs keep "
                                                            "them either way: make demo-ui).")] = False,
) -> None:
    """The main job on the embedded default: database, synthetic portfolio, daily campaign, summary.

    Without --now it runs as the scheduled daily run would: at 09:00 in the lender's time zone.
    """
    if not verbose:
        quiet_prefect_console()
    from campaigns.clock import resolve_clock
    from campaigns.schema_upgrade import upgrade_database
    from campaigns.portfolio import import_portfolio
    from campaigns.portfolio.demo import (
        DemoSpec,
        generate_portfolio,
        record_demo_payments,
        write_demo_file,
    )

    from campaigns.sealing.keys import ensure_keys
    from campaigns.settings import get_settings

    # The demo's data is sealed at rest like a lender's: its keys in a private file made on the first run.
    key_file, made = ensure_keys(get_settings())
    s = creating_services()
    upgrade_database(s.engine, lender_zone=s.settings.lender_zone)
    if key_file is not None:
        out.print(f"keys that seal names, emails, phones and messages: {_shown(key_file)} "
                  f"({'made now, ' if made else ''}0600; campaigns keys status)", highlight=False)
    day, moment = resolve_clock(as_of.date() if as_of else None, parse_now_option(now), s.settings.lender_zone)
    if now is None:
        # Simulate the scheduled daily run: 09:00 in the lender's zone (prefect.yaml), not whatever time it is.
        moment = datetime.combine(day, time(9, 0), tzinfo=s.settings.lender_zone).astimezone(timezone.utc)
    frame = generate_portfolio(day, DemoSpec(accounts=accounts, seed=seed))
    path = write_demo_file(frame, s.settings.data_dir / "demo" / "portfolio.csv")
    report = import_portfolio(s.engine, path, now=moment, zone=s.settings.lender_zone)
    if not report.ok:
        raise CliError(f"the demo portfolio did not import cleanly: {report.errors[0]}")
    record_demo_payments(s.engine, frame, moment, s.settings.lender_zone)
    out.print(f"demo portfolio: {report.accounts_loaded} accounts, {report.customers_loaded} customers "
              f"({_shown(path)})", highlight=False)

    from flows.daily import daily_campaign

    summaries = daily_campaign(as_of=day, now=moment)
    out.print()
    out.print(_summary_table(summaries, f"daily campaign as of {day}, "
                                        f"{moment.astimezone(s.settings.lender_zone):%H:%M} {s.settings.lender_timezone} "
                                        "(counts of contact attempts)"))
    if now is None:
        _simulate_dispatch(s, day)
    _simulate_customers(s, day, moment)
    _simulate_page_visits(s, day, moment)
    _review_the_day(s, day)
    _print_where(s)


def _shown(path) -> Path:
    """A path as a person at the project's root would type it: relative when it is under the working directory."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _simulate_dispatch(s, day: date) -> None:
    """The rest of the demo day: the dispatcher releases what waited for the customers' morning."""
    from flows.dispatch import dispatch

    zone = s.settings.lender_zone
    # 13:00 New York is 08:00 in Hawaii; 19:00 is 08:00 the next morning in Shanghai.
    for hour in (13, 19):
        moment = datetime.combine(day, time(hour, 0), tzinfo=zone).astimezone(timezone.utc)
        result = dispatch(now=moment)
        out.print(f"dispatch at {hour:02d}:00 {s.settings.lender_timezone}: released {result['sent']}, "
                  f"deferred again {result['deferred']}, stopped {result['suppressed']}", highlight=False)


def _simulate_customers(s, day: date, moment: datetime) -> None:
    """Some demo customers take a plan through their link and pay: the money line of the demo."""
    from campaigns.contact.render import format_money
    from campaigns.portfolio.demo import simulate_responses

    if s.ladder.plan_rules is None:
        return
    r = simulate_responses(s.engine, day, moment, s.brand, s.ladder.plan_rules, s.settings.lender_zone,
                           s.settings.data_dir)
    money = ", ".join(format_money(v, c, "en-US") for c, v in sorted(r.applied.items())) or "nothing"
    out.print(f"money back (simulated customers): {r.accepted} of {r.offers} plan offers accepted through their "
              f"links, {r.payments} payments ({money}) imported from {_shown(r.payments_file)}"
              + (f" ({r.already_recorded} already recorded: a re-run)" if r.already_recorded else "")
              + f", {r.paid_off} account(s) "
              f"paid in full (thanked in the next daily run)"
              + (f"   → campaigns plans show {r.example_plan}" if r.example_plan else ""), highlight=False)


def _simulate_page_visits(s, day: date, moment: datetime) -> None:
    """Some demo customers use their own page and reply: the customer's-side line, with one page to open."""
    from campaigns.portfolio.demo import simulate_page_visits

    v = simulate_page_visits(s.engine, day, moment, s.settings.lender_zone, s.ladder.deferral, s.ladder.segments)
    out.print(f"customers on their pages (simulated): {v.reasons} said why they are late, {v.deferrals} asked for "
              f"more time, {v.call_backs} asked for a call back, {v.ratings} rated us; {v.replies} replied by SMS"
              + (f" ({v.already} already recorded: a re-run)" if v.already else "") + "   → campaigns worklist",
              highlight=False)
    if v.example_account and s.brand.page_secret:
        from dataclasses import replace

        local = replace(s.brand, page_url="http://127.0.0.1:8085/c/{token}")
        out.print(f"one customer's page: campaigns serve-webhooks, then open "
                  f"{local.page_link(v.example_account, day)} (on a phone-sized window)", highlight=False,
                  soft_wrap=True)


def _review_the_day(s, day: date) -> None:
    """The review of the demo day (the simulated customers paid within hours): the line that says what worked."""
    from campaigns.review.effectiveness import run_review
    from campaigns.review.report import write_review

    review = run_review(s.engine, day, day, s.review, s.ladder)
    where = s.settings.data_dir / "review" / "demo"
    written = write_review(review, where)
    against_holdout = review.uplift[(review.uplift["metric"] == "cure_rate") & (review.uplift["baseline"] == "holdout")]
    best = against_holdout.sort_values("uplift", ascending=False).head(1)
    headline = (f"{best.iloc[0]['stage']}: {best.iloc[0]['finding']}" if not best.empty
                else (review.findings[0] if review.findings else "no arm to compare"))
    out.print(f"what works (simulated payments, {len(review.units):,} assigned accounts): {headline}"
              f"   → {_shown(written['report'])}  (campaigns review --since {day} --until {day} --out {_shown(where)})",
              highlight=False)


def _print_where(s) -> None:
    from sqlalchemy import func, select

    from campaigns.db.models import AgentWorklistItem, ContactAttempt, OutboxMessage

    with s.engine.connect() as conn:
        outbox = conn.execute(select(func.count()).select_from(OutboxMessage)).scalar_one()
        worklist = conn.execute(select(func.count()).select_from(AgentWorklistItem)).scalar_one()
    with s.engine.connect() as conn:
        deferred = conn.execute(select(func.count()).where(ContactAttempt.status == "deferred")).scalar_one()
    out.print(f"messages in the outbox (stored, not sent): {outbox}   → campaigns outbox", highlight=False)
    if deferred:
        out.print(f"messages waiting for their customer's contact window: {deferred}   → campaigns dispatch "
                  "(the dispatch deployment runs it every 15 minutes)", highlight=False)
    out.print(f"accounts on the agents' worklist: {worklist}   → campaigns worklist", highlight=False)
    url = s.engine.url
    if url.get_backend_name() == "sqlite" and url.database:
        url = url.set(database=str(_shown(Path(url.database))))
    out.print(f"every attempt, sent or not, is in contact_attempts: {url.render_as_string()}", highlight=False)
    out.print("runs and their counts → campaigns runs", highlight=False)
