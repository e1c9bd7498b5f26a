"""``campaigns review``: what works, as Parquet files and an HTML report."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from campaigns.cli.app import CliError, app, friendly_errors, migrated_services, out


@app.command("review")
@friendly_errors
def review_command(
    since: Annotated[str | None, typer.Option(help="First day of assignments (YYYY-MM-DD). Default: 4 weeks "
                                                   "before --until.")] = None,
    until: Annotated[str | None, typer.Option(help="Last day of assignments. Default: the last day whose "
                                                   "attribution window has closed.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where report.html and the Parquet files go.")] = Path(
        "var/review"),
    stage: Annotated[list[str] | None, typer.Option(help="Only these stages (repeat the option).")] = None,
) -> None:
    """The effectiveness review: arms, cure and recovery rates, uplift with 95% intervals, to DIR/report.html
    and DIR/*.parquet (docs/data-team.md)."""
    from campaigns.review.effectiveness import run_review
    from campaigns.review.report import write_review

    from campaigns.review.effectiveness import review_days

    s = migrated_services()
    for option, value in (("--since", since), ("--until", until)):
        try:
            value and date.fromisoformat(value)
        except ValueError:
            raise CliError(f"{option} {value!r} is not a day (YYYY-MM-DD)") from None
    try:
        first, last = review_days(since, until, datetime.now(s.settings.lender_zone).date(),
                                  s.review.attribution_window_days)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    known = [x.value for x in s.ladder.ordered_stages()]
    unknown = [x for x in stage or [] if x not in known]
    if unknown:
        raise CliError(f"unknown stage(s) {', '.join(unknown)}; the ladder's stages are {', '.join(known)}")
    review = run_review(s.engine, first, last, s.review, s.ladder, stages=stage or None)
    written = write_review(review, out_dir)
    for line in review.findings:
        out.print(line, style="bold red" if line.startswith("WARNING") else None, highlight=False, markup=False)
    if not review.arms.empty:
        table = Table(title=f"arms, assignments {first} to {last} ({s.review.attribution_window_days}-day window, "
                            f"amounts in {s.review.reporting_currency})", title_justify="left")
        for column in ("stage", "arm", "accounts", "cure rate", "recovery rate", "sent"):
            table.add_column(column, justify="left" if column in ("stage", "arm") else "right")
        for r in review.arms.itertuples():
            table.add_row(r.stage, r.variant + (" (champion)" if r.champion else ""), f"{r.accounts:,}",
                          f"{r.cure_rate:.1%}", "–" if r.recovery_rate != r.recovery_rate else f"{r.recovery_rate:.1%}",
                          f"{r.sent:,}")
        out.print(table)
    out.print(f"report: {written['report']}  (Parquet: {', '.join(p.name for k, p in written.items() if k != 'report')})",
              highlight=False)


risk_app = typer.Typer(help="The risk model: train the next version, see what it is.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")


@risk_app.command("train")
@friendly_errors
def risk_train_command(
    days: Annotated[int, typer.Option(min=28, max=730, help="Days of assignments to learn from.")] = 180,
) -> None:
    """Train the next risk model version from the outcome log (the train_risk_model flow)."""
    from flows.risk import train_risk_model

    migrated_services()
    result = train_risk_model(days=days)
    out.print(f"risk model v{result['version']}: {result['status']} — {result['note']}", highlight=False)


@risk_app.command("show")
@friendly_errors
def risk_show_command() -> None:
    """The stored risk model versions, newest first: window, metrics, calibration and what drives the score."""
    from campaigns.risk.model import history

    s = migrated_services()
    versions = history(s.engine)
    if not versions:
        out.print("no risk model yet: `campaigns risk train` (or the train-risk-model deployment, weekly)")
        return
    table = Table(title="risk models (the newest ready one orders the worklist)", title_justify="left")
    for column in ("version", "trained", "window", "status", "accounts", "cured", "AUC", "Brier"):
        table.add_column(column)
    for v in versions:
        table.add_row(str(v["version"]), f"{v['trained_at']:%Y-%m-%d %H:%M}", v["window"], v["status"],
                      f"{v['units']:,}", f"{v['cured']:,}", "–" if v["auc"] is None else f"{v['auc']:.3f}",
                      "–" if v["brier"] is None else f"{v['brier']:.3f}")
    out.print(table)
    out.print(f"v{versions[0]['version']}: {versions[0]['note']}", highlight=False)


uplift_app = typer.Typer(help="The uplift model (who a message helps): train the next version, see what it is.",
                         no_args_is_help=True)
app.add_typer(uplift_app, name="uplift")


@uplift_app.command("train")
@friendly_errors
def uplift_train_command(
    days: Annotated[int, typer.Option(min=28, max=730, help="Days of assignments to learn from.")] = 180,
) -> None:
    """Train the next uplift model version from the randomised history (the train_uplift_model flow)."""
    from flows.uplift import train_uplift_model

    migrated_services()
    result = train_uplift_model(days=days)
    out.print(f"uplift model v{result['version']}: {result['status']} — {result['note']}", highlight=False)


@uplift_app.command("show")
@friendly_errors
def uplift_show_command() -> None:
    """The stored uplift model versions, newest first: window, accounts, Qini area, and its curve."""
    from campaigns.risk.uplift import history

    s = migrated_services()
    versions = history(s.engine)
    if not versions:
        out.print("no uplift model yet: `campaigns uplift train` (or the train-uplift-model deployment, weekly)")
        return
    table = Table(title="uplift models (the newest ready one decides targeted arms)", title_justify="left")
    for column in ("version", "trained", "window", "status", "contacted", "held out", "Qini area"):
        table.add_column(column)
    for v in versions:
        table.add_row(str(v["version"]), f"{v['trained_at']:%Y-%m-%d %H:%M}", v["window"], v["status"],
                      f"{v['contacted']:,}", f"{v['held_out']:,}", "–" if v["qini"] is None else f"{v['qini']:+.4f}")
    out.print(table)
    out.print(f"v{versions[0]['version']}: {versions[0]['note']}", highlight=False)
    if versions[0]["curve"]:
        points = ", ".join(f"{p['share']:.0%}: {p['model']:+.3f} (random {p['random']:+.3f})"
                           for p in versions[0]["curve"][::5])
        out.print(f"Qini curve (extra cures per contacted account, by share contacted): {points}", highlight=False)
