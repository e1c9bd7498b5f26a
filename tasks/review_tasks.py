"""The review's task: compute it, write its files, publish its findings and tables as artifacts."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from campaigns.bootstrap import services
from campaigns.review.effectiveness import review_days, run_review
from campaigns.review.report import write_review
from tasks.retries import DB_RETRIES


def _cell(value):
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def _rows(frame, columns: list[str]) -> list[dict]:
    return [{c: _cell(r[c]) for c in columns} for r in frame.to_dict("records")]


@task(name="review-and-publish", tags=["campaigns", "db"], **DB_RETRIES)
def review_and_publish(since: str | None, until: str | None, out_dir: str | None) -> dict:
    s = services()
    first, last = review_days(since, until, datetime.now(s.settings.lender_zone).date(),
                              s.review.attribution_window_days)
    review = run_review(s.engine, first, last, s.review, s.ladder)
    out = Path(out_dir) if out_dir else s.settings.data_dir / "review" / f"{first}_{last}"
    written = write_review(review, out)
    create_markdown_artifact(
        key="effectiveness-review",
        markdown=f"# What works: assignments {first} to {last}\n\n"
                 + "\n".join(f"- {'**' + f + '**' if f.startswith('WARNING') else f}" for f in review.findings)
                 + f"\n\nReport: `{written['report']}`",
        description=f"Findings of the effectiveness review, {first} to {last}")
    if not review.arms.empty:
        create_table_artifact(
            key="review-arms", description=f"Arms (intention to treat), {first} to {last}",
            table=_rows(review.arms, ["stage", "experiment", "variant", "accounts", "cured", "cure_rate",
                                      "recovery_rate", "sent", "delivered", "opt_outs", "complaints"]))
    if not review.uplift.empty:
        create_table_artifact(
            key="review-uplift", description=f"Uplift with 95% intervals, {first} to {last}",
            table=_rows(review.uplift, ["stage", "variant", "baseline", "metric", "uplift", "ci_low", "ci_high",
                                        "cuped_uplift", "n_variant", "n_baseline"]))
    get_run_logger().info("review %s..%s: %d units, report %s", first, last, len(review.units), written["report"])
    return {"since": first.isoformat(), "until": last.isoformat(), "units": len(review.units),
            "findings": review.findings, "report": str(written["report"])}
