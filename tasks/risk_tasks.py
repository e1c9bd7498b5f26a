"""The risk model's task: train the next version from the outcome log, store it, publish what it is."""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from campaigns.bootstrap import services
from campaigns.risk.model import train_and_store, training_units
from tasks.retries import DB_RETRIES


@task(name="train-risk-model", tags=["campaigns", "db"], **DB_RETRIES)
def train_and_publish(days: int) -> dict:
    s = services()
    now = datetime.now(timezone.utc)
    units, window = training_units(s.engine, s.review, now.astimezone(s.settings.lender_zone).date(), days)
    model = train_and_store(s.engine, units, window, now, s.review)
    create_markdown_artifact(
        key="risk-model",
        markdown=f"# Risk model v{model.version}: {model.status}\n\nTrained on assignments {window[0]} to "
                 f"{window[1]}: {model.units:,} accounts, {model.cured:,} cured.\n\n{model.note}",
        description=f"Risk model v{model.version} ({model.status})")
    if model.calibration:
        create_table_artifact(key="risk-model-calibration", table=model.calibration,
                              description=f"Risk model v{model.version}: predicted and observed cure rate by "
                                          "decile, on the held-out latest quarter")
    get_run_logger().info("risk model v%d: %s (%s)", model.version, model.status, model.note)
    return {"version": model.version, "status": model.status, "units": model.units, "cured": model.cured,
            "auc": model.auc, "brier": model.brier, "note": model.note,
            "window": [window[0].isoformat(), window[1].isoformat()]}
