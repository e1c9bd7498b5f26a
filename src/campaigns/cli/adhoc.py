"""Ad-hoc cohorts for the data team: ``campaigns preview`` (writes nothing) and ``campaigns adhoc`` (runs)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.app import AsOfOpt, CliError, NowOpt, app, friendly_errors, migrated_services, out, parse_now_option

CohortOpt = Annotated[str, typer.Option(
    "--cohort", help="A CSV or Parquet file with an account_id column; view:NAME (a view in adhoc_views); or a "
                     "filter such as dpd=15..30,balance=100..,segment=chronic_late,locale=en-US,country=US,product=card "
                     "('|' between alternatives).")]
AdhocStageArg = Annotated[str, typer.Argument(help="pre_due, soft_nudge, plan_offer or escalation.")]


def _cohort(text: str):
    from pydantic import ValidationError

    from campaigns.contact.adhoc import AdhocError, parse_cohort

    try:
        return parse_cohort(text)
    except ValidationError as exc:
        raise CliError("--cohort: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    except AdhocError as exc:
        raise CliError(str(exc)) from None


def _stage(name: str):
    from flows.adhoc import AdhocStage

    try:
        return AdhocStage(name)
    except ValueError:
        raise CliError(f"stage {name!r}: an ad-hoc cohort runs {', '.join(s.value for s in AdhocStage)}") from None


@app.command("preview")
@friendly_errors
def preview_command(
    stage: AdhocStageArg,
    cohort: CohortOpt,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many messages and suppressions to show.")] = 5,
    reveal: Annotated[bool, typer.Option("--reveal", help="Show the customers' names in the samples (logged; "
                                                          "needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why the names are needed, for the access log.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who asks (for the access log). Default: your user "
                                                        "name.")] = None,
    as_of: AsOfOpt = None,
    now: NowOpt = None,
) -> None:
    """Show what an ad-hoc run would send and suppress (with reasons), writing nothing. Names in the samples are
    masked unless --reveal --reason (logged, like customer show)."""
    import getpass

    from campaigns.clock import resolve_clock
    from campaigns.contact.adhoc import AdhocError, resolve_cohort
    from campaigns.contact.preview import preview_cohort
    from campaigns.db.models import Stage
    from campaigns.privacy.retention import log_access

    if reveal and not (reason and reason.strip()):
        raise CliError("revealing personal data needs a reason (--reason)")
    chosen, parsed = Stage(_stage(stage).value), _cohort(cohort)
    s = migrated_services()
    day, moment = resolve_clock(as_of.date() if as_of else None, parse_now_option(now), s.settings.lender_zone)
    try:
        ids = resolve_cohort(s.engine, parsed, day, s.ladder, s.review.adhoc_views)
        result = preview_cohort(s.engine, s.ladder, s.templates, s.brand, s.policy, chosen, day, moment, ids,
                                s.settings.chunk_size, limit, reveal=reveal)
    except AdhocError as exc:
        raise CliError(str(exc)) from None
    if reveal and result["messages"]:
        with s.engine.begin() as conn:
            for m in result["messages"]:
                log_access(conn, moment, by or getpass.getuser(), "reveal_preview", account_id=m["account_id"],
                           reason=reason)
    out.print(f"preview of {chosen.value} as of {day} for {parsed.describe()}: {result['accounts']:,} account(s), "
              f"{result['in_cohort']:,} in the stage's guards"
              + (f" ({result['left_out']:,} left out: {result['outside_stage_days']:,} outside the stage's days "
                 f"past due ({result['stage_days']}); the others paid, in another stage today, contacted within "
                 "every_days, or in a plan or promise)" if result["left_out"] else "") + ". Nothing is written.",
              highlight=False)
    table = Table(title="what a run would log", title_justify="left")
    table.add_column("outcome")
    table.add_column("attempts", justify="right")
    for key, n in sorted(result["counts"].items()):
        table.add_row(key.replace(":", " · "), f"{n:,}")
    out.print(table)
    for m in result["messages"]:
        out.rule(f"{m['channel']} · {m['template']} · arm {m['arm']} · account {m['account_id']}")
        if m.get("subject"):
            out.print(f"Subject: {m['subject']}", markup=False, highlight=False)
        out.print(m["text"], markup=False, highlight=False)
    if result["suppressions"]:
        out.rule("not sent, and why")
        for x in result["suppressions"]:
            out.print(f"account {x['account_id']} · {x['channel']} · {x['status']} · {x['reason']}", highlight=False)


@app.command("adhoc")
@friendly_errors
def adhoc_command(
    stage: AdhocStageArg,
    cohort: CohortOpt,
    as_of: AsOfOpt = None,
    now: NowOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and render, log and send nothing.")] = False,
) -> None:
    """Run one stage for an ad-hoc cohort through Prefect (the adhoc_campaign flow): same policy, experiments,
    idempotency and log as the daily run; its attempts carry the run's name."""
    from campaigns.cli.campaign import _print_previews, _refuse_a_day_to_come, _summary_table
    from flows.adhoc import adhoc_campaign

    from campaigns.clock import resolve_clock
    from campaigns.contact.adhoc import check_stage_days, describe_days, resolve_cohort
    from campaigns.db.models import Stage

    chosen, parsed = _stage(stage), _cohort(cohort)
    s = migrated_services()
    _refuse_a_day_to_come(as_of, now, dry_run, f"a live ad-hoc {chosen.value} run")
    # A bad cohort is one line here, before a flow run starts (the flow checks it again, for UI runs).
    day = resolve_clock(as_of.date() if as_of else None, None, s.settings.lender_zone)[0]
    ids = resolve_cohort(s.engine, parsed, day, s.ladder, s.review.adhoc_views)
    rule = s.ladder.rule(Stage(chosen.value))
    outside = check_stage_days(s.engine, ids, rule, day, parsed.describe())
    if outside:
        out.print(f"{len(outside):,} of the cohort's {len(ids):,} account(s) are outside {chosen.value}'s days past "
                  f"due ({describe_days(rule.day_bounds)}) on {day} and are left out: its message would not be "
                  "true for them", highlight=False)
    summary = adhoc_campaign(stage=chosen, cohort=parsed, as_of=as_of.date() if as_of else None,
                             now=parse_now_option(now), dry_run=dry_run)
    out.print(_summary_table([summary], f"ad-hoc {chosen.value} as of {summary['as_of']} ({summary['cohort_source']})"))
    if dry_run:
        _print_previews([summary])
